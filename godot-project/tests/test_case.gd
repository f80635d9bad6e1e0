## Base of every GDScript test: assertions, bounded waiting while polling, expected errors, and
## helper Godot processes. Test scripts `extends "res://tests/test_case.gd"` and define test_*
## methods (they may await).
extends Node

## Assertion failures of the running test; the runner reports them.
var failures := PackedStringArray()
var _children: Array[int] = []


## Records a failure unless `condition` holds.
func check(condition: bool, message: String) -> void:
	if not condition:
		failures.append(message)
		push_warning("CHECK FAILED: " + message)


## Records a failure unless `actual == expected`.
func check_eq(actual: Variant, expected: Variant, message: String) -> void:
	check(actual == expected, "%s: expected %s, got %s" % [message, var_to_str(expected), var_to_str(actual)])


## Announces an engine error the test provokes on purpose; the harness then does not count error
## lines containing `fragment`, and fails the test if no such line appears.
func expect_error(fragment: String) -> void:
	print("EXPECT_ERROR: " + fragment)


## Polls every object in `pollables` each frame until `condition` returns true or `timeout_s`
## passes. Returns whether the condition was met (and records a failure if not).
func until(condition: Callable, pollables: Array, timeout_s := 5.0, what := "condition") -> bool:
	var deadline := Time.get_ticks_msec() + int(timeout_s * 1000.0)
	while true:
		for p in pollables:
			p.poll()
		if condition.call():
			return true
		if Time.get_ticks_msec() > deadline:
			check(false, "timed out after %.1f s waiting for %s" % [timeout_s, what])
			return false
		await get_tree().process_frame
	return false


## Polls every object in `pollables` for `seconds`.
func pump(pollables: Array, seconds: float) -> void:
	var deadline := Time.get_ticks_msec() + int(seconds * 1000.0)
	while Time.get_ticks_msec() < deadline:
		for p in pollables:
			p.poll()
		await get_tree().process_frame


## Starts another headless Godot on this project running `script` (a SceneTree script) with
## `args` after `--`. It is killed at teardown if still running. Returns its pid (or -1).
func spawn_godot(script: String, args: PackedStringArray) -> int:
	var godot := OS.get_environment("WSRS_GODOT")
	if godot.is_empty():
		check(false, "WSRS_GODOT is not set: run the tests through `cargo xtask test`")
		return -1
	var all := PackedStringArray(["--headless", "--path", ProjectSettings.globalize_path("res://"), "-s", script, "--"])
	all.append_array(args)
	var pid := OS.create_process(godot, all)
	check(pid > 0, "could not start a helper Godot process")
	if pid > 0:
		_children.append(pid)
	return pid


## Waits until a helper process reports (with helper_ready.gd's mark_ready) that it listens on
## `port`.
func helper_ready(port: int, timeout_s := 20.0) -> bool:
	var path := "user://ready_%d" % port
	return await until(func(): return FileAccess.file_exists(path), [], timeout_s, "helper listening on %d" % port)


## Whether a process started by spawn_godot() is still running.
func is_running(pid: int) -> bool:
	return OS.is_process_running(pid)


## Called by the runner after the test: stops helper processes.
func teardown() -> void:
	for pid in _children:
		if OS.is_process_running(pid):
			OS.kill(pid)
	_children.clear()
