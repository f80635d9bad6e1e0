## The deployment guide (docs/deployment.md) and its files under deploy/: the example dedicated
## server run as a separate Godot process (chat relay, health check, drain on the drain file,
## exit code 0, certificate reload), the container entrypoint and the systemd ExecStop= that turn
## a stop into a drain (run as written in deploy/Dockerfile and deploy/websocket-rs-server.service),
## and the nginx configuration shown in the guide against deploy/nginx/websocket-rs.conf.
extends "res://tests/test_case.gd"

## Seconds of grace the tests give players when draining.
const GRACE := 2.0

## Processes started by a child process (the example server run by the entrypoint shell),
## which teardown kills too should a test fail.
var grandchildren: Array[int] = []


## Also ends the example server of an entrypoint shell (it outlives the shell if the test fails).
func teardown() -> void:
	for pid in grandchildren:
		OS.kill(pid)  # is_running() cannot tell for a process that is not our child
	super.teardown()


## Records the children of process `pid` (as Linux lists them under /proc) in grandchildren.
func record_children(pid: int) -> void:
	# get_line(): files under /proc say they are empty, so get_file_as_string() reads nothing.
	var file := FileAccess.open("/proc/%d/task/%d/children" % [pid, pid], FileAccess.READ)
	for child in (file.get_line() if file != null else "").split(" ", false):
		grandchildren.append(int(child))
	check(not grandchildren.is_empty(), "no child of the entrypoint shell %d in /proc" % pid)


## A file of the repository (the folder above the Godot project), as an absolute path.
func repo_path(relative: String) -> String:
	return ProjectSettings.globalize_path("res://").path_join("..").path_join(relative).simplify_path()


## The text of a repository file, or "" after recording a failure naming it.
func repo_text(relative: String) -> String:
	var path := repo_path(relative)
	if not FileAccess.file_exists(path):
		check(false, "%s is missing" % relative)
		return ""
	return FileAccess.get_file_as_string(path)


## The example server's settings: [name, environment variable, default, help] each.
func example_settings() -> Array:
	var script: GDScript = load(repo_path("deploy/dedicated_server.gd"))
	check(script != null, "deploy/dedicated_server.gd does not load")
	return script.get_script_constant_map().get("SETTINGS", []) if script != null else []


## A path in this test process's user folder for a drain file (none there yet).
func fresh_drain_file(port: int) -> String:
	var path := OS.get_user_data_dir().path_join("drain_%d_%d" % [port, OS.get_process_id()])
	DirAccess.remove_absolute(path)
	return path


## Godot's arguments that run the example server on this project with `settings` after `--`.
func example_args(settings: PackedStringArray) -> PackedStringArray:
	var args := PackedStringArray(["--headless", "--path", ProjectSettings.globalize_path("res://"), "-s",
		repo_path("deploy/dedicated_server.gd"), "--"])
	args.append_array(settings)
	return args


## Starts the example server on 127.0.0.1:`port` with `settings`; returns its pid once its health
## check answers 200, or -1.
func start_example(port: int, settings: PackedStringArray) -> int:
	var all := PackedStringArray(["--bind=127.0.0.1", "--port=%d" % port, "--heartbeat=0"])
	all.append_array(settings)
	var pid := spawn(tool_path("WSRS_GODOT"), example_args(all))
	return pid if pid > 0 and await example_ready(port, pid) else -1


## Waits (20 s at most) until the health check on `port` answers 200 while `pid` runs.
func example_ready(port: int, pid: int) -> bool:
	var deadline := Time.get_ticks_msec() + 20000
	while Time.get_ticks_msec() < deadline and is_running(pid):
		if (await http_get(port, "/healthz", false)).begins_with("HTTP/1.1 200 "):
			return true
		await pump([], 0.2)
	check(false, "the example server on port %d did not answer its health check with 200 within 20 s (running: %s)"
		% [port, is_running(pid)])
	return false


## Waits (20 s at most) until 127.0.0.1:`port` accepts TCP connections while `pid` runs.
func listening(port: int, pid: int) -> bool:
	var deadline := Time.get_ticks_msec() + 20000
	while Time.get_ticks_msec() < deadline and is_running(pid):
		var tcp := StreamPeerTCP.new()
		tcp.connect_to_host("127.0.0.1", port)
		var tried := Time.get_ticks_msec()
		while tcp.get_status() == StreamPeerTCP.STATUS_CONNECTING and Time.get_ticks_msec() - tried < 1000:
			await get_tree().process_frame
			tcp.poll()
		if tcp.get_status() == StreamPeerTCP.STATUS_CONNECTED:
			tcp.disconnect_from_host()
			return true
		await pump([], 0.2)
	check(false, "the example server did not listen on port %d within 20 s (running: %s)" % [port, is_running(pid)])
	return false


## A plain GET of `path` on 127.0.0.1:`port`: everything the server sends until it closes the
## connection, as text ("" when nothing answers). `record` records a failed connection.
func http_get(port: int, path: String, record := true, pollables := []) -> String:
	var tcp := StreamPeerTCP.new()
	tcp.connect_to_host("127.0.0.1", port)
	var deadline := Time.get_ticks_msec() + 5000
	var received := PackedByteArray()
	var sent := false
	while Time.get_ticks_msec() < deadline:
		for p in pollables:
			p.poll()
		tcp.poll()
		var status := tcp.get_status()
		if status == StreamPeerTCP.STATUS_CONNECTED and not sent:
			tcp.put_data(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).to_utf8_buffer())
			sent = true
		if status == StreamPeerTCP.STATUS_CONNECTED and tcp.get_available_bytes() > 0:
			received.append_array(tcp.get_data(tcp.get_available_bytes())[1])
		if status == StreamPeerTCP.STATUS_ERROR or status == StreamPeerTCP.STATUS_NONE:
			break
		await get_tree().process_frame
	if record:
		check(sent, "GET %s on port %d: no connection" % [path, port])
	return received.get_string_from_utf8()


## Connects `client` to the example server and checks the chat relays a message back.
func join_and_chat(port: int) -> bool:
	start_client("ws://127.0.0.1:%d/" % port)
	if not await until(func(): return has_event(client_events, "connection_established"), [client], 5.0, "the client to join"):
		return false
	client.get_peer(1).send_text("hello from the test")
	if not await until(func(): return client.get_peer(1).get_available_packet_count() > 0, [client], 5.0, "the chat message back"):
		return false
	check_eq(client.get_peer(1).get_packet().get_string_from_utf8(), "hello from the test", "the chat relays the message back")
	return true


## Checks that a drain of `pid` started: 503 from the health check while the client stays for
## the grace, then 1001 "going away" for the client and exit code 0 from `pid` (and from
## `waiter`, a process that must end with it, when given).
func check_drain_and_exit(port: int, pid: int, waiter := -1) -> void:
	var started := Time.get_ticks_msec()
	var answer := ""
	while Time.get_ticks_msec() - started < int(GRACE * 1000.0) - 300 and not answer.begins_with("HTTP/1.1 503 "):
		answer = await http_get(port, "/healthz", true, [client])
	check(answer.begins_with("HTTP/1.1 503 ") and answer.ends_with("draining\n"), "the health check says 503 while draining: %s" % answer)
	check_eq(client.get_peer(1).get_ready_state(), WebSocketConnection.STATE_OPEN, "the player stays during the grace")
	check(not has_event(client_events, "server_close_request"), "no close before the grace is over")
	if waiter > 0:
		check(is_running(waiter), "the stop command waits while the server drains")
	await until(func(): return has_event(client_events, "connection_closed"), [client], GRACE + 10.0, "the server to close the player")
	var close := first_event(client_events, "server_close_request")
	check(close.size() == 3 and close[1] == 1001, "the player is closed with 1001 going away: %s" % [close])
	check(Time.get_ticks_msec() - started >= int(GRACE * 1000.0) - 500, "closed after the grace, not before")
	check_eq(first_event(client_events, "connection_closed"), ["connection_closed", true], "a clean close")
	for process in [pid, waiter]:
		if process > 0:
			await until(func(): return not is_running(process), [], 15.0, "process %d to exit by itself" % process)
			check_eq(OS.get_process_exit_code(process), 0, "exit code of process %d" % process)


func test_the_example_server_relays_chat_answers_health_checks_and_drains_on_its_drain_file() -> void:
	var port := free_port()
	var drain := fresh_drain_file(port)
	var pid := await start_example(port, PackedStringArray(["--drain-file=" + drain, "--drain-grace=%s" % GRACE]))
	if pid < 0:
		return
	var answer := await http_get(port, "/healthz")
	check(answer.begins_with("HTTP/1.1 200 OK\r\n") and answer.ends_with("\r\n\r\nok\n"), "GET /healthz: %s" % answer)
	if not await join_and_chat(port):
		return
	FileAccess.open(drain, FileAccess.WRITE).close()
	await check_drain_and_exit(port, pid)
	check(not FileAccess.file_exists(drain), "the server removed its drain file")


func test_a_new_player_is_refused_while_draining() -> void:
	var port := free_port()
	var drain := fresh_drain_file(port)
	var pid := await start_example(port, PackedStringArray(["--drain-file=" + drain, "--drain-grace=30"]))
	if pid < 0 or not await join_and_chat(port):
		return
	FileAccess.open(drain, FileAccess.WRITE).close()
	var late := WebSocketClient.new()
	var late_events := []
	late.connection_established.connect(func(_p): late_events.append("established"))
	late.connection_error.connect(func(): late_events.append("error"))
	expect_error("WebSocketClient: connecting to")
	# The drain file is looked at every 250 ms: until the server drains, the newcomer may get in.
	var deadline := Time.get_ticks_msec() + 5000
	while (await http_get(port, "/healthz", true, [client])).begins_with("HTTP/1.1 200 ") and Time.get_ticks_msec() < deadline:
		await pump([client], 0.1)
	check_eq(late.connect_to_url("ws://127.0.0.1:%d/" % port), OK, "connect_to_url")
	await until(func(): return not late_events.is_empty(), [late, client], 5.0, "the newcomer's answer")
	check_eq(late_events, ["error"], "a newcomer is refused (HTTP 503) while draining")
	check(is_running(pid) and client.get_peer(1).get_ready_state() == WebSocketConnection.STATE_OPEN, "the player already in stays")


func test_sigterm_ends_godot_at_once_which_is_why_the_drain_is_a_file() -> void:
	# What the guide says of Godot 4.6 on Linux: no handler for SIGTERM (or SIGINT, SIGHUP), so
	# the process dies without a word to its players. Should a Godot version catch it, this fails
	# and the guide's systemd and container setups can be simplified.
	var port := free_port()
	var pid := await start_example(port, PackedStringArray(["--drain-file=" + fresh_drain_file(port)]))
	if pid < 0 or not await join_and_chat(port):
		return
	OS.execute("kill", PackedStringArray(["-TERM", str(pid)]))
	await until(func(): return not is_running(pid), [client], 5.0, "SIGTERM to end the process")
	await until(func(): return has_event(client_events, "connection_closed"), [client], 5.0, "the player to lose the connection")
	check(not has_event(client_events, "server_close_request"), "no close frame: the process just died")
	check_eq(first_event(client_events, "connection_closed"), ["connection_closed", false], "an unclean close")
	check(OS.get_process_exit_code(pid) != 0, "killed by the signal, not exited")


func test_the_container_entrypoint_turns_sigterm_into_a_drain() -> void:
	# deploy/Dockerfile's /usr/local/bin/drain-on-stop, run with the same arguments as its CMD
	# (on this project), the drain file named by WSRS_DRAIN_FILE as in the image's ENV.
	var dockerfile := repo_text("deploy/Dockerfile")
	var begin := dockerfile.find("<<'EOF' /usr/local/bin/drain-on-stop\n")
	var end := dockerfile.find("\nEOF\n", begin)
	if not check_found(begin >= 0 and end > begin, "deploy/Dockerfile has no heredoc for /usr/local/bin/drain-on-stop"):
		return
	var entrypoint := OS.get_user_data_dir().path_join("drain-on-stop_%d" % OS.get_process_id())
	var body_start := dockerfile.find("\n", begin) + 1
	var file := FileAccess.open(entrypoint, FileAccess.WRITE)
	file.store_string(dockerfile.substr(body_start, end + 1 - body_start))
	file.close()
	check(dockerfile.contains('ENTRYPOINT ["/usr/local/bin/drain-on-stop"]'), "the entrypoint is drain-on-stop")
	check(dockerfile.contains('CMD ["godot", "--headless", "--path", "/srv/game", "-s", "res://dedicated_server.gd"]'),
		"the CMD runs the example")
	check(dockerfile.contains("STOPSIGNAL SIGTERM"), "the stop signal is SIGTERM")
	var known := example_settings().map(func(s): return s[1])
	for line in dockerfile.split("\n"):
		var found := RegEx.create_from_string("(WSRS_[A-Z_]+)=").search(line)
		if found != null:
			check(known.has(found.get_string(1)), "deploy/Dockerfile sets %s, which dedicated_server.gd does not read" % found.get_string(1))
	var port := free_port()
	var drain := fresh_drain_file(port)
	OS.set_environment("WSRS_DRAIN_FILE", drain)
	var args := PackedStringArray([entrypoint, tool_path("WSRS_GODOT")])
	var settings := PackedStringArray(["--bind=127.0.0.1", "--port=%d" % port, "--drain-grace=%s" % GRACE, "--heartbeat=0"])
	args.append_array(example_args(settings))
	var pid := spawn("/bin/sh", args)
	if pid < 0 or not await example_ready(port, pid):
		return
	record_children(pid)
	if not await join_and_chat(port):
		return
	OS.execute("kill", PackedStringArray(["-TERM", str(pid)]))
	await check_drain_and_exit(port, pid)


func test_the_systemd_unit_drains_on_stop() -> void:
	# deploy/websocket-rs-server.service: its ExecStart= settings run on this project (another
	# port), then its ExecStop= command as systemd would run it: $$ is a $, MAINPID is set.
	var unit := repo_text("deploy/websocket-rs-server.service").replace("\\\n", " ")
	var values := {}
	var environment := {}
	for line in unit.split("\n"):
		var pair := line.split("=", true, 1)
		if pair.size() == 2 and not line.begins_with("#"):
			values[pair[0]] = pair[1].strip_edges()
			if pair[0] == "Environment":
				var assignment := pair[1].split("=", true, 1)
				environment[assignment[0]] = assignment[1]
	for key in ["ExecStart", "ExecStop", "TimeoutStopSec", "LimitNOFILE", "User", "Restart"]:
		if not check_found(values.has(key), "the unit has no %s=" % key):
			return
	var known := example_settings().map(func(s): return s[1])
	for name in environment:
		check(name == "HOME" or known.has(name), "the unit sets %s, which dedicated_server.gd does not read" % name)
	check(environment.has("WSRS_DRAIN_FILE"), "the unit names the drain file in Environment=")
	var drain_seconds := int(environment.get("WSRS_DRAIN_GRACE", "30")) + int(environment.get("WSRS_DRAIN_TIMEOUT", "10"))
	check(int(values["TimeoutStopSec"]) > drain_seconds, "TimeoutStopSec is longer than the grace and the drain timeout")
	var start: String = values["ExecStart"]
	if not check_found(start.contains(" -s res://dedicated_server.gd -- "), "ExecStart runs res://dedicated_server.gd: %s" % start):
		return
	var settings := PackedStringArray()
	var names := example_settings().map(func(s): return s[0])
	for arg in start.get_slice(" -- ", 1).split(" ", false):
		check(names.has(arg.trim_prefix("--").get_slice("=", 0)), "ExecStart passes %s, which dedicated_server.gd does not know" % arg)
		settings.append(arg)
	var port := free_port()
	settings.append_array(PackedStringArray(["--port=%d" % port, "--drain-grace=%s" % GRACE, "--heartbeat=0"]))
	var drain := fresh_drain_file(port)
	OS.set_environment("WSRS_DRAIN_FILE", drain)
	var pid := spawn(tool_path("WSRS_GODOT"), example_args(settings))
	if pid < 0 or not await example_ready(port, pid) or not await join_and_chat(port):
		return
	OS.set_environment("MAINPID", str(pid))
	var stop: String = values["ExecStop"]
	check(stop.begins_with("/bin/sh -c '") and stop.ends_with("'"), "ExecStop= is one /bin/sh -c '...': %s" % stop)
	var stopper := spawn("/bin/sh", PackedStringArray(["-c", stop.trim_prefix("/bin/sh -c '").trim_suffix("'").replace("$$", "$")]))
	await check_drain_and_exit(port, pid, stopper)


func test_the_example_server_reloads_a_renewed_certificate_and_keeps_its_players() -> void:
	var crypto := Crypto.new()
	var folder := OS.get_user_data_dir().path_join("deployment_tls_%d" % OS.get_process_id())
	DirAccess.make_dir_recursive_absolute(folder)
	var key_path := folder.path_join("privkey.pem")
	var cert_path := folder.path_join("fullchain.pem")
	var old_key := crypto.generate_rsa(2048)
	var old_cert := crypto.generate_self_signed_certificate(old_key, "CN=localhost,O=websocket-rs old,C=US")
	check_eq([old_key.save(key_path), old_cert.save(cert_path)], [OK, OK], "save the first key and certificate")
	var port := free_port()
	var pid := spawn(tool_path("WSRS_GODOT"), example_args(PackedStringArray(["--bind=127.0.0.1", "--port=%d" % port,
		"--drain-file=" + fresh_drain_file(port), "--private-key=" + key_path, "--certificate=" + cert_path, "--tls-check-interval=0.2"])))
	if pid < 0 or not await listening(port, pid):
		return
	start_client("wss://localhost:%d/" % port, PackedStringArray(), PackedStringArray(), func(c): c.trusted_tls_certificate = old_cert)
	if not await until(func(): return has_event(client_events, "connection_established"), [client], 10.0,
		"the first player to join over wss://"):
		return
	# A renewal as certbot's deploy hook does it: new files in place of the old.
	var new_key := crypto.generate_rsa(2048)
	var new_cert := crypto.generate_self_signed_certificate(new_key, "CN=localhost,O=websocket-rs new,C=US")
	check_eq([new_key.save(key_path), new_cert.save(cert_path)], [OK, OK], "save the renewed key and certificate")
	var renewed := WebSocketClient.new()
	renewed.trusted_tls_certificate = new_cert
	var renewed_events := []
	renewed.connection_established.connect(func(_p): renewed_events.append("established"))
	renewed.connection_error.connect(func(): renewed_events.append("error"))
	# The files are looked at every 0.2 s and loaded once they stayed the same for one look; a
	# client that comes earlier still meets the first certificate, is refused, and tries again.
	await pump([client], 1.0)
	var refused := false
	var deadline := Time.get_ticks_msec() + 10000
	while not renewed_events.has("established") and Time.get_ticks_msec() < deadline:
		renewed_events.clear()
		renewed.connect_to_url("wss://localhost:%d/" % port)
		await until(func(): return not renewed_events.is_empty(), [renewed, client], 5.0, "the renewed client's answer")
		refused = refused or renewed_events.has("error")
	if refused:
		expect_error("WebSocketClient: connecting to")
	check(renewed_events.has("established"), "a player trusting only the renewed certificate joins")
	check_eq(client.get_peer(1).get_ready_state(), WebSocketConnection.STATE_OPEN, "the first player is still connected")
	client.get_peer(1).send_text("still here")
	await until(func(): return client.get_peer(1).get_available_packet_count() > 0, [client, renewed], 5.0, "the first player's chat")
	check_eq(client.get_peer(1).get_packet().get_string_from_utf8(), "still here", "the first session still works")
	renewed.disconnect_from_host()
	await until(func(): return renewed.get_peer(1).get_ready_state() == WebSocketConnection.STATE_CLOSED, [renewed, client], 5.0,
		"the close")
	for path in [key_path, cert_path]:
		DirAccess.remove_absolute(path)
	DirAccess.remove_absolute(folder)


func test_the_guide_shows_the_nginx_configuration_the_tests_run() -> void:
	var begin_marker := "<!-- nginx-config:begin -->\n"
	var end_marker := "<!-- nginx-config:end -->"
	var guide := repo_text("docs/deployment.md")
	if not FileAccess.file_exists(repo_path("deploy/nginx/websocket-rs.conf")):
		check(false, "deploy/nginx/websocket-rs.conf is missing (the reverse-proxy configurations and their tests come with it)")
		return
	var conf := FileAccess.get_file_as_string(repo_path("deploy/nginx/websocket-rs.conf"))
	var begin := guide.find(begin_marker)
	var end := guide.find(end_marker, begin)
	var block := "%s ... %s" % [begin_marker.strip_edges(), end_marker]
	if not check_found(begin >= 0 and end > begin, "docs/deployment.md has no %s block" % block):
		return
	var shown := guide.substr(begin + begin_marker.length(), end - begin - begin_marker.length())
	var expected := "```nginx\n" + conf + ("" if conf.ends_with("\n") else "\n") + "```\n"
	if shown == expected:
		return
	var shown_lines := shown.split("\n")
	var expected_lines := expected.split("\n")
	for i in maxi(shown_lines.size(), expected_lines.size()):
		var a: String = shown_lines[i] if i < shown_lines.size() else "<end>"
		var b: String = expected_lines[i] if i < expected_lines.size() else "<end>"
		if a != b:
			check(false, ("docs/deployment.md's nginx block is not deploy/nginx/websocket-rs.conf (copy the file in): at line %d"
				+ " of the file (0: the ```nginx line) the guide has \"%s\", the file \"%s\"") % [i, a, b])
			return


## check() that also returns `condition`, for an early return.
func check_found(condition: bool, message: String) -> bool:
	check(condition, message)
	return condition
