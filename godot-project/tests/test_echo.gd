## Echo between our WebSocketServer and WebSocketClient, in one process and across two.
## (Objects live in member variables: a lambda that captures a RefCounted and is connected to
## that object's own signal would keep it alive forever.)
extends "res://tests/test_case.gd"



func test_echo_in_one_process() -> void:
	server = WebSocketServer.new()
	check_eq(server.listen(0), OK, "listen")
	check(server.is_listening(), "is_listening after listen")
	var port: int = server.get_local_port()
	var connected := []
	var received := []
	server.client_connected.connect(func(id, protocol, resource): connected.append([id, protocol, resource]))
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		var packet := peer.get_packet()
		received.append(packet)
		peer.put_packet(packet))
	client = WebSocketClient.new()
	var established := []
	client.connection_established.connect(func(protocol): established.append(protocol))
	check_eq(client.connect_to_url("ws://127.0.0.1:%d/game?room=1" % port), OK, "connect_to_url")
	if not await until(func(): return established.size() == 1 and connected.size() == 1, [server, client], 5.0, "connection"):
		return
	check_eq(connected[0][2], "/game?room=1", "resource_name")
	check(server.has_peer(connected[0][0]), "has_peer(new id)")
	check(connected[0][0] >= 2, "ids are 2 or more")
	check(not server.has_peer(12345), "has_peer(unknown id)")
	var to_server: WebSocketConnection = client.get_peer(1)
	check(to_server == client.get_peer(1), "get_peer returns the same object each time")
	for i in 20:
		check_eq(to_server.put_packet(("hello %d" % i).to_utf8_buffer()), OK, "put_packet %d" % i)
	var echoes := []
	client.data_received.connect(func():
		while client.get_peer(1).get_available_packet_count() > 0:
			echoes.append(client.get_peer(1).get_packet()))
	await until(func(): return echoes.size() == 20, [server, client], 5.0, "20 echoes")
	for i in 20:
		var got: String = echoes[i].get_string_from_utf8() if i < echoes.size() else "<missing>"
		check_eq(got, "hello %d" % i, "echo %d in order" % i)
	check_eq(received.size(), 20, "server got 20")
	# put_var / get_var work because WebSocketConnection is a real PacketPeer.
	check_eq(to_server.put_var({"hp": 42, "name": "knight"}), OK, "put_var")
	await until(func(): return echoes.size() == 21, [server, client], 5.0, "var echo")
	if echoes.size() == 21:
		check_eq(bytes_to_var(echoes[20]), {"hp": 42, "name": "knight"}, "get_var round trip")
	server.stop()
	check(not server.is_listening(), "not listening after stop")


func test_echo_without_io_threads() -> void:
	var inline := func(peer): peer.use_io_thread = false
	check(WebSocketServer.new().use_io_thread and WebSocketClient.new().use_io_thread, "use_io_thread is on by default")
	var id := await start_pair("/", inline, inline)
	if id < 0:
		return
	server.data_received.connect(func(from):
		var peer: WebSocketConnection = server.get_peer(from)
		while peer.get_available_packet_count() > 0:
			var text := peer.was_string_packet()
			peer.send(peer.get_packet(), WebSocketConnection.WRITE_MODE_TEXT if text else WebSocketConnection.WRITE_MODE_BINARY))
	var to_server: WebSocketConnection = client.get_peer(1)
	var big := PackedByteArray()
	big.resize(2 << 20)
	big.fill(7)
	for i in 50:
		to_server.send_text("inline %d" % i)
	# Sends wait in the outbound queue until a poll writes them; the 2 MiB message fits once the
	# queue is empty again.
	expect_error("outbound queue of peer 1 is full")
	check_eq(to_server.put_packet(big), ERR_OUT_OF_MEMORY, "no room yet for 2 MiB before a poll")
	await until(func(): return to_server.get_current_outbound_buffered_amount() == 0, [client], 5.0, "the queue written")
	check_eq(to_server.put_packet(big), OK, "room for 2 MiB after a poll")
	var echoes := []
	client.data_received.connect(func():
		while to_server.get_available_packet_count() > 0:
			echoes.append(to_server.get_packet()))
	await until(func(): return echoes.size() == 51, [server, client], 10.0, "51 echoes")
	for i in mini(echoes.size(), 50):
		check_eq(echoes[i].get_string_from_utf8(), "inline %d" % i, "echo %d in order" % i)
	if echoes.size() == 51:
		check(echoes[50] == big, "the 2 MiB message came back whole")
	# What a signal handler sends during the server's poll() leaves before that poll returns.
	var seen := [0]
	server.data_received.connect(func(_from): seen[0] += 1)
	to_server.send_text("once")
	await until(func(): return seen[0] == 1, [server, client], 5.0, "the server took one message")
	await until(func(): return echoes.size() == 52, [client], 5.0, "its echo with no further server poll")
	if echoes.size() == 52:
		check_eq(echoes[51].get_string_from_utf8(), "once", "the echo")
	# Nothing moves while nobody polls: the close request waits for the next poll.
	client.disconnect_from_host(4002, "done")
	await pump([], 0.2)
	check(not has_event(server_events, "client_close_request"), "no close request before the server polls")
	await until(func(): return has_event(server_events, "client_disconnected") and has_event(client_events, "connection_closed"),
		[server, client], 5.0, "clean close")
	check_eq(first_event(server_events, "client_close_request").slice(2), [4002, "done"], "close code and reason")
	check_eq(first_event(client_events, "connection_closed"), ["connection_closed", true], "clean on the client")


func test_echo_across_two_processes() -> void:
	var probe := WebSocketServer.new()
	probe.listen(0)
	var port: int = probe.get_local_port()
	probe.stop()
	var pid := spawn_godot("res://tests/helpers/echo_server.gd", PackedStringArray([str(port)]))
	if not await helper_ready(port):
		return
	client = WebSocketClient.new()
	var established := [false]
	client.connection_established.connect(func(_p): established[0] = true)
	client.connect_to_url("ws://127.0.0.1:%d/" % port)
	if not await until(func(): return established[0], [client], 20.0, "connection to the helper process"):
		return
	var peer: WebSocketConnection = client.get_peer(1)
	var payload := PackedByteArray()
	for i in 100000:
		payload.append(i % 251)
	check_eq(peer.put_packet(payload), OK, "put 100 kB")
	# One packet larger than outbound_buffer_size (65535) is accepted when the queue is empty;
	# the next one is accepted once it has reached the socket.
	await until(func(): return peer.get_current_outbound_buffered_amount() == 0, [client], 5.0, "outbound drained")
	check_eq(peer.put_packet("text too".to_utf8_buffer()), OK, "put text")
	# 100 kB fills the inbound queue (inbound_buffer_size = 65535): the socket is not read again
	# until the game takes that packet, so the echoes come one at a time.
	await until(func(): return peer.get_available_packet_count() == 1, [client], 5.0, "first echo")
	check_eq(peer.get_packet(), payload, "binary echo")
	await until(func(): return peer.get_available_packet_count() == 1, [client], 5.0, "second echo")
	check_eq(peer.get_packet().get_string_from_utf8(), "text too", "second echo")
	var closed := []
	client.connection_closed.connect(func(clean): closed.append(clean))
	client.disconnect_from_host(1000, "done")
	await until(func(): return closed.size() == 1, [client], 5.0, "close")
	check_eq(closed, [true], "clean close")
	await until(func(): return not is_running(pid), [], 5.0, "helper exits after its client leaves")
