## permessage-deflate from GDScript: the properties and their checks, what WebSocketConnection
## reports, compressed text and binary messages (small, JSON-like, 1 MiB) both ways, and
## multiplayer mode with compression on (ours with ours) and without (ours with Godot's built-in
## WebSocketMultiplayerPeer, which never negotiates it).
extends "res://tests/test_case.gd"

## What the default settings agree on, as get_permessage_deflate() reports it.
const DEFAULT_AGREEMENT := {
	"server_no_context_takeover": true,
	"client_no_context_takeover": true,
	"server_max_window_bits": 15,
	"client_max_window_bits": 15,
	"header": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
}


## JSON-like text of about `size` bytes.
func _json(size: int) -> String:
	var parts := PackedStringArray()
	var length := 0
	var i := 0
	while length < size:
		var part := '{"id":%d,"name":"player%d","x":%d.5,"alive":true}' % [i, i % 37, i * 3]
		parts.append(part)
		length += part.length() + 1
		i += 1
	return "[" + ",".join(parts) + "]"


## Sends each of `messages` ([bytes, is_text]) to the server, which echoes it (_echo), one at a
## time; checks each came back the same, with its kind.
func _round_trip(to_server: WebSocketConnection, messages: Array) -> void:
	var got := []
	for i in messages.size():
		var message: Array = messages[i]
		var mode := WebSocketConnection.WRITE_MODE_TEXT if message[1] else WebSocketConnection.WRITE_MODE_BINARY
		check_eq(to_server.send(message[0], mode), OK, "send %d bytes" % message[0].size())
		var arrived := await until(func():
			_echo()
			while to_server.get_available_packet_count() > 0:
				var data := to_server.get_packet()
				got.append([data, to_server.was_string_packet()])
			return got.size() > i, [server, client], 10.0, "echo of %d bytes" % message[0].size())
		if not arrived:
			return
	check_eq(got.size(), messages.size(), "every echo came back")
	for i in mini(got.size(), messages.size()):
		check(got[i][0] == messages[i][0], "message %d (%d bytes) came back the same" % [i, messages[i][0].size()])
		check_eq(got[i][1], messages[i][1], "message %d kept its kind" % i)


## The server echoes what it received.
func _echo() -> void:
	for event in server_events.filter(func(e): return e[0] == "client_connected"):
		var peer: WebSocketConnection = server.get_peer(event[1])
		while peer != null and peer.get_available_packet_count() > 0:
			var data := peer.get_packet()
			var mode := WebSocketConnection.WRITE_MODE_TEXT if peer.was_string_packet() else WebSocketConnection.WRITE_MODE_BINARY
			check_eq(peer.send(data, mode), OK, "echo %d bytes" % data.size())


## Messages of every kind: below the threshold, JSON-like text and binary, 1 MiB compressible
## and 1 MiB random.
func _messages() -> Array:
	var random := PackedByteArray()
	random.resize(1 << 20)
	var rng := RandomNumberGenerator.new()
	rng.seed = 5
	for i in random.size():
		random[i] = rng.randi() & 255
	return [
		["hi".to_utf8_buffer(), true],
		[_json(330).to_utf8_buffer(), true],
		[_json(600).to_utf8_buffer(), false],
		[_json(1 << 20).to_utf8_buffer(), true],
		[random, false],
		[("é😀".repeat(500)).to_utf8_buffer(), true],
	]


## Raises the limits so that 1 MiB messages fit the queues.
func _big_queues(peer: Object) -> void:
	peer.inbound_buffer_size = 4 << 20
	peer.outbound_buffer_size = 4 << 20


func test_defaults_agree_and_messages_round_trip() -> void:
	check_eq(WebSocketServer.new().permessage_deflate, true, "on by default (server)")
	check_eq(WebSocketClient.new().permessage_deflate, true, "on by default (client)")
	check_eq(WebSocketClient.new().deflate_threshold, 128, "threshold default")
	var id := await start_pair("/", _big_queues, _big_queues)
	if id < 0:
		return
	var on_server: WebSocketConnection = server.get_peer(id)
	var to_server: WebSocketConnection = client.get_peer(1)
	check(on_server.has_permessage_deflate(), "the server's connection says compression was agreed")
	check(to_server.has_permessage_deflate(), "the client's connection says compression was agreed")
	check_eq(on_server.get_permessage_deflate(), DEFAULT_AGREEMENT, "the server's view of the agreement")
	check_eq(to_server.get_permessage_deflate(), DEFAULT_AGREEMENT, "the client's view of the agreement")
	await _round_trip(to_server, _messages())


func test_takeover_small_windows_and_level() -> void:
	var settings := func(peer: Object):
		_big_queues(peer)
		peer.deflate_server_no_context_takeover = false
		peer.deflate_client_no_context_takeover = false
		peer.deflate_server_max_window_bits = 9
		peer.deflate_client_max_window_bits = 8
		peer.deflate_level = 1
		peer.deflate_threshold = 0
	var id := await start_pair("/", settings, settings)
	if id < 0:
		return
	var expected := {
		"server_no_context_takeover": false,
		"client_no_context_takeover": false,
		"server_max_window_bits": 9,
		"client_max_window_bits": 8,
		"header": "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
	}
	check_eq(server.get_peer(id).get_permessage_deflate(), expected, "the server's view")
	check_eq(client.get_peer(1).get_permessage_deflate(), expected, "the client's view")
	var messages := _messages()
	# Many similar messages: each refers to the ones before (context takeover).
	for i in 50:
		messages.append([_json(200 + i).to_utf8_buffer(), i % 2 == 0])
	await _round_trip(client.get_peer(1), messages)


func test_off_on_either_side() -> void:
	var off := func(peer: Object): peer.permessage_deflate = false
	var id := await start_pair("/", off)
	if id < 0:
		return
	check(not server.get_peer(id).has_permessage_deflate(), "server off: not agreed (server's view)")
	check(not client.get_peer(1).has_permessage_deflate(), "server off: not agreed (client's view)")
	check_eq(client.get_peer(1).get_permessage_deflate(), {}, "empty dictionary when not agreed")
	await _round_trip(client.get_peer(1), [[_json(2000).to_utf8_buffer(), true]])
	server.stop()
	server_events.clear()
	client_events.clear()
	id = await start_pair("/", Callable(), off)
	if id < 0:
		return
	check(not server.get_peer(id).has_permessage_deflate(), "client off: not agreed")
	await _round_trip(client.get_peer(1), [[_json(2000).to_utf8_buffer(), false]])


func test_bad_settings_are_refused() -> void:
	var cases := [
		["deflate_level", 10, "deflate_level must be 0..9 (is 10)"],
		["deflate_level", -1, "deflate_level must be 0..9 (is -1)"],
		["deflate_server_max_window_bits", 7, "deflate_server_max_window_bits must be 8..15 (is 7)"],
		["deflate_client_max_window_bits", 16, "deflate_client_max_window_bits must be 8..15 (is 16)"],
		["deflate_threshold", -5, "deflate_threshold must be 0 or more (is -5)"],
	]
	for case in cases:
		var bad_server := WebSocketServer.new()
		bad_server.bind_ip = "127.0.0.1"
		bad_server.set(case[0], case[1])
		expect_error(case[2])
		check_eq(bad_server.listen(0), ERR_INVALID_PARAMETER, "listen with %s = %d" % [case[0], case[1]])
		var bad_client := WebSocketClient.new()
		bad_client.set(case[0], case[1])
		expect_error(case[2])
		check_eq(bad_client.connect_to_url("ws://127.0.0.1:9/"), ERR_INVALID_PARAMETER, "connect_to_url with %s = %d" % [case[0], case[1]])


## Multiplayer packets between our server and our client, compressed when large.
func test_multiplayer_mode_compressed() -> void:
	var ids := []
	server = WebSocketServer.new()
	_big_queues(server)
	server.peer_connected.connect(func(id): ids.append(id))
	check_eq(server.create_server(0, "127.0.0.1"), OK, "create_server")
	client = WebSocketClient.new()
	_big_queues(client)
	check_eq(client.create_client("ws://127.0.0.1:%d/" % server.get_local_port()), OK, "create_client")
	if not await until(func(): return client.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED and ids.size() == 1,
			[server, client], 5.0, "multiplayer connection"):
		return
	var id: int = ids[0]
	check(server.get_peer(id).has_permessage_deflate(), "compression agreed in multiplayer mode")
	await _multiplayer_exchange(server, client, id)


## Our server in multiplayer mode with Godot's built-in client: nothing is negotiated, packets flow.
func test_multiplayer_mode_with_the_builtin_client() -> void:
	var ids := []
	server = WebSocketServer.new()
	_big_queues(server)
	server.peer_connected.connect(func(id): ids.append(id))
	check_eq(server.create_server(0, "127.0.0.1"), OK, "create_server")
	var builtin := WebSocketMultiplayerPeer.new()
	builtin.inbound_buffer_size = 4 << 20
	builtin.outbound_buffer_size = 4 << 20
	check_eq(builtin.create_client("ws://127.0.0.1:%d/" % server.get_local_port()), OK, "built-in create_client")
	if not await until(func(): return builtin.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED and ids.size() == 1,
			[server, builtin], 5.0, "built-in multiplayer connection"):
		builtin.close()
		return
	var id: int = ids[0]
	check(not server.get_peer(id).has_permessage_deflate(), "the built-in client never negotiates compression")
	await _multiplayer_exchange(server, builtin, id)
	builtin.close()


## Sends small and large packets each way through the MultiplayerPeer API and checks them.
func _multiplayer_exchange(host: MultiplayerPeer, guest: MultiplayerPeer, guest_id: int) -> void:
	var payloads := [PackedByteArray([1, 2, 3]), _json(5000).to_utf8_buffer(), _json(300000).to_utf8_buffer()]
	for payload in payloads:
		guest.set_target_peer(1)
		check_eq(guest.put_packet(payload), OK, "guest put_packet %d bytes" % payload.size())
		var got := []
		await until(func():
			while host.get_available_packet_count() > 0:
				got.append([host.get_packet_peer(), host.get_packet()])
			return not got.is_empty(), [host, guest], 10.0, "%d bytes at the host" % payload.size())
		check(got.size() == 1 and got[0][0] == guest_id and got[0][1] == payload, "the host got %d bytes from the guest" % payload.size())
		host.set_target_peer(guest_id)
		check_eq(host.put_packet(payload), OK, "host put_packet %d bytes" % payload.size())
		var back := []
		await until(func():
			while guest.get_available_packet_count() > 0:
				back.append([guest.get_packet_peer(), guest.get_packet()])
			return not back.is_empty(), [host, guest], 10.0, "%d bytes at the guest" % payload.size())
		check(back.size() == 1 and back[0][0] == 1 and back[0][1] == payload, "the guest got %d bytes from the host" % payload.size())
