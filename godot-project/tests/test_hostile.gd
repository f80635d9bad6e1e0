## Hostile input: calls in the wrong state or with wrong arguments return an Error (or a safe
## value) with a push_error that says what was wrong; a panic inside the extension is caught;
## max_connections, allowed_origins and object decoding limit what the network can do.
extends "res://tests/test_case.gd"


func test_server_calls_in_the_wrong_state() -> void:
	var s := WebSocketServer.new()
	s.stop()  # before listen: nothing to do, no error
	check(not s.is_listening(), "not listening")
	check_eq(s.get_local_port(), 0, "no port before listen")
	expect_error("get_peer: not listening or not connected")
	check_eq(s.get_peer(2), null, "get_peer before listen")
	expect_error("get_peer_port: not listening or not connected")
	check_eq(s.get_peer_port(2), 0, "get_peer_port before listen")
	expect_error("disconnect_peer: not listening or not connected")
	s.disconnect_peer(2)
	check(not s.has_peer(-7), "has_peer with a negative id")
	expect_error("peer id 99999999999 is out of range")
	check_eq(s.get_peer_address(99999999999), "", "huge id")
	check_eq(s.listen(0), OK, "listen")
	expect_error("the server is already listening")
	check_eq(s.listen(0), ERR_ALREADY_IN_USE, "listen twice")
	s.stop()
	s.stop()  # twice: still fine
	check_eq(s.listen(0), OK, "listen again after stop")
	s.stop()


func test_bad_settings_are_refused_at_listen() -> void:
	var cases := [
		[func(s): s.inbound_buffer_size = -5, "inbound_buffer_size must be a positive number, not -5"],
		[func(s): s.outbound_buffer_size = 0, "outbound_buffer_size must be a positive number, not 0"],
		[func(s): s.max_message_size = -1, "max_message_size must be a positive number, not -1"],
		[func(s): s.handshake_timeout = -1.0, "handshake_timeout"],
		[func(s): s.heartbeat_interval = -2.0, "heartbeat_interval"],
		[func(s): s.supported_protocols = PackedStringArray([""]), "sub-protocol"],
		[func(s): s.supported_protocols = PackedStringArray(["bad protocol"]), "sub-protocol"],
		[func(s): s.handshake_headers = PackedStringArray(["X-Evil: a\r\nInjected: 1"]), "CR, LF or NUL"],
		[func(s): s.handshake_headers = PackedStringArray(["No colon"]), "is not of the form 'Name: value'"],
		[func(s): s.max_connections = -3, "max_connections must be 0 (no limit) or positive, not -3"],
		[func(s): s.bind_ip = "999.1.1.1", "is not an IP address"],
	]
	for c in cases:
		var s := WebSocketServer.new()
		c[0].call(s)
		expect_error(c[1])
		check_eq(s.listen(0), ERR_INVALID_PARAMETER, "refused: " + c[1])
		check(not s.is_listening(), "not listening after: " + c[1])
	# Huge but valid limits are accepted.
	var big := WebSocketServer.new()
	big.max_message_size = 1 << 40
	big.outbound_buffer_size = 1 << 40
	big.max_queued_packets = 1 << 30
	check_eq(big.listen(0), OK, "huge limits")
	big.stop()
	var c := WebSocketClient.new()
	expect_error("invalid URL ''")
	check_eq(c.connect_to_url(""), ERR_INVALID_PARAMETER, "empty URL")
	expect_error("invalid URL 'ws://'")
	check_eq(c.connect_to_url("ws://"), ERR_INVALID_PARAMETER, "URL without host")
	expect_error("header 'X-Evil' has a value with CR, LF or NUL")
	check_eq(c.connect_to_url("ws://127.0.0.1:9/", [], false, ["X-Evil: a\nb"]), ERR_INVALID_PARAMETER, "LF in a header")
	expect_error("sub-protocol")
	check_eq(c.connect_to_url("ws://127.0.0.1:9/", [""]), ERR_INVALID_PARAMETER, "empty protocol name")
	expect_error("disconnect_from_host: not listening or not connected")
	c.disconnect_from_host()


func test_calls_on_a_closed_connection() -> void:
	var id := await start_pair()
	if id < 0:
		return
	var peer: WebSocketConnection = server.get_peer(id)
	client.disconnect_from_host()
	await until(func(): return has_event(server_events, "client_disconnected"), [server, client], 5.0, "closed")
	expect_error("peer %d is not open" % id)
	check_eq(peer.put_packet(PackedByteArray([1])), ERR_UNAVAILABLE, "put_packet on a closed peer")
	check_eq(peer.close(), OK, "close on a closed peer does nothing")
	peer.set_no_delay(false)  # harmless
	check_eq(peer.get_available_packet_count(), 0, "nothing waiting")
	expect_error("no packet is available")
	check_eq(peer.get_packet(), PackedByteArray(), "get_packet on an empty queue")
	check_eq(peer.get_ready_state(), WebSocketConnection.STATE_CLOSED, "closed")
	expect_error("write mode -1 is not WRITE_MODE_TEXT")
	check_eq(peer.send(PackedByteArray([1]), -1), ERR_INVALID_PARAMETER, "bad write mode")


func test_a_panic_inside_the_extension_is_caught() -> void:
	var id := await start_pair()
	if id < 0:
		return
	expect_error("[panic rust/extension/src/server.rs")  # the message, "forced panic for the tests", follows on the next line
	server.debug_force_panic()
	# The engine is still here and the server still serves.
	client.get_peer(1).send_text("still alive")
	await until(func(): return server.has_peer(id) and server.get_peer(id).get_available_packet_count() == 1, [server, client], 5.0, "a message after the panic")
	check_eq(server.get_peer(id).get_packet().get_string_from_utf8(), "still alive", "message after the panic")


func test_max_connections_refuses_with_503() -> void:
	var port := start_server(func(s): s.max_connections = 2)
	var a: StreamPeerTCP = await raw_connect(port, [server])
	a.put_data(upgrade_request())
	var b: StreamPeerTCP = await raw_connect(port, [server])
	b.put_data(upgrade_request())
	await until(func(): return count_events(server_events, "client_connected") == 2, [server], 5.0, "two connections")
	var third: StreamPeerTCP = await raw_connect(port, [server])
	var head: String = await read_http_head(third, [server])
	check(head.begins_with("HTTP/1.1 503"), "third connection gets 503: " + head.get_slice("\r\n", 0))
	check_eq(count_events(server_events, "client_connected"), 2, "still two")
	a.disconnect_from_host()
	await until(func(): return count_events(server_events, "client_disconnected") == 1, [server], 5.0, "one left")
	var fourth: StreamPeerTCP = await raw_connect(port, [server])
	fourth.put_data(upgrade_request())
	var head4: String = await read_http_head(fourth, [server])
	check(head4.begins_with("HTTP/1.1 101"), "room again after one left: " + head4.get_slice("\r\n", 0))
	b.disconnect_from_host()
	third.disconnect_from_host()
	fourth.disconnect_from_host()


func test_allowed_origins() -> void:
	var port := start_server(func(s): s.allowed_origins = PackedStringArray(["https://mygame.example"]))
	var evil: StreamPeerTCP = await raw_connect(port, [server])
	evil.put_data(upgrade_request("/", PackedStringArray(["Origin: https://evil.example"])))
	var head: String = await read_http_head(evil, [server])
	check(head.begins_with("HTTP/1.1 403"), "foreign origin refused: " + head.get_slice("\r\n", 0))
	var good: StreamPeerTCP = await raw_connect(port, [server])
	good.put_data(upgrade_request("/", PackedStringArray(["Origin: https://mygame.example"])))
	check((await read_http_head(good, [server])).begins_with("HTTP/1.1 101"), "allowed origin accepted")
	var native: StreamPeerTCP = await raw_connect(port, [server])
	native.put_data(upgrade_request())
	check((await read_http_head(native, [server])).begins_with("HTTP/1.1 101"), "no Origin (a native client) accepted")
	evil.disconnect_from_host()
	good.disconnect_from_host()
	native.disconnect_from_host()


func test_objects_are_not_decoded_unless_asked() -> void:
	var id := await start_pair()
	if id < 0:
		return
	var to_client: WebSocketConnection = server.get_peer(id)
	var to_server: WebSocketConnection = client.get_peer(1)
	var object := RefCounted.new()
	check_eq(to_server.put_var(object, true), OK, "an encoded object sent")
	await until(func(): return to_client.get_available_packet_count() == 1, [server, client], 5.0, "the object arrives")
	# Godot's own refusal to decode an object, and get_var's report of it.
	expect_error("p_allow_objects")
	expect_error("Returning: Variant()")
	var decoded: Variant = to_client.get_var()
	check(not decoded is Object, "get_var() does not decode objects by default (got %s)" % [decoded])
