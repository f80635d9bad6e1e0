## WebSocketConnection (what get_peer returns): text and binary messages, write modes, the
## connection's facts, ready states and the close handshake in both directions.
extends "res://tests/test_case.gd"


## Takes every waiting packet of `peer` as [text_or_bytes, was_string].
func drain(peer: WebSocketConnection) -> Array:
	var got := []
	while peer.get_available_packet_count() > 0:
		var data := peer.get_packet()
		got.append([data.get_string_from_utf8() if peer.was_string_packet() else data, peer.was_string_packet()])
	return got


func test_text_and_binary_messages_and_write_modes() -> void:
	var id := await start_pair()
	if id < 0:
		return
	var to_server: WebSocketConnection = client.get_peer(1)
	var to_client: WebSocketConnection = server.get_peer(id)
	check_eq(to_server.get_write_mode(), WebSocketConnection.WRITE_MODE_BINARY, "default write mode")
	check_eq(to_server.send_text("héllo"), OK, "send_text")
	check_eq(to_server.send(PackedByteArray([0, 255, 7]), WebSocketConnection.WRITE_MODE_BINARY), OK, "send binary")
	check_eq(to_server.send("as text".to_utf8_buffer(), WebSocketConnection.WRITE_MODE_TEXT), OK, "send text mode")
	check_eq(to_server.send(PackedByteArray([1, 2])), OK, "send defaults to binary")
	to_server.set_write_mode(WebSocketConnection.WRITE_MODE_TEXT)
	check_eq(to_server.get_write_mode(), WebSocketConnection.WRITE_MODE_TEXT, "write mode set to text")
	check_eq(to_server.put_packet("put as text".to_utf8_buffer()), OK, "put_packet in text mode")
	to_server.set_write_mode(WebSocketConnection.WRITE_MODE_BINARY)
	check_eq(to_server.put_packet(PackedByteArray([9])), OK, "put_packet in binary mode")
	# Text frames must be UTF-8: refused with an error, nothing sent.
	expect_error("a text message must be valid UTF-8")
	check_eq(to_server.send(PackedByteArray([0xff, 0xfe]), WebSocketConnection.WRITE_MODE_TEXT), ERR_INVALID_PARAMETER, "invalid UTF-8 as text")
	expect_error("write mode 7 is not WRITE_MODE_TEXT (0) or WRITE_MODE_BINARY (1)")
	check_eq(to_server.send(PackedByteArray([1]), 7), ERR_INVALID_PARAMETER, "bad write mode in send")
	to_server.set_write_mode(7)
	check_eq(to_server.get_write_mode(), WebSocketConnection.WRITE_MODE_BINARY, "a bad write mode leaves the mode unchanged")
	await until(func(): return to_client.get_available_packet_count() == 6, [server, client], 5.0, "six messages")
	var got := drain(to_client)
	check_eq(got, [["héllo", true], [PackedByteArray([0, 255, 7]), false], ["as text", true],
		[PackedByteArray([1, 2]), false], ["put as text", true], [PackedByteArray([9]), false]], "messages, kinds and order")
	# And from the server to the client.
	check_eq(to_client.send_text("welcome"), OK, "server send_text")
	check_eq(to_client.put_var([1, "two"]), OK, "server put_var")
	await until(func(): return to_server.get_available_packet_count() == 2, [server, client], 5.0, "two messages to the client")
	check_eq(to_server.get_packet().get_string_from_utf8(), "welcome", "text to client")
	check(to_server.was_string_packet(), "was_string_packet after text")
	check_eq(to_server.get_var(), [1, "two"], "get_var")
	check(not to_server.was_string_packet(), "was_string_packet after binary")
	expect_error("no packet is available")
	check_eq(to_server.get_packet(), PackedByteArray(), "get_packet on an empty queue")


func test_connection_facts() -> void:
	var port := start_server(Callable(), PackedStringArray(["chat", "game"]))
	start_client("ws://127.0.0.1:%d/lobby?name=ann" % port, PackedStringArray(["game"]))
	var to_server: WebSocketConnection = client.get_peer(1)
	check_eq(to_server.get_ready_state(), WebSocketConnection.STATE_CONNECTING, "client state while connecting")
	check(not to_server.is_connected_to_host(), "not connected while connecting")
	check_eq(to_server.get_requested_url(), "ws://127.0.0.1:%d/lobby?name=ann" % port, "get_requested_url")
	if not await until(func(): return has_event(server_events, "client_connected") and has_event(client_events, "connection_established"),
			[server, client], 5.0, "connection"):
		return
	var id: int = first_event(server_events, "client_connected")[1]
	check_eq(first_event(server_events, "peer_connected"), ["peer_connected", id], "peer_connected with the same id")
	var to_client: WebSocketConnection = server.get_peer(id)
	check_eq(to_server.get_ready_state(), WebSocketConnection.STATE_OPEN, "client state open")
	check_eq(to_client.get_ready_state(), WebSocketConnection.STATE_OPEN, "server-side state open")
	check(to_server.is_connected_to_host() and to_client.is_connected_to_host(), "is_connected_to_host")
	check_eq(to_server.get_selected_protocol(), "game", "client's selected protocol")
	check_eq(to_client.get_selected_protocol(), "game", "server's selected protocol")
	check_eq(to_client.get_resource_name(), "/lobby?name=ann", "get_resource_name")
	check_eq(to_client.get_requested_url(), "", "no requested URL on the server side")
	check_eq(to_server.get_connected_host(), "127.0.0.1", "client's connected host")
	check_eq(to_server.get_connected_port(), port, "client's connected port")
	check_eq(to_client.get_connected_host(), "127.0.0.1", "server-side connected host")
	check_eq(to_client.get_connected_port(), server.get_peer_port(id), "server-side connected port")
	check_eq(to_server.get_close_code(), -1, "no close code while open")
	check_eq(to_server.get_current_outbound_buffered_amount(), 0, "nothing buffered")
	# set_no_delay toggles TCP_NODELAY; messages keep flowing either way.
	to_server.set_no_delay(false)
	to_server.send_text("after nagle on")
	to_server.set_no_delay(true)
	to_server.send_text("after nagle off")
	await until(func(): return to_client.get_available_packet_count() == 2, [server, client], 5.0, "messages after set_no_delay")


func test_client_close_reaches_the_server_with_code_and_reason() -> void:
	var id := await start_pair()
	if id < 0:
		return
	var to_server: WebSocketConnection = client.get_peer(1)
	var to_client: WebSocketConnection = server.get_peer(id)
	client.disconnect_from_host(4000, "bye now")
	check_eq(to_server.get_ready_state(), WebSocketConnection.STATE_CLOSING, "closing right after disconnect_from_host")
	await until(func(): return has_event(server_events, "client_disconnected") and has_event(client_events, "connection_closed"),
		[server, client], 5.0, "close handshake")
	check_eq(first_event(server_events, "client_close_request"), ["client_close_request", id, 4000, "bye now"], "client_close_request")
	check_eq(first_event(server_events, "client_disconnected"), ["client_disconnected", id, true], "clean on the server")
	check_eq(first_event(server_events, "peer_disconnected"), ["peer_disconnected", id], "peer_disconnected")
	check_eq(first_event(client_events, "connection_closed"), ["connection_closed", true], "clean on the client")
	check(not has_event(client_events, "server_close_request"), "the client started it: no server_close_request")
	check_eq(to_client.get_close_code(), 4000, "server sees the code")
	check_eq(to_client.get_close_reason(), "bye now", "server sees the reason")
	check_eq(to_server.get_ready_state(), WebSocketConnection.STATE_CLOSED, "client state closed")
	check_eq(to_client.get_ready_state(), WebSocketConnection.STATE_CLOSED, "server-side state closed")
	check(not server.has_peer(id), "peer forgotten after disconnect")
	expect_error("peer 1 is not open")
	check_eq(to_server.put_packet(PackedByteArray([1])), ERR_UNAVAILABLE, "put_packet on a closed peer")


func test_server_close_reaches_the_client_with_code_and_reason() -> void:
	var id := await start_pair()
	if id < 0:
		return
	var to_client: WebSocketConnection = server.get_peer(id)
	check_eq(to_client.close(4001, "kicked"), OK, "close")
	check_eq(to_client.get_ready_state(), WebSocketConnection.STATE_CLOSING, "closing right after close()")
	await until(func(): return has_event(server_events, "client_disconnected") and has_event(client_events, "connection_closed"),
		[server, client], 5.0, "close handshake")
	check_eq(first_event(client_events, "server_close_request"), ["server_close_request", 4001, "kicked"], "server_close_request")
	check_eq(first_event(client_events, "connection_closed"), ["connection_closed", true], "clean on the client")
	check_eq(first_event(server_events, "client_disconnected"), ["client_disconnected", id, true], "clean on the server")
	check(not has_event(server_events, "client_close_request"), "the server started it: no client_close_request")
	check_eq(client.get_peer(1).get_close_code(), 4001, "client sees the code")
	check_eq(client.get_peer(1).get_close_reason(), "kicked", "client sees the reason")
	expect_error("peer %d is not open" % id)
	check_eq(to_client.send_text("late"), ERR_UNAVAILABLE, "send_text on a closed peer")


func test_bad_close_calls_are_refused() -> void:
	var id := await start_pair()
	if id < 0:
		return
	var to_client: WebSocketConnection = server.get_peer(id)
	expect_error("close code 1005 cannot be sent")
	check_eq(to_client.close(1005), ERR_INVALID_PARAMETER, "reserved code")
	expect_error("close code 70000 cannot be sent")
	check_eq(to_client.close(70000), ERR_INVALID_PARAMETER, "huge code")
	expect_error("close reason is 200 bytes long; at most 123")
	check_eq(to_client.close(1000, "x".repeat(200)), ERR_INVALID_PARAMETER, "long reason")
	check_eq(to_client.get_ready_state(), WebSocketConnection.STATE_OPEN, "still open after refused closes")
	expect_error("close code 2000 cannot be sent")
	client.disconnect_from_host(2000)
	check_eq(client.get_peer(1).get_ready_state(), WebSocketConnection.STATE_OPEN, "client still open after a bad code")
	# The connection still works.
	to_client.send_text("still here")
	await until(func(): return client.get_peer(1).get_available_packet_count() == 1, [server, client], 5.0, "message after refused closes")


func test_disconnect_peer_closes_cleanly_or_drops_at_once() -> void:
	var first_id := await start_pair()
	if first_id < 0:
		return
	var second := WebSocketClient.new()
	var second_events := []
	second.connection_closed.connect(func(clean): second_events.append(clean))
	second.connect_to_url("ws://127.0.0.1:%d/" % server.get_local_port())
	if not await until(func(): return count_events(server_events, "client_connected") == 2, [server, client, second], 5.0, "second client"):
		return
	var second_id: int = server_events.filter(func(e): return e[0] == "client_connected")[1][1]
	# The engine's MultiplayerPeer.disconnect_peer(peer, force): a clean 1000 close by default...
	server.disconnect_peer(first_id)
	# ...and with force the peer is dropped at once, with no close handshake and no signal.
	server.disconnect_peer(second_id, true)
	check(not server.has_peer(second_id), "a forced disconnect forgets the peer at once")
	await until(func(): return has_event(server_events, "client_disconnected") and has_event(client_events, "connection_closed") and second_events.size() == 1,
		[server, client, second], 5.0, "both disconnected")
	await pump([server, client, second], 0.3)
	check(server_events.has(["client_disconnected", first_id, true]), "non-forced disconnect is clean")
	check(server_events.has(["peer_disconnected", first_id]), "peer_disconnected for the non-forced one")
	check(not server_events.any(func(e): return e.size() > 1 and e[1] == second_id and e[0].ends_with("disconnected")),
		"no disconnect signal for the forced one: %s" % [server_events])
	check(client_events.has(["server_close_request", 1000, ""]), "close code 1000 reached the first client")
	check(client_events.has(["connection_closed", true]), "first client closed cleanly")
	check_eq(second_events, [false], "second client lost its connection")
	expect_error("no connected peer has id 99")
	server.disconnect_peer(99)


func test_lost_connections_report_unclean_closes() -> void:
	# Server side: a client whose TCP connection just goes away.
	var port := start_server()
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	tcp.put_data(upgrade_request())
	var head: String = await read_http_head(tcp, [server])
	check(head.begins_with("HTTP/1.1 101"), "upgrade accepted")
	await until(func(): return has_event(server_events, "client_connected"), [server], 5.0, "raw client connected")
	var id: int = first_event(server_events, "client_connected")[1] if has_event(server_events, "client_connected") else -1
	tcp.disconnect_from_host()
	await until(func(): return has_event(server_events, "client_disconnected"), [server], 5.0, "lost client noticed")
	check(server_events.has(["client_disconnected", id, false]), "lost TCP connection is not a clean close")
	check_eq(server.get_peer(id) if server.has_peer(id) else null, null, "lost client forgotten")
	# Client side: the server's process is killed.
	var probe := WebSocketServer.new()
	probe.listen(0)
	var helper_port: int = probe.get_local_port()
	probe.stop()
	var pid := spawn_godot("res://tests/helpers/echo_server.gd", PackedStringArray([str(helper_port)]))
	if not await helper_ready(helper_port):
		return
	start_client("ws://127.0.0.1:%d/" % helper_port)
	if not await until(func(): return has_event(client_events, "connection_established"), [client], 10.0, "connected to the helper"):
		return
	kill_helper(pid)
	await until(func(): return has_event(client_events, "connection_closed"), [client], 10.0, "lost server noticed")
	check(client_events.has(["connection_closed", false]), "killed server is not a clean close")
	check_eq(client.get_peer(1).get_ready_state(), WebSocketConnection.STATE_CLOSED, "closed after the loss")
	check_eq(client.get_peer(1).get_close_code(), -1, "no close code after a loss")
	DirAccess.remove_absolute("user://ready_%d" % helper_port)


func test_packets_received_before_a_close_can_still_be_read() -> void:
	var id := await start_pair()
	if id < 0:
		return
	var to_client: WebSocketConnection = server.get_peer(id)
	for i in 5:
		to_client.send_text("last words %d" % i)
	to_client.close(1000, "done")
	await until(func(): return has_event(client_events, "connection_closed"), [server, client], 5.0, "closed")
	var got := drain(client.get_peer(1))
	check_eq(got.size(), 5, "every message sent before the close is readable after it")
	for i in got.size():
		check_eq(got[i][0], "last words %d" % i, "message %d" % i)
