## Runs one test method of one test script, headless:
##   godot --headless --path godot-project -s res://tests/runner.gd -- res://tests/test_x.gd test_name
## Prints "RESULT PASS" or "RESULT FAIL: <reasons>" and exits 0 or 1. `cargo xtask test` runs every
## test_* method this way (one process each, with a timeout) and also fails a test whose output
## has engine errors it did not announce with expect_error(), or leaked objects.
extends SceneTree


func _initialize() -> void:
	_run.call_deferred()


func _run() -> void:
	var args := OS.get_cmdline_user_args()
	if args.size() < 2:
		printerr("usage: -s res://tests/runner.gd -- <test script> <test method>")
		quit(2)
		return
	var script: GDScript = load(args[0])
	if script == null:
		print("RESULT FAIL: cannot load %s" % args[0])
		quit(1)
		return
	var test: Node = script.new()
	test.name = "Test"
	root.add_child(test)
	if not test.has_method(args[1]):
		print("RESULT FAIL: %s has no method %s" % [args[0], args[1]])
		test.free()
		quit(1)
		return
	await test.call(args[1])
	await test.teardown()
	var failures: PackedStringArray = test.failures
	test.free()
	# Let reference-counted objects released by the test go before the leak check at exit.
	await process_frame
	if failures.is_empty():
		print("RESULT PASS")
		quit(0)
	else:
		print("RESULT FAIL: " + " | ".join(failures))
		quit(1)
