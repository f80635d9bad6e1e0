## WebSocketServer's settings and queries: bind_ip, handshake_timeout, refuse_new_connections,
## sub-protocols, extra headers, set_buffers and the 4.x properties, peer address and port.
extends "res://tests/test_case.gd"


func test_defaults_match_godot() -> void:
	var s := WebSocketServer.new()
	check_eq(s.bind_ip, "*", "bind_ip")
	check_eq(s.handshake_timeout, 3.0, "handshake_timeout")
	check_eq(s.inbound_buffer_size, 65535, "inbound_buffer_size")
	check_eq(s.outbound_buffer_size, 65535, "outbound_buffer_size")
	check_eq(s.max_queued_packets, 2048, "max_queued_packets")
	check_eq(s.supported_protocols, PackedStringArray(), "supported_protocols")
	check_eq(s.handshake_headers, PackedStringArray(), "handshake_headers")
	check_eq(s.refuse_new_connections, false, "refuse_new_connections")
	var c := WebSocketClient.new()
	check_eq(c.handshake_timeout, 3.0, "client handshake_timeout")
	check_eq(c.max_queued_packets, 2048, "client max_queued_packets")


func test_set_buffers_sets_the_limits_in_kib() -> void:
	var s := WebSocketServer.new()
	check_eq(s.set_buffers(16, 32, 8, 64), OK, "set_buffers")
	check_eq(s.inbound_buffer_size, 16 * 1024, "inbound size")
	check_eq(s.outbound_buffer_size, 8 * 1024, "outbound size")
	check_eq(s.max_queued_packets, 64, "max packets")
	expect_error("input_buffer_size_kb must be a positive number, not -1")
	check_eq(s.set_buffers(-1, 32, 8, 64), ERR_INVALID_PARAMETER, "negative size")
	expect_error("output_max_packets must be a positive number, not 0")
	check_eq(s.set_buffers(1, 1, 1, 0), ERR_INVALID_PARAMETER, "zero packets")
	s.max_queued_packets = 0
	expect_error("max_queued_packets (inbound) must be a positive number, not 0")
	check_eq(s.listen(0), ERR_INVALID_PARAMETER, "listen with a zero limit")


func test_bind_ip_restricts_the_interface_and_peer_address_is_reported() -> void:
	var port := start_server(func(s): s.bind_ip = "127.0.0.1")
	# Bound to IPv4 loopback only: the IPv6 loopback finds nobody.
	expect_error("connecting to ws://[::1]:%d/ failed" % port)
	start_client("ws://[::1]:%d/" % port)
	await until(func(): return has_event(client_events, "connection_error"), [server, client], 5.0, "refusal on ::1")
	client_events.clear()
	start_client("ws://127.0.0.1:%d/" % port)
	await until(func(): return has_event(server_events, "client_connected"), [server, client], 5.0, "connection on 127.0.0.1")
	var id: int = first_event(server_events, "client_connected")[1]
	check_eq(server.get_peer_address(id), "127.0.0.1", "get_peer_address")
	check(server.get_peer_port(id) > 0, "get_peer_port")
	check_eq(client.get_connected_host(), "127.0.0.1", "client get_connected_host")
	check_eq(client.get_connected_port(), port, "client get_connected_port")
	expect_error("no connected peer has id 5")
	check_eq(server.get_peer_address(5), "", "address of an unknown id")
	check_eq(server.get_peer_port(5), 0, "port of an unknown id")
	expect_error("bind address 'not an ip' is not an IP address")
	var other := WebSocketServer.new()
	other.bind_ip = "not an ip"
	check_eq(other.listen(0), ERR_INVALID_PARAMETER, "bad bind_ip")


func test_wildcard_bind_accepts_ipv4_and_ipv6() -> void:
	var port := start_server(func(s): s.bind_ip = "*")
	start_client("ws://[::1]:%d/" % port)
	await until(func(): return has_event(client_events, "connection_established"), [server, client], 5.0, "IPv6 connection")
	client.disconnect_from_host()
	var second := WebSocketClient.new()
	var ok := [false]
	second.connection_established.connect(func(_p): ok[0] = true)
	second.connect_to_url("ws://127.0.0.1:%d/" % port)
	await until(func(): return ok[0], [server, client, second], 5.0, "IPv4 connection")


func test_handshake_timeout_drops_a_silent_client_and_others_are_unaffected() -> void:
	var port := start_server(func(s): s.handshake_timeout = 0.5)
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	var half := upgrade_request().slice(0, 30)
	tcp.put_data(half)  # half a handshake, then silence
	start_client("ws://127.0.0.1:%d/" % port)
	await until(func(): return has_event(server_events, "client_connected"), [server, client], 5.0, "the normal client")
	var dropped := func():
		tcp.poll()
		return tcp.get_status() != StreamPeerTCP.STATUS_CONNECTED or tcp.get_available_bytes() < 0
	var start := Time.get_ticks_msec()
	# A closed socket reads as STATUS_NONE/ERROR, or as end of stream on the next read.
	await until(func():
		tcp.poll()
		if tcp.get_status() != StreamPeerTCP.STATUS_CONNECTED:
			return true
		var r := tcp.get_partial_data(1)
		return r[0] != OK, [server, client], 5.0, "the half-handshake client to be dropped")
	var waited := (Time.get_ticks_msec() - start) / 1000.0
	check(waited >= 0.3, "dropped after about handshake_timeout, not at once (%.2f s)" % waited)
	check_eq(count_events(server_events, "client_connected"), 1, "only the normal client became a peer")
	# The normal client still works.
	var id: int = first_event(server_events, "client_connected")[1]
	server.get_peer(id).put_packet("still here".to_utf8_buffer())
	await until(func(): return client.get_peer(1).get_available_packet_count() == 1, [server, client], 5.0, "message to the normal client")
	check(dropped.is_valid(), "helper lambda")


func test_refuse_new_connections() -> void:
	var port := start_server()
	server.refuse_new_connections = true
	check(server.refuse_new_connections, "property reads back")
	expect_error("connecting to ws://127.0.0.1:%d/ failed" % port)
	start_client("ws://127.0.0.1:%d/" % port)
	await until(func(): return has_event(client_events, "connection_error"), [server, client], 5.0, "refusal")
	check(not has_event(server_events, "client_connected"), "no peer while refusing")
	server.refuse_new_connections = false
	client_events.clear()
	start_client("ws://127.0.0.1:%d/" % port)
	await until(func(): return has_event(client_events, "connection_established"), [server, client], 5.0, "accepted again")


func test_sub_protocol_is_the_first_of_the_server_list_that_the_client_offers() -> void:
	var port := start_server(func(s): s.supported_protocols = PackedStringArray(["chat", "json"]))
	start_client("ws://127.0.0.1:%d/" % port, PackedStringArray(["json", "chat"]))
	await until(func(): return has_event(client_events, "connection_established"), [server, client], 5.0, "connection")
	check_eq(first_event(server_events, "client_connected")[2], "chat", "server's pick reported in client_connected")
	check_eq(first_event(client_events, "connection_established")[1], "chat", "client sees the pick")
	check_eq(client.get_peer(1).get_selected_protocol(), "chat", "get_selected_protocol")
	# listen()'s own list wins over the property.
	var other := WebSocketServer.new()
	other.bind_ip = "127.0.0.1"
	other.supported_protocols = PackedStringArray(["ignored"])
	var picked := []
	other.client_connected.connect(func(_id, p, _r): picked.append(p))
	check_eq(other.listen(0, PackedStringArray(["json"])), OK, "listen with protocols")
	var c := WebSocketClient.new()
	c.connect_to_url("ws://127.0.0.1:%d/" % other.get_local_port(), PackedStringArray(["chat", "json"]))
	await until(func(): return picked.size() == 1, [other, c], 5.0, "second server")
	check_eq(picked, ["json"], "listen()'s protocols")


func test_a_client_offering_none_of_the_protocols_is_refused() -> void:
	var port := start_server(func(s): s.supported_protocols = PackedStringArray(["chat"]))
	expect_error("connecting to ws://127.0.0.1:%d/ failed" % port)
	start_client("ws://127.0.0.1:%d/" % port, PackedStringArray(["video"]))
	await until(func(): return has_event(client_events, "connection_error"), [server, client], 5.0, "refusal")
	check(not has_event(server_events, "client_connected"), "no peer")
	# The refusal is an HTTP 400 that names the cause.
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	tcp.put_data(upgrade_request("/", PackedStringArray(["Sec-WebSocket-Protocol: video"])))
	var head: String = await read_http_head(tcp, [server])
	check(head.begins_with("HTTP/1.1 400"), "400 response: " + head.get_slice("\r\n", 0))


func test_extra_headers_and_resource_name_reach_the_other_side() -> void:
	var port := start_server(func(s): s.set_extra_headers(PackedStringArray(["X-Server: yes"])))
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	tcp.put_data(upgrade_request("/lobby?room=7"))
	var head: String = await read_http_head(tcp, [server])
	check(head.begins_with("HTTP/1.1 101"), "switching protocols")
	check(head.contains("X-Server: yes") or head.contains("x-server: yes"), "extra response header in: " + head)
	check_eq(server.handshake_headers, PackedStringArray(["X-Server: yes"]), "set_extra_headers sets handshake_headers")
	check(not head.to_lower().contains("sec-websocket-protocol"), "no protocol header when none was asked")
	await until(func(): return has_event(server_events, "client_connected"), [server], 5.0, "raw client as peer")
	check_eq(first_event(server_events, "client_connected")[3], "/lobby?room=7", "resource_name")
	# The client's custom headers and the absence of a protocol header, seen by a plain TCP server.
	var listener := TCPServer.new()
	check_eq(listener.listen(0, "127.0.0.1"), OK, "TCPServer listen")
	start_client("ws://127.0.0.1:%d/x" % listener.get_local_port(), PackedStringArray(), PackedStringArray(["X-Client: hi", "Authorization: Bearer t0k"]))
	var conn := [null]
	await until(func():
		if listener.is_connection_available():
			conn[0] = listener.take_connection()
		return conn[0] != null, [client], 5.0, "our client at the TCP server")
	if conn[0] == null:
		return
	var request: String = await read_http_head(conn[0], [client])
	check(request.begins_with("GET /x HTTP/1.1"), "request line: " + request.get_slice("\r\n", 0))
	check(request.to_lower().contains("x-client: hi"), "custom header sent")
	check(request.to_lower().contains("authorization: bearer t0k"), "second custom header sent")
	check(not request.to_lower().contains("sec-websocket-protocol"), "no protocol header for an empty list")
	listener.stop()
