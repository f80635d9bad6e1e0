## Real third-party peers, text and binary both ways: Python's `websockets` as client of our
## server and as server for our client, and a page in headless Chromium against our server.
## `cargo xtask test` provides them through WSRS_PYTHON and WSRS_CHROMIUM.
extends "res://tests/test_case.gd"

## What our server received, as [data (String for text, PackedByteArray for binary), was_string].
var received: Array = []


## Makes `server` echo nothing but record every message in `received`.
func record_messages() -> void:
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		while peer.get_available_packet_count() > 0:
			var data := peer.get_packet()
			received.append([data.get_string_from_utf8() if peer.was_string_packet() else data, peer.was_string_packet()]))


func test_python_client_against_our_server() -> void:
	var python := tool_path("WSRS_PYTHON")
	if python.is_empty():
		return
	var port := start_server(Callable(), PackedStringArray(["chat", "game"]))
	record_messages()
	# Greet each client with a text and a binary message, then echo what comes with its kind.
	server.client_connected.connect(func(id, _p, _r):
		server.get_peer(id).send_text("welcome python")
		server.get_peer(id).put_packet(PackedByteArray([1, 2, 3])))
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		for message in received.slice(peer.get_meta("echoed", 0)):
			var data: PackedByteArray = message[0].to_utf8_buffer() if message[1] else message[0]
			peer.send(data, WebSocketConnection.WRITE_MODE_TEXT if message[1] else WebSocketConnection.WRITE_MODE_BINARY)
		peer.set_meta("echoed", received.size()))
	var result_path := OS.get_user_data_dir().path_join("python_client_%d.json" % port)
	DirAccess.remove_absolute(result_path)
	var script := ProjectSettings.globalize_path("res://tests/peers/ws_peer.py")
	var pid := spawn(python, PackedStringArray([script, "client", "ws://127.0.0.1:%d/py?lang=python" % port, result_path]))
	if pid < 0:
		return
	await until(func(): return has_event(server_events, "client_disconnected") and not is_running(pid), [server], 20.0, "the Python client to finish")
	var connected := first_event(server_events, "client_connected")
	check(connected.size() == 4 and connected[2] == "game" and connected[3] == "/py?lang=python", "client_connected: %s" % [connected])
	check_eq(received, [["text from python", true], [PackedByteArray([0, 98, 105, 110, 97, 114, 121, 255]), false]], "messages from Python")
	var id: int = connected[1] if connected.size() == 4 else -1
	check(server_events.has(["client_close_request", id, 4001, "python bye"]), "Python's close code and reason: %s" % [server_events])
	check(server_events.has(["client_disconnected", id, true]), "clean close")
	var result: Variant = read_json(result_path)
	check(result is Dictionary, "the Python client wrote its result")
	if result is Dictionary:
		check_eq(result["errors"], [], "what the Python client saw")
		check_eq(result["subprotocol"], "game", "sub-protocol seen by Python")


func test_our_client_against_a_python_server() -> void:
	var python := tool_path("WSRS_PYTHON")
	if python.is_empty():
		return
	var port := free_port()
	var result_path := OS.get_user_data_dir().path_join("python_server_%d.json" % port)
	var ready_path := OS.get_user_data_dir().path_join("python_server_%d.ready" % port)
	DirAccess.remove_absolute(result_path)
	DirAccess.remove_absolute(ready_path)
	var script := ProjectSettings.globalize_path("res://tests/peers/ws_peer.py")
	var pid := spawn(python, PackedStringArray([script, "server", str(port), result_path, ready_path]))
	if pid < 0 or not await until(func(): return FileAccess.file_exists(ready_path), [], 20.0, "the Python server to listen"):
		return
	start_client("ws://127.0.0.1:%d/from-godot?x=1" % port)
	var to_server: WebSocketConnection = client.get_peer(1)
	var got := []
	client.data_received.connect(func():
		while to_server.get_available_packet_count() > 0:
			var data := to_server.get_packet()
			got.append([data.get_string_from_utf8() if to_server.was_string_packet() else data, to_server.was_string_packet()]))
	if not await until(func(): return got.size() == 2, [client], 10.0, "the Python server's greeting"):
		return
	check_eq(got, [["hello from python", true], [PackedByteArray([255, 0]), false]], "greeting with its kinds")
	to_server.send_text("godot text")
	to_server.put_packet(PackedByteArray([7, 8, 9]))
	await until(func(): return got.size() == 4, [client], 10.0, "echoes from Python")
	check_eq(got.slice(2), [["godot text", true], [PackedByteArray([7, 8, 9]), false]], "echoes with their kinds")
	client.disconnect_from_host(4003, "godot bye")
	await until(func(): return has_event(client_events, "connection_closed") and not is_running(pid), [client], 10.0, "close and Python's exit")
	check(client_events.has(["connection_closed", true]), "clean close: %s" % [client_events])
	var result: Variant = read_json(result_path)
	check(result is Dictionary, "the Python server wrote its result")
	if result is Dictionary:
		check_eq(result["received"], [["text", "godot text"], ["binary", "070809"]], "what Python received")
		check_eq(result["close_code"], 4003, "close code seen by Python")
		check_eq(result["close_reason"], "godot bye", "close reason seen by Python")
		check_eq(result["path"], "/from-godot?x=1", "path seen by Python")
		check_eq(result["errors"], [], "Python server errors")


func test_chromium_page_against_our_server() -> void:
	var chromium := tool_path("WSRS_CHROMIUM")
	if chromium.is_empty():
		return
	var port := start_server(Callable(), PackedStringArray(["game"]))
	record_messages()
	var sent_close := [false]
	server.client_connected.connect(func(id, _p, _r):
		server.get_peer(id).send_text("to browser")
		server.get_peer(id).put_packet(PackedByteArray([9, 8, 7])))
	var page := "file://" + ProjectSettings.globalize_path("res://tests/peers/browser_peer.html").uri_encode().replace("%2F", "/") + "?port=%d" % port
	var profile := OS.get_user_data_dir().path_join("chromium-profile-%d" % port)
	var pid := spawn(chromium, PackedStringArray(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + profile, page]))
	if pid < 0:
		return
	var step := func():
		if received.size() == 4 and not sent_close[0]:
			var id: int = first_event(server_events, "client_connected")[1]
			server.get_peer(id).send_text("close please")
			sent_close[0] = true
		return has_event(server_events, "client_disconnected")
	await until(step, [server], 40.0, "the browser's messages and close")
	var connected := first_event(server_events, "client_connected")
	check(connected.size() == 4 and connected[2] == "game" and connected[3] == "/browser", "client_connected: %s" % [connected])
	var id: int = connected[1] if connected.size() == 4 else -1
	check_eq(received.size(), 4, "four messages from the browser")
	check(received.has(["chromium: ok", true]), "text from the browser: %s" % [received])
	check(received.has([PackedByteArray([1, 2, 3, 250]), false]), "binary from the browser")
	check(received.has(["echo:to browser", true]), "the browser answered our text with text")
	check(received.has([PackedByteArray([7, 8, 9]), false]), "the browser answered our binary with binary")
	check(server_events.has(["client_close_request", id, 4002, "browser done"]), "the browser's close code and reason: %s" % [server_events])
	check(server_events.has(["client_disconnected", id, true]), "clean close")
