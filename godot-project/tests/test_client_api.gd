## WebSocketClient's settings: handshake_timeout, supported_protocols, handshake_headers and
## custom_headers as a server sees them, and calls in the wrong state.
extends "res://tests/test_case.gd"

var tcp_server: TCPServer


## A TCPServer on a free loopback port that accepts but never answers; returns its port.
func silent_server() -> int:
	tcp_server = TCPServer.new()
	check_eq(tcp_server.listen(0, "127.0.0.1"), OK, "TCPServer listen")
	return tcp_server.get_local_port()


## The upgrade request the client sent to the silent server.
func received_request() -> String:
	if not await until(func(): return tcp_server.is_connection_available(), [client], 5.0, "the client's TCP connection"):
		return ""
	var conn := tcp_server.take_connection()
	return await read_http_head(conn, [client])


func test_handshake_timeout_ends_a_connection_the_server_never_answers() -> void:
	var port := silent_server()
	var started := Time.get_ticks_msec()
	expect_error("handshake not finished within 500ms")
	start_client("ws://127.0.0.1:%d/" % port, PackedStringArray(), PackedStringArray(), func(c): c.handshake_timeout = 0.5)
	await until(func(): return has_event(client_events, "connection_error"), [client], 5.0, "connection_error")
	var waited := Time.get_ticks_msec() - started
	check(waited >= 400 and waited < 3000, "connection_error after about 0.5 s (took %d ms)" % waited)
	check_eq(client.get_peer(1).get_ready_state(), WebSocketConnection.STATE_CLOSED, "closed after the timeout")
	tcp_server.stop()


func test_properties_apply_when_connect_to_url_gets_none() -> void:
	var port := silent_server()
	start_client("ws://127.0.0.1:%d/path?q=1" % port, PackedStringArray(), PackedStringArray(), func(c):
		c.supported_protocols = PackedStringArray(["beta", "alpha"])
		c.handshake_headers = PackedStringArray(["X-Token: abc123"]))
	var head: String = await received_request()
	check(head.begins_with("GET /path?q=1 HTTP/1.1\r\n"), "request line: %s" % head.get_slice("\r\n", 0))
	check(head.to_lower().contains("sec-websocket-protocol: beta, alpha\r\n"), "supported_protocols offered in order: %s" % head)
	check(head.to_lower().contains("x-token: abc123\r\n"), "handshake_headers sent: %s" % head)
	client.disconnect_from_host()
	tcp_server.stop()


func test_arguments_win_over_properties() -> void:
	var port := silent_server()
	start_client("ws://127.0.0.1:%d/" % port, PackedStringArray(["chat"]), PackedStringArray(["X-Custom: 1", "X-Other: two"]), func(c):
		c.supported_protocols = PackedStringArray(["ignored"])
		c.handshake_headers = PackedStringArray(["X-Ignored: yes"]))
	var head: String = await received_request()
	check(head.to_lower().contains("sec-websocket-protocol: chat\r\n"), "protocols argument offered: %s" % head)
	check(head.to_lower().contains("x-custom: 1\r\n") and head.to_lower().contains("x-other: two\r\n"), "custom_headers sent: %s" % head)
	check(not head.to_lower().contains("ignored"), "properties not used when arguments are given")
	client.disconnect_from_host()
	tcp_server.stop()


func test_no_protocols_sends_no_protocol_header() -> void:
	var port := silent_server()
	start_client("ws://127.0.0.1:%d/" % port)
	var head: String = await received_request()
	check(head.begins_with("GET / HTTP/1.1"), "a request arrived")
	check(not head.to_lower().contains("sec-websocket-protocol"), "no Sec-WebSocket-Protocol header")
	client.disconnect_from_host()
	tcp_server.stop()


func test_calls_in_the_wrong_state_are_refused() -> void:
	var port := start_server()
	start_client("ws://127.0.0.1:%d/" % port)
	expect_error("the client is already connecting or connected")
	check_eq(client.connect_to_url("ws://127.0.0.1:%d/" % port), ERR_ALREADY_IN_USE, "connect twice")
	await until(func(): return has_event(client_events, "connection_established"), [server, client], 5.0, "connected")
	expect_error("a client's only peer is 1 (the server), not 2")
	check_eq(client.get_peer(2), null, "a client has only peer 1")
	client.disconnect_from_host()
	await until(func(): return has_event(client_events, "connection_closed"), [server, client], 5.0, "closed")
	# After the close the client can connect again.
	client_events.clear()
	check_eq(client.connect_to_url("ws://127.0.0.1:%d/" % port), OK, "connect again after the close")
	await until(func(): return has_event(client_events, "connection_established"), [server, client], 5.0, "connected again")
