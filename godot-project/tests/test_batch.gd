## The batch calls: WebSocketConnection.get_packets / send_packets, WebSocketServer.get_all_packets
## / broadcast. Order kept, text mode, typed and untyped arrays, errors for bad input, and a server
## that connects nothing to data_received.
extends "res://tests/test_case.gd"

## Ids of the clients the server reported, in order.
var connected_ids := []


## A raw server with no data_received connection and one client; the client's id, or -1.
func _batch_pair(inline: bool) -> int:
	server = WebSocketServer.new()
	server.bind_ip = "127.0.0.1"
	server.use_io_thread = not inline
	server.client_connected.connect(func(id, _p, _r): connected_ids.append(id))
	var err := server.listen(0)
	check_eq(err, OK, "listen")
	if err != OK:
		return -1
	client = WebSocketClient.new()
	client.use_io_thread = not inline
	var open := []
	client.connection_established.connect(func(_p): open.append(true))
	check_eq(client.connect_to_url("ws://127.0.0.1:%d/" % server.get_local_port()), OK, "connect_to_url")
	if not await until(func(): return connected_ids.size() == 1 and open.size() == 1, [server, client], 5.0, "connection"):
		return -1
	return connected_ids[0]


func _numbered(from: int, to: int) -> Array[PackedByteArray]:
	var messages: Array[PackedByteArray] = []
	for i in range(from, to):
		messages.append(("m%d" % i).to_utf8_buffer())
	return messages


func _strings(packets: Array) -> Array:
	return packets.map(func(p): return p.get_string_from_utf8())


func _echo_through_get_all_packets(inline: bool) -> void:
	var id := await _batch_pair(inline)
	if id < 0:
		return
	check(not server.data_received.has_connections(), "nothing listens to data_received")
	var to_server: WebSocketConnection = client.get_peer(1)
	check_eq(to_server.send_packets(_numbered(0, 200)), OK, "send_packets with a typed array")
	var untyped := [("m200").to_utf8_buffer(), ("m201").to_utf8_buffer()]
	check_eq(to_server.send_packets(untyped), OK, "send_packets with an untyped array")
	var got := []
	var echoed := []
	await until(func():
		var packets: Dictionary = server.get_all_packets()
		for from in packets:
			check_eq(from, id, "packets are keyed by the client's id")
			got.append_array(packets[from])
			check_eq(server.get_peer(from).send_packets(packets[from]), OK, "echo with send_packets")
		echoed.append_array(to_server.get_packets())
		return echoed.size() >= 202, [server, client], 10.0, "202 echoes")
	check_eq(_strings(got), _strings(_numbered(0, 202)), "the server got every message, in order")
	check_eq(_strings(echoed), _strings(_numbered(0, 202)), "the echoes came back in order")
	check_eq(server.get_all_packets(), {}, "nothing left")
	check_eq(to_server.get_packets(), [], "nothing left on the client")


func test_echo_in_batches() -> void:
	await _echo_through_get_all_packets(false)


func test_echo_in_batches_without_io_threads() -> void:
	await _echo_through_get_all_packets(true)


func test_text_batches_and_mixed_calls() -> void:
	var id := await _batch_pair(false)
	if id < 0:
		return
	var to_server: WebSocketConnection = client.get_peer(1)
	var texts: Array[PackedByteArray] = ["é1".to_utf8_buffer(), "é2".to_utf8_buffer()]
	check_eq(to_server.send_packets(texts, WebSocketConnection.WRITE_MODE_TEXT), OK, "text batch")
	var peer: WebSocketConnection = server.get_peer(id)
	await until(func(): return peer.get_available_packet_count() == 2, [server, client], 5.0, "2 packets")
	# A per-packet take first; the batch call then has only what is left.
	check_eq(peer.get_packet().get_string_from_utf8(), "é1", "get_packet takes the oldest")
	check(peer.was_string_packet(), "it came as text")
	var rest := peer.get_packets()
	check_eq(_strings(rest), ["é2"], "get_packets takes the rest")
	check(peer.was_string_packet(), "was_string_packet tells about the last one taken")
	check_eq(server.get_all_packets(), {}, "get_all_packets has nothing the per-peer calls took")
	check_eq(peer.send_packets([]), OK, "an empty batch is fine")


func test_batch_errors() -> void:
	var id := await _batch_pair(false)
	if id < 0:
		return
	var peer: WebSocketConnection = server.get_peer(id)
	expect_error("element 1 is a")
	check_eq(peer.send_packets([PackedByteArray([1]), "text"]), ERR_INVALID_PARAMETER, "a String element")
	expect_error("write mode 7")
	check_eq(peer.send_packets([PackedByteArray([1])], 7), ERR_INVALID_PARAMETER, "a bad write mode")
	expect_error("a text message must be valid UTF-8")
	check_eq(peer.send_packets([PackedByteArray([0xff])], WebSocketConnection.WRITE_MODE_TEXT), ERR_INVALID_PARAMETER, "bad text")
	check_eq(peer.get_current_outbound_buffered_amount(), 0, "nothing of a refused batch was queued")
	expect_error("send_to_peers: not sent to 1 of the peers (the others got it): no connected peer has id 4242")
	check_eq(server.send_to_peers(PackedInt32Array([4242]), PackedByteArray([1])), ERR_DOES_NOT_EXIST, "an unknown id")
	expect_error("write mode 3")
	check_eq(server.broadcast(PackedByteArray([1]), 3), ERR_INVALID_PARAMETER, "broadcast with a bad write mode")
	expect_error("write mode 3")
	check_eq(server.send_to_peers(PackedInt32Array([id]), PackedByteArray([1]), 3), ERR_INVALID_PARAMETER, "send_to_peers with a bad write mode")
	var multiplayer_server := WebSocketServer.new()
	multiplayer_server.bind_ip = "127.0.0.1"
	check_eq(multiplayer_server.create_server(0), OK, "create_server")
	expect_error("get_all_packets: ")
	check_eq(multiplayer_server.get_all_packets(), {}, "get_all_packets in multiplayer mode")
	expect_error("raw broadcast in multiplayer mode")
	check_eq(multiplayer_server.broadcast(PackedByteArray([1])), ERR_UNAVAILABLE, "broadcast in multiplayer mode")
	multiplayer_server.close()
	server.stop()
	expect_error("get_all_packets: ")
	check_eq(server.get_all_packets(), {}, "get_all_packets on a stopped server")


func test_broadcast_to_all_and_to_some() -> void:
	var id := await _batch_pair(false)
	if id < 0:
		return
	var second := WebSocketClient.new()
	var open := []
	second.connection_established.connect(func(_p): open.append(true))
	check_eq(second.connect_to_url("ws://127.0.0.1:%d/" % server.get_local_port()), OK, "second connect")
	if not await until(func(): return open.size() == 1 and connected_ids.size() == 2, [server, client, second], 5.0, "second client"):
		return
	var ids := server.get_peer_ids()
	ids.sort()
	var expected := PackedInt32Array(connected_ids)
	expected.sort()
	check_eq(ids, expected, "get_peer_ids lists both clients")
	check_eq(server.broadcast("to all".to_utf8_buffer(), WebSocketConnection.WRITE_MODE_TEXT), OK, "broadcast to all")
	check_eq(server.send_to_peers(PackedInt32Array([id]), "to one".to_utf8_buffer()), OK, "send_to_peers to one id")
	check_eq(server.broadcast("all but one".to_utf8_buffer(), WebSocketConnection.WRITE_MODE_BINARY, PackedInt32Array([id])), OK, "broadcast excluding one")
	var first_got := []
	var second_got := []
	await until(func():
		first_got.append_array(client.get_peer(1).get_packets())
		second_got.append_array(second.get_peer(1).get_packets())
		return first_got.size() == 2 and second_got.size() == 2, [server, client, second], 5.0, "broadcasts")
	check_eq(_strings(first_got), ["to all", "to one"], "the named client got both, not the one that excluded it")
	check_eq(_strings(second_got), ["to all", "all but one"], "the other got the ones to all")
	second.close()
