## Multiplayer mode against Godot's own WebSocketMultiplayerPeer, each side in its own process:
## our server with built-in clients, the built-in server with our clients, and ours with ours.
## Covers @rpc any_peer / authority / call_local, client-to-client relay, MultiplayerSpawner and
## MultiplayerSynchronizer, a clean leave and a killed client.
extends "res://tests/test_case.gd"

var game: Node


## Makes this process the server, with our WebSocketServer ("ours", or "ours_inline" without
## the I/O thread) or the built-in peer.
func host(impl: String, port: int) -> MultiplayerPeer:
	var peer: MultiplayerPeer
	var err: Error
	if impl.begins_with("ours"):
		var ours := WebSocketServer.new()
		ours.use_io_thread = impl != "ours_inline"
		err = ours.create_server(port, "127.0.0.1")
		peer = ours
	else:
		var builtin := WebSocketMultiplayerPeer.new()
		err = builtin.create_server(port, "127.0.0.1")
		peer = builtin
	check_eq(err, OK, "create_server (%s)" % impl)
	game = load("res://tests/helpers/mp_game.gd").new()
	game.name = "Game"
	get_tree().root.add_child(game)
	get_tree().get_multiplayer().multiplayer_peer = peer
	return peer


## Starts a client process; returns [pid, result path].
func join(impl: String, port: int, client_name: String) -> Array:
	var result := OS.get_user_data_dir().path_join("mp_%s_%d.json" % [client_name, port])
	for path in [result, result + ".leave", result + ".tmp"]:
		DirAccess.remove_absolute(path)
	var pid := spawn_godot("res://tests/helpers/mp_client.gd", PackedStringArray([impl, "ws://127.0.0.1:%d/" % port, client_name, result]))
	return [pid, result]


## Whether a client's result shows the whole scenario: its id, the server's welcome, the other
## client's shout and direct message (relayed by the server), and the replicated player.
func complete(result: Variant, other_id: int) -> bool:
	if not result is Dictionary or not result.has("events"):
		return false
	var id := int(result["unique_id"])
	var seen := func(kind: String, sender: int, text: String):
		return result["events"].any(func(e): return e[0] == kind and int(e[1]) == sender and e[2] == text)
	return (seen.call("welcome", 1, "welcome %d" % id) and seen.call("shout", other_id, "shout from " + ("a" if other_id == first_id() else "b"))
		and seen.call("direct", other_id, "direct from " + ("a" if other_id == first_id() else "b"))
		and result["hero"] == [10.0, 20.0])


var ids := {}

func first_id() -> int:
	return ids.get("a", -1)


func run_scenario(server_impl: String, client_impl: String) -> void:
	var port := free_port()
	host(server_impl, port)
	var a := join(client_impl, port, "a")
	var b := join(client_impl, port, "b")
	var connected_ids := func():
		return game.events.filter(func(e): return e[0] == "peer_connected").map(func(e): return e[1])
	if not await until(func(): return connected_ids.call().size() == 2, [], 30.0, "two clients connected"):
		return
	# Which id is which: each client says hello with its name.
	if not await until(func(): return game.events.filter(func(e): return e[0] == "hello").size() == 2, [], 10.0, "hello from both"):
		return
	for e in game.events:
		if e[0] == "hello":
			ids[e[2].trim_prefix("hello from ")] = e[1]
	check(ids.has("a") and ids.has("b"), "hello from a and b: %s" % [game.events])
	check_eq(connected_ids.call().duplicate().map(func(x): return x).size(), 2, "peer_connected twice")
	for id in connected_ids.call():
		check(id >= 2, "client ids are 2 or more (%d)" % id)
		game.welcome.rpc_id(id, "welcome %d" % id)
	var hero: Node2D = game.spawn_player("Hero")
	hero.position = Vector2(10, 20)
	var done := func():
		return complete(read_json(a[1]), ids.get("b", -1)) and complete(read_json(b[1]), ids.get("a", -1))
	await until(done, [], 20.0, "both clients to see the whole scenario")
	for who in ["a", "b"]:
		var result: Variant = read_json(a[1] if who == "a" else b[1])
		check(complete(result, ids.get("b" if who == "a" else "a", -1)), "client %s saw: %s" % [who, result])
		if result is Dictionary:
			check_eq(int(result["unique_id"]), ids.get(who, -1), "client %s knows its id" % who)
			check(result["events"].any(func(e): return e[0] == "connected_to_server"), "connected_to_server on %s" % who)
	# The server got each client's call_local shout too.
	for who in ["a", "b"]:
		check(game.events.has(["shout", ids.get(who, -1), "shout from " + who]), "server got %s's shout" % who)
	# a leaves cleanly, b's process is killed: both reach the server as peer_disconnected.
	FileAccess.open(a[1] + ".leave", FileAccess.WRITE).store_string("leave")
	await until(func(): return game.events.has(["peer_disconnected", ids.get("a", -1), ""]), [], 10.0, "a's clean leave")
	# a writes its last report after close(), so the server may see it leave first.
	var left := func():
		var final_a: Variant = read_json(a[1])
		return final_a is Dictionary and final_a.get("left", false)
	check(await until(left, [], 10.0, "a's report that it left"), "a closed its peer")
	kill_helper(b[0])
	await until(func(): return game.events.has(["peer_disconnected", ids.get("b", -1), ""]), [], 10.0, "b's loss noticed")
	get_tree().get_multiplayer().multiplayer_peer = OfflineMultiplayerPeer.new()
	game.queue_free()


func test_our_server_with_builtin_clients() -> void:
	await run_scenario("ours", "builtin")


func test_builtin_server_with_our_clients() -> void:
	await run_scenario("builtin", "ours")


func test_our_server_with_our_clients() -> void:
	await run_scenario("ours", "ours")


func test_without_io_threads_our_server_with_our_clients() -> void:
	await run_scenario("ours_inline", "ours_inline")


func test_without_io_thread_our_server_with_builtin_clients() -> void:
	await run_scenario("ours_inline", "builtin")


func test_client_status_and_connection_failed() -> void:
	var mp := get_tree().get_multiplayer()
	var events := []
	mp.connection_failed.connect(func(): events.append("connection_failed"))
	mp.connected_to_server.connect(func(): events.append("connected_to_server"))
	var ours := WebSocketClient.new()
	check_eq(ours.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "disconnected before create_client")
	check_eq(ours.create_client("ws://127.0.0.1:%d/" % free_port()), OK, "create_client to a closed port")
	check_eq(ours.get_connection_status(), MultiplayerPeer.CONNECTION_CONNECTING, "connecting")
	expect_error("WebSocketClient: connecting to ws://127.0.0.1")
	mp.multiplayer_peer = ours
	await until(func(): return events.has("connection_failed"), [], 10.0, "connection_failed")
	check_eq(events, ["connection_failed"], "only connection_failed")
	check(not get_tree().get_multiplayer().is_server(), "a client is not the server")
	check_eq(ours.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "disconnected after the failure")
	mp.multiplayer_peer = OfflineMultiplayerPeer.new()


func test_a_raw_server_gives_a_multiplayer_client_no_id() -> void:
	var port := start_server()  # raw mode: sends no id
	var mp := get_tree().get_multiplayer()
	var events := []
	mp.connection_failed.connect(func(): events.append("connection_failed"))
	var ours := WebSocketClient.new()
	ours.handshake_timeout = 0.5
	check_eq(ours.create_client("ws://127.0.0.1:%d/" % port), OK, "create_client")
	mp.multiplayer_peer = ours
	expect_error("the server sent no multiplayer id within 500ms")
	await until(func(): return events.has("connection_failed"), [server], 10.0, "connection_failed")
	mp.multiplayer_peer = OfflineMultiplayerPeer.new()


func test_server_close_reaches_clients_as_server_disconnected() -> void:
	for client_impl in ["ours", "builtin"]:
		var port := free_port()
		var peer := host("ours", port)
		check(get_tree().get_multiplayer().is_server() and peer.get_unique_id() == 1, "the server is peer 1")
		check(peer.is_server_relay_supported(), "server relay supported")
		var a := join(client_impl, port, "a")
		# Its hello means the client is fully in (SceneMultiplayer admits the server on its side first).
		if not await until(func(): return game.events.any(func(e): return e[0] == "hello"), [], 20.0, "a %s client" % client_impl):
			return
		var client_id: int = game.events.filter(func(e): return e[0] == "peer_connected")[0][1]
		check(peer.has_peer(client_id), "has_peer in multiplayer mode")
		check(peer.get_peer(client_id) is WebSocketConnection, "get_peer in multiplayer mode")
		peer.close()
		check_eq(peer.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "closed server is disconnected")
		await until(func():
			var result: Variant = read_json(a[1])
			return result is Dictionary and result["events"].any(func(e): return e[0] == "server_disconnected"), [], 10.0, "server_disconnected on the %s client" % client_impl)
		get_tree().get_multiplayer().multiplayer_peer = OfflineMultiplayerPeer.new()
		game.free()
		kill_helper(a[0])


func test_multiplayer_calls_on_a_raw_peer_are_refused() -> void:
	start_server()
	expect_error("this peer is in raw mode")
	check_eq(server.put_packet(PackedByteArray([1])), ERR_UNAVAILABLE, "put_packet on a raw server")
	check_eq(server.get_available_packet_count(), 0, "no multiplayer packets in raw mode")
	expect_error("the private key is empty")
	expect_error("Error saving key")  # Godot's own complaint about the empty CryptoKey
	check_eq(WebSocketServer.new().create_server(0, "*", TLSOptions.server(CryptoKey.new(), X509Certificate.new())), ERR_INVALID_PARAMETER, "empty TLS key refused clearly")
