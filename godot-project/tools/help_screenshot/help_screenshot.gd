## Editor plugin run by `cargo xtask docs --screenshot` in a scratch project under target/ (it is
## not enabled in the sample project): once the editor has settled, it opens the help page of
## WebSocketServer, saves what the editor window shows to the path given after
## `-- --help-screenshot=` and quits the editor.
@tool
extends EditorPlugin

const CLASS := "WebSocketServer"


func _enter_tree() -> void:
	var path := ""
	for arg in OS.get_cmdline_user_args():
		if arg.begins_with("--help-screenshot="):
			path = arg.trim_prefix("--help-screenshot=")
	if path.is_empty():
		return
	_take.call_deferred(path)


func _take(path: String) -> void:
	var tree := get_tree()
	# Let the first scan and import of the project finish.
	while EditorInterface.get_resource_filesystem().is_scanning():
		await tree.process_frame
	await tree.create_timer(2.0).timeout
	EditorInterface.set_main_screen_editor("Script")
	EditorInterface.get_script_editor().goto_help("class_name:" + CLASS)
	# The help page lays itself out over a few frames.
	await tree.create_timer(3.0).timeout
	await RenderingServer.frame_post_draw
	var image := EditorInterface.get_base_control().get_viewport().get_texture().get_image()
	var err := image.save_png(path)
	print("help screenshot: %s (%dx%d): %s" % [path, image.get_width(), image.get_height(), error_string(err)])
	tree.quit(0 if err == OK else 1)
