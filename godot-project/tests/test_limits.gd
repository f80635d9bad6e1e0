## Limits that never lose data: outbound back-pressure (ERR_OUT_OF_MEMORY), the inbound queue cap
## (TCP back-pressure), messages larger than the inbound buffer, max_message_size (1009) and the
## heartbeat that drops peers which stop answering.
extends "res://tests/test_case.gd"


## A packet of `size` bytes whose first four hold `seq`.
func numbered(seq: int, size: int) -> PackedByteArray:
	var data := PackedByteArray()
	data.resize(size)
	data.encode_u32(0, seq)
	return data


func test_full_outbound_queue_refuses_and_nothing_is_lost() -> void:
	# The client reads at most 8 messages ahead; the server may queue 64 KiB for it. Uncompressed:
	# the kernel's buffers must fill with the 16 KiB messages (mostly zeros, which permessage-deflate
	# would shrink to a few dozen bytes each).
	var id := await start_pair("/", func(s): s.outbound_buffer_size = 65536; s.permessage_deflate = false,
		func(c): c.max_queued_packets = 8; c.inbound_buffer_size = 1 << 20)
	if id < 0:
		return
	var to_client: WebSocketConnection = server.get_peer(id)
	var to_server: WebSocketConnection = client.get_peer(1)
	expect_error("outbound queue of peer %d is full (outbound_buffer_size = 65536 bytes" % id)
	# The client does not read. The server sends until put_packet refuses and the queue stays
	# full even after the I/O thread had time to write: the kernel's buffers are full too.
	var accepted := 0
	var stalled := false
	var deadline := Time.get_ticks_msec() + 20000
	while not stalled and Time.get_ticks_msec() < deadline:
		var refused := false
		for i in 64:
			var err := to_client.put_packet(numbered(accepted, 16384))
			if err != OK:
				check_eq(err, ERR_OUT_OF_MEMORY, "the refusal's code")
				refused = true
				break
			accepted += 1
		if refused:
			await get_tree().create_timer(0.05).timeout
			stalled = to_client.get_current_outbound_buffered_amount() > 0
		server.poll()
		client.poll()
		check(to_server.get_available_packet_count() <= 8, "inbound queue stays within max_queued_packets")
		await get_tree().process_frame
	check(stalled, "put_packet kept refusing while the client did not read (accepted %d)" % accepted)
	check(to_client.get_current_outbound_buffered_amount() <= 65536, "within outbound_buffer_size")
	# Now the client drains; the server retries the refused packet and sends ten more.
	# (Counters live in arrays: a lambda captures plain values by copy.)
	var total := accepted + 11
	var sent := [accepted]
	var received := [0]
	var in_order := [true]
	var step := func():
		if sent[0] < total and to_client.put_packet(numbered(sent[0], 16384)) == OK:
			sent[0] += 1
		if to_server.get_available_packet_count() > 8:
			in_order[0] = false
		while to_server.get_available_packet_count() > 0:
			var packet := to_server.get_packet()
			if packet.size() != 16384 or packet.decode_u32(0) != received[0]:
				in_order[0] = false
			received[0] += 1
		return received[0] == total
	await until(step, [server, client], 20.0, "every accepted message to arrive")
	check_eq(received[0], total, "messages received")
	check(in_order[0], "every message complete, in order, and the inbound queue never over 8")
	check_eq(to_client.get_current_outbound_buffered_amount(), 0, "outbound queue empty at the end")


func test_a_message_larger_than_the_inbound_buffer_arrives_whole() -> void:
	var id := await start_pair("/", Callable(), func(c): c.inbound_buffer_size = 1024)
	if id < 0:
		return
	var big := PackedByteArray()
	big.resize(3 << 20)
	for i in range(0, big.size(), 4096):
		big[i] = (i / 4096) % 251
	var to_client: WebSocketConnection = server.get_peer(id)
	# The big message fills the outbound queue; the next waits until it has gone out. The two
	# calls follow each other at once: the I/O thread may write 3 MiB in the time a check takes.
	expect_error("outbound queue of peer %d is full (outbound_buffer_size = 65535 bytes, 3145728 queued, 1 more asked)" % id)
	var first := to_client.put_packet(big)
	var second := to_client.put_packet(PackedByteArray([42]))
	check_eq(first, OK, "a 3 MiB message is queued (one message always fits)")
	check_eq(second, ERR_OUT_OF_MEMORY, "refused while the big one is queued")
	await until(func(): return to_client.put_packet(PackedByteArray([42])) == OK, [server, client], 10.0, "room for the next message")
	var to_server: WebSocketConnection = client.get_peer(1)
	await until(func(): return to_server.get_available_packet_count() >= 1, [server, client], 10.0, "the big message")
	check_eq(to_server.get_packet(), big, "3 MiB message arrives whole")
	await until(func(): return to_server.get_available_packet_count() >= 1, [server, client], 5.0, "the message after it")
	check_eq(to_server.get_packet(), PackedByteArray([42]), "then the next one")


func test_a_message_over_max_message_size_closes_with_1009() -> void:
	var id := await start_pair("/", func(s): s.max_message_size = 1024)
	if id < 0:
		return
	var to_server: WebSocketConnection = client.get_peer(1)
	var small := PackedByteArray()
	small.resize(1000)
	check_eq(to_server.put_packet(small), OK, "a message under the limit")
	var big := PackedByteArray()
	big.resize(2000)
	check_eq(to_server.put_packet(big), OK, "a message over the server's limit")
	expect_error("WebSocketServer: peer %d closed with 1009" % id)
	await until(func(): return has_event(server_events, "client_disconnected") and has_event(client_events, "connection_closed"),
		[server, client], 5.0, "the 1009 close")
	var close_request := first_event(client_events, "server_close_request")
	check(close_request.size() == 3 and close_request[1] == 1009, "client got close code 1009: %s" % [close_request])
	check(server_events.has(["client_disconnected", id, false]), "the server dropped the client")
	check_eq(server.get_peer(id).get_available_packet_count() if server.has_peer(id) else 1, 1, "the message under the limit was delivered")


func test_the_client_closes_with_1009_on_a_message_over_its_limit() -> void:
	var id := await start_pair("/", Callable(), func(c): c.max_message_size = 100)
	if id < 0:
		return
	var big := PackedByteArray()
	big.resize(101)
	server.get_peer(id).put_packet(big)
	expect_error("WebSocketClient: connection to the server closed with 1009")
	await until(func(): return has_event(server_events, "client_disconnected") and has_event(client_events, "connection_closed"),
		[server, client], 5.0, "the 1009 close")
	var close_request := first_event(server_events, "client_close_request")
	check(close_request.size() == 4 and close_request[2] == 1009, "server got close code 1009: %s" % [close_request])
	check(client_events.has(["connection_closed", false]), "the client dropped the connection")


## Connects a plain TCP peer that completes the upgrade and then never reads or answers.
func silent_peer(port: int) -> StreamPeerTCP:
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	tcp.put_data(upgrade_request())
	var head: String = await read_http_head(tcp, [server])
	check(head.begins_with("HTTP/1.1 101"), "silent peer upgraded")
	return tcp


func test_server_heartbeat_drops_a_silent_peer_and_keeps_a_live_one() -> void:
	var port := start_server(func(s): s.heartbeat_interval = 0.2)
	var silent := await silent_peer(port)
	start_client("ws://127.0.0.1:%d/" % port)
	if not await until(func(): return count_events(server_events, "client_connected") == 2, [server, client], 5.0, "both connected"):
		return
	var silent_id: int = first_event(server_events, "client_connected")[1]
	check_eq(server.get_peer(silent_id).heartbeat_interval, 0.2, "the connection reports the server's interval")
	expect_error("WebSocketServer: peer %d no answer to a ping" % silent_id)
	await until(func(): return has_event(server_events, "client_disconnected"), [server, client], 5.0, "the silent peer dropped")
	await pump([server, client], 0.6)
	check(server_events.has(["client_disconnected", silent_id, false]), "silent peer dropped, not a clean close")
	check_eq(count_events(server_events, "client_disconnected"), 1, "the live client (it answers pings) stays")
	check(not has_event(client_events, "connection_closed"), "the live client is still connected")
	silent.disconnect_from_host()


func test_connection_heartbeat_interval_applies_to_one_peer() -> void:
	var port := start_server()
	var silent := await silent_peer(port)
	var other := await silent_peer(port)
	if not await until(func(): return count_events(server_events, "client_connected") == 2, [server], 5.0, "both connected"):
		return
	var silent_id: int = first_event(server_events, "client_connected")[1]
	var peer: WebSocketConnection = server.get_peer(silent_id)
	check_eq(peer.heartbeat_interval, 0.0, "no heartbeat by default")
	peer.heartbeat_interval = 0.2
	check_eq(peer.heartbeat_interval, 0.2, "heartbeat set on one connection")
	expect_error("heartbeat_interval must be")
	peer.heartbeat_interval = -1.0
	check_eq(peer.heartbeat_interval, 0.2, "a negative interval is refused")
	expect_error("WebSocketServer: peer %d no answer to a ping" % silent_id)
	await until(func(): return has_event(server_events, "client_disconnected"), [server], 5.0, "that peer dropped")
	await pump([server], 0.6)
	check_eq(server_events.filter(func(e): return e[0] == "client_disconnected"), [["client_disconnected", silent_id, false]],
		"only the peer with a heartbeat was dropped")
	silent.disconnect_from_host()
	other.disconnect_from_host()


func test_client_heartbeat_drops_a_silent_server() -> void:
	# A server written by hand on TCPServer: it accepts the upgrade and then never answers.
	var tcp_server := TCPServer.new()
	check_eq(tcp_server.listen(0, "127.0.0.1"), OK, "TCPServer listen")
	var port := tcp_server.get_local_port()
	start_client("ws://127.0.0.1:%d/" % port, PackedStringArray(), PackedStringArray(), func(c): c.heartbeat_interval = 0.2)
	if not await until(func(): return tcp_server.is_connection_available(), [client], 5.0, "the client's TCP connection"):
		return
	var conn := tcp_server.take_connection()
	var head: String = await read_http_head(conn, [client])
	var key := ""
	for line in head.split("\r\n"):
		if line.to_lower().begins_with("sec-websocket-key:"):
			key = line.substr(line.find(":") + 1).strip_edges()
	var sha := HashingContext.new()
	sha.start(HashingContext.HASH_SHA1)
	sha.update((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").to_utf8_buffer())
	var accept := Marshalls.raw_to_base64(sha.finish())
	conn.put_data(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).to_utf8_buffer())
	if not await until(func(): return has_event(client_events, "connection_established"), [client], 5.0, "handshake with the silent server"):
		return
	expect_error("WebSocketClient: connection to the server no answer to a ping")
	await until(func(): return has_event(client_events, "connection_closed"), [client], 5.0, "the silent server dropped")
	check(client_events.has(["connection_closed", false]), "not a clean close")
	conn.disconnect_from_host()
	tcp_server.stop()
