## Base of every GDScript test: assertions, bounded waiting while polling, expected errors, and
## helper Godot processes. Test scripts `extends "res://tests/test_case.gd"` and define test_*
## methods (they may await).
extends Node

## Assertion failures of the running test; the runner reports them.
var failures := PackedStringArray()
var _children: Array[int] = []

## The server and client of start_pair(), and every signal each emitted, as [name, args...].
## (Members, not locals: a lambda that captures a RefCounted and is connected to that object's
## own signal would keep it alive forever.)
var server: WebSocketServer
var client: WebSocketClient
var server_events: Array = []
var client_events: Array = []


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
	var all := PackedStringArray(["--headless", "--path", ProjectSettings.globalize_path("res://"), "-s", script, "--"])
	all.append_array(args)
	return spawn(tool_path("WSRS_GODOT"), all)


## The program named by environment variable `variable` (set by `cargo xtask test`), or "" after
## recording a failure that says so.
func tool_path(variable: String) -> String:
	var path := OS.get_environment(variable)
	if path.is_empty():
		check(false, "%s is not set: run the tests through `cargo xtask test` (its output says why a peer is missing)" % variable)
	return path


## Starts `program` with `args` (nothing when `program` is ""); it is killed at teardown if still
## running. Returns its pid (or -1).
func spawn(program: String, args: PackedStringArray) -> int:
	if program.is_empty():
		return -1
	var pid := OS.create_process(program, args)
	check(pid > 0, "could not start %s" % program)
	if pid > 0:
		_children.append(pid)
	return pid


## A free TCP port on 127.0.0.1 (for a helper process to listen on).
func free_port() -> int:
	var probe := TCPServer.new()
	probe.listen(0, "127.0.0.1")
	var port := probe.get_local_port()
	probe.stop()
	return port


## The contents of a JSON file a helper wrote, or null.
func read_json(path: String) -> Variant:
	if not FileAccess.file_exists(path):
		return null
	return JSON.parse_string(FileAccess.get_file_as_string(path))


## Makes `server` (listening on a free port on 127.0.0.1) record its signals in server_events.
## `configure` may set properties before listen(). Returns the port, or 0 on failure.
func start_server(configure := Callable(), protocols := PackedStringArray()) -> int:
	server = WebSocketServer.new()
	server.bind_ip = "127.0.0.1"
	if configure.is_valid():
		configure.call(server)
	server.client_connected.connect(func(id, p, r): server_events.append(["client_connected", id, p, r]))
	server.client_disconnected.connect(func(id, clean): server_events.append(["client_disconnected", id, clean]))
	server.client_close_request.connect(func(id, code, reason): server_events.append(["client_close_request", id, code, reason]))
	server.data_received.connect(func(id): server_events.append(["data_received", id]))
	server.peer_connected.connect(func(id): server_events.append(["peer_connected", id]))
	server.peer_disconnected.connect(func(id): server_events.append(["peer_disconnected", id]))
	var err := server.listen(0, protocols)
	check_eq(err, OK, "listen")
	return server.get_local_port() if err == OK else 0


## Makes `client` record its signals in client_events and connect to `url`.
func start_client(url: String, protocols := PackedStringArray(), headers := PackedStringArray(), configure := Callable()) -> void:
	client = WebSocketClient.new()
	if configure.is_valid():
		configure.call(client)
	client.connection_established.connect(func(p): client_events.append(["connection_established", p]))
	client.connection_closed.connect(func(clean): client_events.append(["connection_closed", clean]))
	client.connection_error.connect(func(): client_events.append(["connection_error"]))
	client.data_received.connect(func(): client_events.append(["data_received"]))
	client.server_close_request.connect(func(code, reason): client_events.append(["server_close_request", code, reason]))
	check_eq(client.connect_to_url(url, protocols, false, headers), OK, "connect_to_url")


## start_server() and start_client() on it, waiting until both sides are open. Returns the
## client's id on the server, or -1.
func start_pair(path := "/", server_setup := Callable(), client_setup := Callable()) -> int:
	var port := start_server(server_setup)
	if port == 0:
		return -1
	start_client("ws://127.0.0.1:%d%s" % [port, path], PackedStringArray(), PackedStringArray(), client_setup)
	var ok: bool = await until(func(): return has_event(server_events, "client_connected") and has_event(client_events, "connection_established"),
		[server, client], 5.0, "connection")
	return first_event(server_events, "client_connected")[1] if ok else -1


## Makes `server` send every message it receives back, with its kind (text or binary).
func echo_with_kinds() -> void:
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		while peer.get_available_packet_count() > 0:
			var data := peer.get_packet()
			peer.send(data, WebSocketConnection.WRITE_MODE_TEXT if peer.was_string_packet() else WebSocketConnection.WRITE_MODE_BINARY))


## A self-signed certificate for `subject` made with `key` that OpenSSL reads (nginx, HAProxy,
## Python's ssl): Godot's generator now and then writes the serial number with a needless leading
## byte, which OpenSSL 3 refuses ("illegal padding"); such a certificate is made again.
func openssl_readable_certificate(key: CryptoKey, subject: String) -> X509Certificate:
	var crypto := Crypto.new()
	var certificate := crypto.generate_self_signed_certificate(key, subject)
	for attempt in 16:
		if _serial_is_minimal(certificate):
			return certificate
		certificate = crypto.generate_self_signed_certificate(key, subject)
	check(false, "16 certificates in a row had a padded serial number")
	return certificate


## Whether the serial number in `certificate`'s DER has no needless leading byte (X.690 8.3.2).
func _serial_is_minimal(certificate: X509Certificate) -> bool:
	var body := ""
	for line in certificate.save_to_string().split("\n"):
		if not line.begins_with("-----"):
			body += line.strip_edges()
	var der := Marshalls.base64_to_raw(body)
	# Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, ...
	var at := _der_content(der, _der_content(der, 0))
	if der[at] == 0xA0:
		at = _der_end(der, at)
	var start := _der_content(der, at)
	if der[at] != 0x02 or _der_end(der, at) - start < 2:
		return der[at] == 0x02
	var first := der[start]
	var second := der[start + 1]
	return not ((first == 0x00 and second < 0x80) or (first == 0xFF and second >= 0x80))


## Where the content of the DER element at `at` starts.
func _der_content(der: PackedByteArray, at: int) -> int:
	var length_byte := der[at + 1]
	return at + 2 + (length_byte & 0x7f if length_byte >= 0x80 else 0)


## Where the DER element at `at` ends.
func _der_end(der: PackedByteArray, at: int) -> int:
	var length_byte := der[at + 1]
	if length_byte < 0x80:
		return at + 2 + length_byte
	var length := 0
	for i in length_byte & 0x7f:
		length = (length << 8) | der[at + 2 + i]
	return at + 2 + (length_byte & 0x7f) + length


## Whether `events` has one named `name`.
func has_event(events: Array, name: String) -> bool:
	return events.any(func(e): return e[0] == name)


## The first event named `name` (or an empty array).
func first_event(events: Array, name: String) -> Array:
	for e in events:
		if e[0] == name:
			return e
	return []


## How many events are named `name`.
func count_events(events: Array, name: String) -> int:
	return events.filter(func(e): return e[0] == name).size()


## An HTTP upgrade request written by hand, with `extra` header lines.
func upgrade_request(path := "/", extra := PackedStringArray()) -> PackedByteArray:
	var text := "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" % path
	text += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for line in extra:
		text += line + "\r\n"
	return (text + "\r\n").to_utf8_buffer()


## A plain TCP connection to 127.0.0.1:`port` (a peer that speaks bytes, not WebSocket).
func raw_connect(port: int, pollables: Array) -> StreamPeerTCP:
	var tcp := StreamPeerTCP.new()
	tcp.connect_to_host("127.0.0.1", port)
	var all := pollables.duplicate()
	all.append(tcp)
	await until(func(): return tcp.get_status() == StreamPeerTCP.STATUS_CONNECTED, all, 5.0, "raw TCP connect")
	return tcp


## Reads from `tcp` until an HTTP header block ends; returns it ("" on timeout).
func read_http_head(tcp: StreamPeerTCP, pollables: Array) -> String:
	var box := [PackedByteArray()]  # an Array, so the lambda's additions are seen here
	var all := pollables.duplicate()
	all.append(tcp)
	var done := func():
		var n := tcp.get_available_bytes()
		if n > 0:
			box[0] = box[0] + tcp.get_data(n)[1]
		return box[0].get_string_from_utf8().contains("\r\n\r\n")
	await until(done, all, 5.0, "an HTTP head")
	return box[0].get_string_from_utf8()


## Sends `request` on a new TCP connection and returns, as text, every byte the server sends
## until it closes the connection (5 s at most). `on_sent` runs once the bytes are out.
func raw_exchange(port: int, request: PackedByteArray, pollables: Array, on_sent := Callable()) -> String:
	var tcp: StreamPeerTCP = await raw_connect(port, pollables)
	tcp.put_data(request)
	if on_sent.is_valid():
		await on_sent.call()
	var box := [PackedByteArray()]
	var all := pollables.duplicate()
	all.append(tcp)
	# StreamPeerTCP.poll() reports the close only once every byte has been read.
	await until(func():
		if tcp.get_status() != StreamPeerTCP.STATUS_CONNECTED:
			return true
		var n := tcp.get_available_bytes()
		if n > 0:
			box[0] = box[0] + tcp.get_data(n)[1]
		return false, all, 5.0, "the server to close the connection")
	return box[0].get_string_from_utf8()


## Waits until a helper process reports (with helper_ready.gd's mark_ready) that it listens on
## `port`.
func helper_ready(port: int, timeout_s := 20.0) -> bool:
	var path := "user://ready_%d" % port
	return await until(func(): return FileAccess.file_exists(path), [], timeout_s, "helper listening on %d" % port)


## Whether a process started by spawn_godot() is still running.
func is_running(pid: int) -> bool:
	return OS.is_process_running(pid)


## Kills a process started by spawn_godot() (as a crash would: no goodbye on its sockets).
func kill_helper(pid: int) -> void:
	OS.kill(pid)
	_children.erase(pid)


## Called by the runner after the test: stops helper processes.
func teardown() -> void:
	for pid in _children:
		if OS.is_process_running(pid):
			OS.kill(pid)
	_children.clear()
