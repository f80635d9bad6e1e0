## Editor plugin run by `cargo xtask docs --monitors-screenshot` in a scratch project under
## target/ (it is not enabled in the sample project): once the editor has settled it runs the
## traffic scene as a game attached to the editor's debugger, opens Debugger > Monitors, expands the bottom panel, ticks every monitor of
## the "WebSocket" group and folds the other groups, waits while the graphs fill, saves the
## editor window to the path given after `-- --monitors-screenshot=` (and the bottom panel's
## rectangle as ImageMagick geometry, WxH+X+Y, next to it with the extension .crop) and quits.
##
## The game is started the way the editor's Play button starts it (`--path`, `--remote-debug`
## with the editor's debug server), but by this plugin, with the Godot given after
## `--godot=`: the editor's own Play runs the editor's executable, and the Godot that xtask
## provisions is started through its dynamic loader, so the editor would run the loader. The
## scratch project keeps the debug server open (Debug > Keep Debug Server Open) for it.
@tool
extends EditorPlugin

const SCENE := "res://addons/monitors_screenshot/traffic.tscn"
## Seconds the graphs fill before the picture is taken (a graph moves about 1.7 pixels a second
## in the 3 x 3 grid: 90 s fill most of it).
const FILL_SECONDS := 90.0


## The game's process id, or 0.
var game_pid := 0


func _enter_tree() -> void:
	var path := ""
	var godot := ""
	for arg in OS.get_cmdline_user_args():
		if arg.begins_with("--monitors-screenshot="):
			path = arg.trim_prefix("--monitors-screenshot=")
		elif arg.begins_with("--godot="):
			godot = arg.trim_prefix("--godot=")
	if path.is_empty():
		return
	print("monitors screenshot: plugin started")
	_take.call_deferred(path, godot if not godot.is_empty() else OS.get_executable_path())


func _take(path: String, godot: String) -> void:
	var tree := get_tree()
	while EditorInterface.get_resource_filesystem().is_scanning():
		await tree.process_frame
	await tree.create_timer(2.0).timeout
	var base := EditorInterface.get_base_control()
	var debugger := _find(base, "EditorDebuggerNode")
	var profiler := _find(base, "EditorPerformanceProfiler")
	if debugger == null or profiler == null:
		_fail("no EditorDebuggerNode or EditorPerformanceProfiler in the editor")
		return
	var settings := EditorInterface.get_editor_settings()
	var debug_uri := "tcp://%s:%d" % [settings.get_setting("network/debug/remote_host"), settings.get_setting("network/debug/remote_port")]
	game_pid = OS.create_process(godot, PackedStringArray(["--path", ProjectSettings.globalize_path("res://"),
		"--remote-debug", debug_uri, "--headless", "--max-fps", "60", SCENE]))
	if game_pid <= 0:
		_fail("cannot start the game with %s" % godot)
		return
	print("monitors screenshot: game %d started, debugger at %s" % [game_pid, debug_uri])
	# The bottom panel and the debugger's tabs are TabContainers: show Debugger, then Monitors.
	var bottom := debugger.get_parent() as TabContainer
	var tabs := profiler.get_parent() as TabContainer
	if bottom == null or tabs == null:
		_fail("the debugger or its Monitors tab is not in a TabContainer")
		return
	bottom.current_tab = bottom.get_tab_idx_from_control(debugger)
	tabs.current_tab = tabs.get_tab_idx_from_control(profiler)
	for button in bottom.find_children("*", "Button", true, false):
		if button.shortcut != null and button.shortcut.resource_name == "Expand Bottom Panel":
			button.button_pressed = true
	# The game sends the names of its custom monitors once its debugger connects.
	var monitor_tree: Tree = null
	for child in profiler.get_children(true):
		if child is Tree:
			monitor_tree = child
	var group: TreeItem = null
	var deadline := Time.get_ticks_msec() + 30000
	while group == null and Time.get_ticks_msec() < deadline:
		await tree.create_timer(0.25).timeout
		group = _group(monitor_tree, "WebSocket")
	if group == null:
		_fail("no WebSocket group in the Monitors tab after 30 s")
		return
	print("monitors screenshot: the game's WebSocket monitors arrived")
	# The tree is built again whenever the game's list of monitors changes (ticks are kept, items
	# are new): tick now so the graphs fill, and again with fresh items before the picture.
	_show_group(monitor_tree, "WebSocket")
	await tree.create_timer(FILL_SECONDS).timeout
	var values := _show_group(monitor_tree, "WebSocket")
	if values.is_empty():
		_fail("the WebSocket group went away")
		return
	print("monitors screenshot: %d monitors ticked: %s" % [values.size(), ", ".join(values)])
	await tree.create_timer(0.5).timeout
	var image := base.get_viewport().get_texture().get_image()
	var err := image.save_png(path)
	var panel := Rect2i(bottom.get_global_rect())
	var crop := FileAccess.open(path.get_basename() + ".crop", FileAccess.WRITE)
	if crop != null:
		crop.store_string("%dx%d+%d+%d" % [panel.size.x, panel.size.y, panel.position.x, panel.position.y])
	print("monitors screenshot: %s (%dx%d): %s" % [path, image.get_width(), image.get_height(), error_string(err)])
	_stop_game()
	tree.quit(0 if err == OK else 1)


## The first node of class `type_name` under `root`, or null.
func _find(root: Node, type_name: String) -> Node:
	var found := root.find_children("*", type_name, true, false)
	return found[0] if not found.is_empty() else null


## Ticks every monitor of the group named `group_name`, folds the other groups and scrolls to
## it; returns the ticked monitors as "name = value" ([] without that group).
func _show_group(monitor_tree: Tree, group_name: String) -> PackedStringArray:
	var group := _group(monitor_tree, group_name)
	var values := PackedStringArray()
	if group == null:
		return values
	for item in group.get_children():
		item.set_checked(0, true)
		values.append("%s = %s" % [item.get_text(0), item.get_text(1)])
	for other in monitor_tree.get_root().get_children():
		other.collapsed = other != group
	monitor_tree.scroll_to_item(group)
	return values


## The top-level item of `tree` whose text is `text`, or null.
func _group(tree: Tree, text: String) -> TreeItem:
	if tree == null or tree.get_root() == null:
		return null
	for item in tree.get_root().get_children():
		if item.get_text(0) == text:
			return item
	return null


func _exit_tree() -> void:
	_stop_game()


## Ends the game this plugin started, if it still runs.
func _stop_game() -> void:
	if game_pid > 0 and OS.is_process_running(game_pid):
		OS.kill(game_pid)
	game_pid = 0


## Reports `reason`, ends the game and quits the editor with exit code 1.
func _fail(reason: String) -> void:
	printerr("monitors screenshot: " + reason)
	_stop_game()
	get_tree().quit(1)
