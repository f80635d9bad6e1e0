## Many clients at once: each gets its own id, its own messages and a clean goodbye.
extends "res://tests/test_case.gd"

const CLIENTS := 40

var clients: Array[WebSocketClient] = []


func test_forty_clients_each_get_their_own_echo() -> void:
	server = WebSocketServer.new()
	check_eq(server.listen(0), OK, "listen")
	var url := "ws://127.0.0.1:%d/" % server.get_local_port()
	var ids := {}
	var gone := {}
	server.client_connected.connect(func(id, _p, _r): ids[id] = true)
	server.client_disconnected.connect(func(id, clean): gone[id] = clean)
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		peer.put_packet(peer.get_packet()))
	for i in CLIENTS:
		var c := WebSocketClient.new()
		check_eq(c.connect_to_url(url), OK, "connect %d" % i)
		clients.append(c)
	var everyone: Array = [server]
	everyone.append_array(clients)
	var all_open := func():
		return ids.size() == CLIENTS and clients.all(func(c): return c.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED)
	if not await until(all_open, everyone, 10.0, "%d connections" % CLIENTS):
		return
	for i in CLIENTS:
		for k in 5:
			clients[i].get_peer(1).put_packet(("%d:%d" % [i, k]).to_utf8_buffer())
	var got := func():
		return clients.all(func(c): return c.get_peer(1).get_available_packet_count() == 5)
	await until(got, everyone, 10.0, "5 echoes per client")
	for i in CLIENTS:
		var peer: WebSocketConnection = clients[i].get_peer(1)
		for k in 5:
			var text := peer.get_packet().get_string_from_utf8() if peer.get_available_packet_count() > 0 else "<missing>"
			check_eq(text, "%d:%d" % [i, k], "client %d message %d" % [i, k])
	for c in clients:
		c.disconnect_from_host()
	await until(func(): return gone.size() == CLIENTS, everyone, 10.0, "all disconnected")
	check(gone.values().all(func(clean): return clean), "every close was clean")
	server.stop()
