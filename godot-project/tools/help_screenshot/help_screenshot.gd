## Editor plugin run by `cargo xtask docs --screenshot` in a scratch project under target/ (it is
## not enabled in the sample project): once the editor has settled, it opens the help page of
## WebSocketServer and saves what the editor window shows to the path given after
## `-- --help-screenshot=`, then scrolls to the description of `listen` and saves that next to it
## (`<name>-listen.png`), and quits the editor.
@tool
extends EditorPlugin

const CLASS := "WebSocketServer"
const METHOD := "listen"


func _enter_tree() -> void:
	var path := ""
	for arg in OS.get_cmdline_user_args():
		if arg.begins_with("--help-screenshot="):
			path = arg.trim_prefix("--help-screenshot=")
	if path.is_empty():
		return
	print("help screenshot: plugin started")
	_take.call_deferred(path)


func _take(path: String) -> void:
	var tree := get_tree()
	# Let the first scan and import of the project finish.
	while EditorInterface.get_resource_filesystem().is_scanning():
		await tree.process_frame
	print("help screenshot: project scanned")
	await tree.create_timer(2.0).timeout
	EditorInterface.set_main_screen_editor("Script")
	var err := await _shoot("class_name:" + CLASS, path)
	if err == OK:
		err = await _shoot("class_method:%s:%s" % [CLASS, METHOD], path.get_basename() + "-" + METHOD + ".png")
	tree.quit(0 if err == OK else 1)


## Opens a help topic, waits for it to be laid out and saves the editor window to `path`.
func _shoot(topic: String, path: String) -> Error:
	EditorInterface.get_script_editor().goto_help(topic)
	await get_tree().create_timer(3.0).timeout
	var image := EditorInterface.get_base_control().get_viewport().get_texture().get_image()
	var err := image.save_png(path)
	print("help screenshot: %s -> %s (%dx%d): %s" % [topic, path, image.get_width(), image.get_height(), error_string(err)])
	return err
