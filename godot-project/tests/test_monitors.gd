## The addon's custom Performance monitors (Debugger > Monitors, group "WebSocket"): present at
## startup, 0 while nothing runs, following a server and a client that exchange known traffic,
## and absent when the project setting websocket_rs/monitors/enabled is false (checked in a
## separate Godot run on a scratch project that says so).
extends "res://tests/test_case.gd"

const IDS := [
	"websocket/peers",
	"websocket/handshaking",
	"websocket/messages_received_per_second",
	"websocket/messages_sent_per_second",
	"websocket/bytes_received_per_second",
	"websocket/bytes_sent_per_second",
	"websocket/mean_round_trip_time",
	"websocket/queued_outbound_bytes",
	"websocket/queued_inbound_bytes",
]

## The SceneTree script of the separate run: after the first frame (the monitors are added once
## Godot has started) it writes which custom monitors exist, the setting's value and whether the
## extension loaded, as JSON, to the path given after `--`.
const PROBE := """extends SceneTree

func _initialize() -> void:
	_report.call_deferred()

func _report() -> void:
	await process_frame
	var names := []
	for name in Performance.get_custom_monitor_names():
		names.append(str(name))
	var report := {
		"monitors": names,
		"setting": ProjectSettings.get_setting("websocket_rs/monitors/enabled", "missing"),
		"extension_loaded": ClassDB.class_exists("WebSocketServer"),
	}
	FileAccess.open(OS.get_cmdline_user_args()[0], FileAccess.WRITE).store_string(JSON.stringify(report))
	quit(0)
"""


## Every monitor's current value, by id.
func monitor_values() -> Dictionary:
	var values := {}
	for id in IDS:
		values[id] = Performance.get_custom_monitor(id)
	return values


func test_every_monitor_is_registered_and_reads_zero_while_nothing_runs() -> void:
	for id in IDS:
		check(Performance.has_custom_monitor(id), "monitor %s registered" % id)
	check_eq(ProjectSettings.get_setting("websocket_rs/monitors/enabled"), true, "the setting defaults to true")
	var values := monitor_values()
	for id in IDS:
		check_eq(values[id], 0.0, "%s with no server or client" % id)


func test_monitors_follow_a_server_and_a_client_exchanging_messages() -> void:
	var heartbeat := func(endpoint): endpoint.heartbeat_interval = 0.2
	var id := await start_pair("/", heartbeat, heartbeat)
	if id < 0:
		return
	echo_with_kinds()
	# Connected: the server's peer and the client's link are both open.
	await until(func(): return Performance.get_custom_monitor("websocket/peers") >= 1.0, [server, client], 5.0, "peers monitor >= 1")
	# 64 messages of 1000 bytes a second each way (echoed), for 3 s; the highest values are kept.
	# Random bytes: permessage-deflate (on by default) would shrink zeros to a dozen bytes.
	var payload := Crypto.new().generate_random_bytes(1000)
	var seen := {}
	for key in IDS:
		seen[key] = 0.0
	var deadline := Time.get_ticks_msec() + 3000
	var next_send := Time.get_ticks_msec()
	while Time.get_ticks_msec() < deadline:
		if Time.get_ticks_msec() >= next_send:
			client.get_peer(1).put_packet(payload)
			next_send += 1000 / 64
		for endpoint in [server, client]:
			endpoint.poll()
		while client.get_peer(1).get_available_packet_count() > 0:
			client.get_peer(1).get_packet()
		var values := monitor_values()
		for key in IDS:
			seen[key] = maxf(seen[key], values[key])
		await get_tree().process_frame
	print("MEASURE: highest monitor values while traffic flowed: %s" % JSON.stringify(seen))
	check_eq(seen["websocket/peers"], 2.0, "peers while connected (the server's peer and the client's link, both in this process)")
	for key in ["websocket/messages_received_per_second", "websocket/messages_sent_per_second"]:
		# Each message counts once where it is sent and once where it arrives (both ends are in
		# this process), echoed: far more than 10 a second either way.
		check(seen[key] > 10.0, "%s while traffic flows: %s" % [key, seen[key]])
	for key in ["websocket/bytes_received_per_second", "websocket/bytes_sent_per_second"]:
		check(seen[key] > 10000.0, "%s while traffic flows: %s" % [key, seen[key]])
	var rtt: float = seen["websocket/mean_round_trip_time"]
	check(rtt > 0.0 and rtt < 1.0, "mean round-trip time with the heartbeat on, in seconds: %s" % rtt)
	# Both ends closed: back to no peers, and the rates fall to 0 once a quiet second has passed.
	client.disconnect_from_host()
	await until(func(): return has_event(server_events, "client_disconnected"), [server, client], 5.0, "the server sees the close")
	server.stop()
	await until(func(): return Performance.get_custom_monitor("websocket/peers") == 0.0, [server, client], 5.0, "peers monitor back to 0")
	await until(func(): return Performance.get_custom_monitor("websocket/messages_received_per_second") == 0.0 \
		and Performance.get_custom_monitor("websocket/bytes_sent_per_second") == 0.0, [server, client], 5.0, "rates back to 0")
	check_eq(Performance.get_custom_monitor("websocket/mean_round_trip_time"), 0.0, "no round-trip time without peers")


func test_setting_false_adds_no_monitors() -> void:
	var disabled: Dictionary = await probe_scratch_project("[websocket_rs]\n\nmonitors/enabled=false\n")
	var enabled: Dictionary = await probe_scratch_project("")
	# rm does not follow the link to the addon.
	OS.execute("rm", PackedStringArray(["-rf", scratch_project_dir()]))
	# The same probe on the same scratch project without the setting sees them: the run above
	# found none because of the setting, not because the extension or the probe did nothing.
	check_eq(disabled.get("extension_loaded"), true, "the extension loaded in the run with the setting false")
	check_eq(disabled.get("setting"), false, "the run with the setting false read it")
	check(not disabled.get("monitors", []).any(func(n): return n.begins_with("websocket/")),
		"no WebSocket monitor with the setting false: %s" % var_to_str(disabled.get("monitors")))
	check_eq(enabled.get("setting"), true, "the setting defaults to true in the scratch project")
	check(enabled.get("monitors", []).has("websocket/peers"), "monitors without the setting: %s" % var_to_str(enabled.get("monitors")))


## The scratch project's folder: this process's own, as other clones of the project (another
## checkout's test run) share the user folder.
func scratch_project_dir() -> String:
	return OS.get_user_data_dir().path_join("monitors_scratch_project_%d" % OS.get_process_id())


## Runs PROBE in another Godot on a scratch project (in this project's user folder) that uses the
## addon and has `settings` in its project.godot; returns its report ({} after recording why not).
func probe_scratch_project(settings: String) -> Dictionary:
	var dir := scratch_project_dir()
	DirAccess.make_dir_recursive_absolute(dir.path_join(".godot"))
	DirAccess.make_dir_recursive_absolute(dir.path_join("addons"))
	var addon := dir.path_join("addons/websocket_rs")
	if not DirAccess.dir_exists_absolute(addon):
		check_eq(DirAccess.open(dir).create_link(ProjectSettings.globalize_path("res://addons/websocket_rs"), addon), OK, "link the addon")
	# The list of extensions the editor would have written at import.
	write_text(dir.path_join(".godot/extension_list.cfg"), "res://addons/websocket_rs/websocket_rs.gdextension\n")
	write_text(dir.path_join("project.godot"), "config_version=5\n\n[application]\n\nconfig/name=\"websocket_rs monitors scratch\"\n\n" + settings)
	write_text(dir.path_join("probe.gd"), PROBE)
	var report_path := dir.path_join("report.json")
	DirAccess.remove_absolute(report_path)
	var pid := spawn(tool_path("WSRS_GODOT"), PackedStringArray(["--headless", "--path", dir, "-s", "res://probe.gd", "--", report_path]))
	if pid < 0:
		return {}
	await until(func(): return not is_running(pid), [], 30.0, "the probe run to end")
	var report: Variant = read_json(report_path)
	check(report is Dictionary, "the probe wrote its report to %s" % report_path)
	return report if report is Dictionary else {}


## Writes `text` to the file at `path` (an absolute path).
func write_text(path: String, text: String) -> void:
	var file := FileAccess.open(path, FileAccess.WRITE)
	check(file != null, "cannot write %s" % path)
	if file != null:
		file.store_string(text)
