## WebSocketClient.auto_reconnect: a lost connection is made again with backoff (against a Python
## server killed with SIGKILL and started again), the client gives up after
## reconnect_max_attempts, a clean close or the game's own close is no loss, SceneMultiplayer
## sees a new session (peer_disconnected(1), then connected_to_server with a new id, never
## server_disconnected until the client gives up), and bad settings are refused.
extends "res://tests/test_case.gd"

## The Python echo server's process and port.
var python_pid := -1
var python_port := 0


## Starts tests/peers/echo_server.py on `python_port` and waits until it listens. Returns its pid.
func start_python_echo() -> int:
	var python := tool_path("WSRS_PYTHON")
	if python.is_empty():
		return -1
	var ready_path := OS.get_user_data_dir().path_join("reconnect_echo_%d.ready" % python_port)
	DirAccess.remove_absolute(ready_path)
	var script := ProjectSettings.globalize_path("res://tests/peers/echo_server.py")
	var pid := spawn(python, PackedStringArray([script, str(python_port), ready_path]))
	if pid < 0 or not await until(func(): return FileAccess.file_exists(ready_path), [], 20.0, "the Python echo server to listen"):
		return -1
	return pid


## Makes `client` (raw mode, reconnecting with `delay` .. `max_delay` and `attempts`) record its
## signals, the reconnect ones included, and connect to `url`.
func start_reconnecting_client(url: String, delay: float, max_delay: float, attempts: int, configure := Callable()) -> void:
	start_client(url, PackedStringArray(["game"]), PackedStringArray(["X-Session: abc"]), func(c: WebSocketClient):
		c.auto_reconnect = true
		c.reconnect_delay = delay
		c.reconnect_max_delay = max_delay
		c.reconnect_max_attempts = attempts
		if configure.is_valid():
			configure.call(c)
		c.reconnecting.connect(func(attempt, wait): client_events.append(["reconnecting", attempt, wait, Time.get_ticks_msec()]))
		c.reconnected.connect(func(): client_events.append(["reconnected", Time.get_ticks_msec()]))
		c.reconnect_failed.connect(func(): client_events.append(["reconnect_failed"]))
		c.peer_connected.connect(func(id): client_events.append(["peer_connected", id]))
		c.peer_disconnected.connect(func(id): client_events.append(["peer_disconnected", id])))


## The texts `client` received since the last call (taken from get_peer(1)).
func take_texts() -> Array:
	var texts := []
	var peer: WebSocketConnection = client.get_peer(1)
	while peer.get_available_packet_count() > 0:
		texts.append(peer.get_packet().get_string_from_utf8())
	return texts


## The names of `events`, in order, leaving out data_received.
func names(events: Array) -> Array:
	return events.filter(func(e): return e[0] != "data_received").map(func(e): return e[0])


## The attempt numbers of the `reconnecting` events.
func attempts_of(events: Array) -> Array:
	return events.filter(func(e): return e[0] == "reconnecting").map(func(e): return e[1])


func test_a_client_comes_back_to_a_restarted_server_and_loses_nothing_sent_after() -> void:
	python_port = free_port()
	python_pid = await start_python_echo()
	if python_pid < 0:
		return
	start_reconnecting_client("ws://127.0.0.1:%d/" % python_port, 0.2, 1.0, 0)
	if not await until(func(): return has_event(client_events, "connection_established"), [client], 10.0, "the first connection"):
		return
	var received := []
	await until(func():
		received.append_array(take_texts())
		return received.size() == 1, [client], 10.0, "the greeting")
	check_eq(received, ["hello abc"], "the first greeting names our header")
	client_events.clear()
	kill_helper(python_pid)  # SIGKILL: no close frame
	if not await until(func(): return has_event(client_events, "reconnecting"), [client], 10.0, "reconnecting after the kill"):
		return
	check_eq(names(client_events).slice(0, 2), ["reconnecting", "peer_disconnected"], "reconnecting, then peer_disconnected(1)")
	check(not has_event(client_events, "connection_closed"), "no connection_closed for a loss")
	check_eq(client.get_connection_status(), MultiplayerPeer.CONNECTION_CONNECTING, "CONNECTING while reconnecting")
	check_eq(client.get_peer(1).get_ready_state(), WebSocketConnection.STATE_CONNECTING, "STATE_CONNECTING while reconnecting")
	expect_error("peer 1 is not open")
	check_eq(client.get_peer(1).send_text("lost?"), ERR_UNAVAILABLE, "sending while reconnecting is refused, not queued")
	# Some attempts fail while the server is down.
	await pump([client], 0.6)
	python_pid = await start_python_echo()
	if python_pid < 0:
		return
	var restarted_at := Time.get_ticks_msec()
	if not await until(func(): return has_event(client_events, "reconnected"), [client], 15.0, "reconnected"):
		return
	var back_ms: int = first_event(client_events, "reconnected")[1] - restarted_at
	print("MEASURE: reconnected %d ms after the restart, after %d attempts" % [back_ms, attempts_of(client_events).size()])
	# The attempt after the restart starts within reconnect_max_delay (1 s); a second of slack
	# for a connect on a busy machine.
	check(back_ms <= 2000, "back %d ms after the restart (bound: max delay 1000 ms + 1000 ms)" % back_ms)
	var attempts := attempts_of(client_events)
	check_eq(attempts, range(1, attempts.size() + 1), "attempts numbered from 1")
	for e in client_events.filter(func(e): return e[0] == "reconnecting"):
		var backoff: float = minf(1.0, 0.2 * pow(2.0, e[1] - 1))
		check(e[2] >= backoff * 0.5 - 0.001 and e[2] <= backoff + 0.001, "delay of attempt %d: %.3f s within [%.3f, %.3f]" % [e[1], e[2], backoff * 0.5, backoff])
	check(not has_event(client_events, "connection_error"), "no connection_error for failed attempts")
	var tail := names(client_events).slice(-3)
	check_eq(tail, ["connection_established", "peer_connected", "reconnected"], "the order of a successful reconnect")
	check_eq(first_event(client_events, "connection_established")[1], "game", "the sub-protocol is offered again")
	check_eq(client.get_connection_status(), MultiplayerPeer.CONNECTION_CONNECTED, "connected again")
	# Everything sent after reconnected comes back, in order, after the greeting.
	var sent := []
	for i in 20:
		sent.append("message %d" % i)
		check_eq(client.get_peer(1).send_text(sent[-1]), OK, "send %d after reconnecting" % i)
	received.clear()
	await until(func():
		received.append_array(take_texts())
		return received.size() >= 21, [client], 10.0, "the echoes")
	check_eq(received, ["hello abc"] + sent, "the header is sent again and every message echoed")


func test_the_client_gives_up_after_the_last_attempt() -> void:
	python_port = free_port()
	python_pid = await start_python_echo()
	if python_pid < 0:
		return
	start_reconnecting_client("ws://127.0.0.1:%d/" % python_port, 0.05, 0.2, 3)
	if not await until(func(): return has_event(client_events, "connection_established"), [client], 10.0, "the first connection"):
		return
	client_events.clear()
	kill_helper(python_pid)
	if not await until(func(): return has_event(client_events, "connection_closed"), [client], 15.0, "giving up"):
		return
	check_eq(attempts_of(client_events), [1, 2, 3], "three attempts, numbered")
	check_eq(client_events.filter(func(e): return e[0] == "reconnect_failed").size(), 1, "reconnect_failed once")
	check_eq(names(client_events).slice(-2), ["reconnect_failed", "connection_closed"], "reconnect_failed, then connection_closed")
	check(client_events.has(["connection_closed", false]), "not a clean close")
	check_eq(client_events.filter(func(e): return e[0] == "peer_disconnected").size(), 1, "peer_disconnected(1) once")
	check(not has_event(client_events, "connection_error"), "no connection_error for failed attempts")
	check_eq(client.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "disconnected after giving up")
	client_events.clear()
	await pump([client], 0.5)
	check_eq(client_events, [], "nothing after giving up")


func test_a_clean_close_by_the_server_reconnects_only_when_asked() -> void:
	var port := start_server(Callable(), PackedStringArray(["game"]))
	start_reconnecting_client("ws://127.0.0.1:%d/" % port, 0.05, 0.1, 3)
	if not await until(func(): return has_event(server_events, "client_connected") and has_event(client_events, "connection_established"), [server, client], 10.0, "connection"):
		return
	server.get_peer(first_event(server_events, "client_connected")[1]).close(1001, "going away")
	await until(func(): return has_event(client_events, "connection_closed"), [server, client], 10.0, "connection_closed")
	check(client_events.has(["connection_closed", true]), "a clean close")
	await pump([server, client], 0.3)
	check(not has_event(client_events, "reconnecting"), "no reconnect after a clean close by default")
	check_eq(server_events.filter(func(e): return e[0] == "client_connected").size(), 1, "the server saw one connection")
	# With reconnect_after_clean_close the same close is followed by a reconnect.
	server_events.clear()
	client_events.clear()
	start_reconnecting_client("ws://127.0.0.1:%d/" % port, 0.05, 0.1, 3, func(c): c.reconnect_after_clean_close = true)
	if not await until(func(): return has_event(server_events, "client_connected") and has_event(client_events, "connection_established"), [server, client], 10.0, "connection"):
		return
	var first_id: int = first_event(server_events, "client_connected")[1]
	server.get_peer(first_id).close(1001, "going away")
	if not await until(func(): return has_event(client_events, "reconnected"), [server, client], 10.0, "reconnected after a clean close"):
		return
	check(not has_event(client_events, "connection_closed"), "no connection_closed")
	var ids := server_events.filter(func(e): return e[0] == "client_connected").map(func(e): return e[1])
	check(ids.size() == 2 and ids[1] != first_id, "the server saw a second connection: %s" % [ids])


func test_the_games_own_close_is_no_loss() -> void:
	var port := start_server(Callable(), PackedStringArray(["game"]))
	start_reconnecting_client("ws://127.0.0.1:%d/" % port, 0.05, 0.1, 3)
	if not await until(func(): return has_event(server_events, "client_connected") and has_event(client_events, "connection_established"), [server, client], 10.0, "connection"):
		return
	client.disconnect_from_host()
	await until(func(): return has_event(client_events, "connection_closed"), [server, client], 10.0, "connection_closed")
	await pump([server, client], 0.3)
	check(not has_event(client_events, "reconnecting"), "no reconnect after disconnect_from_host")
	# Closing during the wait before an attempt stops the reconnect.
	server_events.clear()
	client_events.clear()
	start_reconnecting_client("ws://127.0.0.1:%d/" % port, 30.0, 30.0, 3)
	if not await until(func(): return has_event(server_events, "client_connected") and has_event(client_events, "connection_established"), [server, client], 10.0, "connection"):
		return
	server.disconnect_peer(first_event(server_events, "client_connected")[1], true)  # dropped, no close frame
	if not await until(func(): return has_event(client_events, "reconnecting"), [server, client], 10.0, "reconnecting"):
		return
	client_events.clear()
	client.disconnect_from_host()
	check_eq(client.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "disconnected at once")
	client.poll()
	check_eq(client_events, [["connection_closed", false]], "connection_closed at the next poll")
	await pump([server, client], 0.3)
	check_eq(client_events.size(), 1, "nothing more")


func test_multiplayer_a_new_session_without_server_disconnected() -> void:
	# Our server in multiplayer mode, driven by hand (the scene tree's SceneMultiplayer is the
	# client's): it assigns ids and relays SceneMultiplayer's packets.
	server = WebSocketServer.new()
	server.bind_ip = "127.0.0.1"
	check_eq(server.create_server(0), OK, "create_server")
	var port := server.get_local_port()
	var mp := get_tree().get_multiplayer() as SceneMultiplayer
	var events := []
	# (The lambdas do not capture mp: connected to its own signals, that would keep it alive.)
	mp.connected_to_server.connect(func(): events.append(["connected_to_server", get_tree().get_multiplayer().get_unique_id()]))
	mp.server_disconnected.connect(func(): events.append(["server_disconnected"]))
	mp.connection_failed.connect(func(): events.append(["connection_failed"]))
	mp.peer_connected.connect(func(id): events.append(["peer_connected", id]))
	mp.peer_disconnected.connect(func(id): events.append(["peer_disconnected", id]))
	mp.peer_packet.connect(func(id, data): events.append(["peer_packet", id, data]))
	client = WebSocketClient.new()
	client.auto_reconnect = true
	client.reconnect_delay = 0.05
	client.reconnect_max_delay = 0.2
	client.reconnect_max_attempts = 3
	client.reconnect_after_clean_close = true
	client.reconnecting.connect(func(attempt, _wait): events.append(["reconnecting", attempt]))
	client.reconnected.connect(func(): events.append(["reconnected"]))
	client.reconnect_failed.connect(func(): events.append(["reconnect_failed"]))
	check_eq(client.create_client("ws://127.0.0.1:%d/" % port), OK, "create_client")
	mp.multiplayer_peer = client
	if not await until(func(): return events.any(func(e): return e[0] == "connected_to_server"), [server], 10.0, "connected_to_server"):
		mp.multiplayer_peer = OfflineMultiplayerPeer.new()
		return
	var first_id: int = events[0][1]
	await check_packets_both_ways(mp, events, first_id, "first session")
	events.clear()
	server.disconnect_peer(first_id, true)  # dropped without a close frame
	if not await until(func(): return events.any(func(e): return e[0] == "connected_to_server"), [server], 10.0, "connected_to_server again"):
		mp.multiplayer_peer = OfflineMultiplayerPeer.new()
		return
	var second_id: int = events.filter(func(e): return e[0] == "connected_to_server")[0][1]
	check(second_id > 1 and second_id != first_id, "a new unique id: %d after %d" % [second_id, first_id])
	check(not events.any(func(e): return e[0] in ["server_disconnected", "connection_failed"]), "no server_disconnected while reconnecting: %s" % [events])
	check_eq(events.slice(0, 2), [["reconnecting", 1], ["peer_disconnected", 1]], "the server peer leaves first")
	check(events.has(["reconnected"]) and events.has(["peer_connected", 1]), "then comes back: %s" % [events])
	check_eq(mp.get_unique_id(), second_id, "SceneMultiplayer has the new id")
	await check_packets_both_ways(mp, events, second_id, "after the reconnect")
	# The server goes away for good: the client gives up, and the game hears server_disconnected.
	events.clear()
	server.stop()
	await until(func(): return events.any(func(e): return e[0] == "server_disconnected"), [], 10.0, "server_disconnected after giving up")
	check_eq(events.filter(func(e): return e[0] == "reconnecting").map(func(e): return e[1]), [1, 2, 3], "three attempts")
	check(events.has(["reconnect_failed"]), "reconnect_failed")
	check(not events.any(func(e): return e[0] == "connection_failed"), "not connection_failed: %s" % [events])
	check_eq(client.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "disconnected")
	mp.multiplayer_peer = OfflineMultiplayerPeer.new()


## SceneMultiplayer's send_bytes reaches the server as the client `id`, and the server's answer
## reaches SceneMultiplayer as peer_packet from 1.
func check_packets_both_ways(mp: SceneMultiplayer, events: Array, id: int, what: String) -> void:
	check_eq(mp.send_bytes(PackedByteArray([1, 2, 3]), 1), OK, "send_bytes (%s)" % what)
	if not await until(func(): return server.get_available_packet_count() > 0, [server], 10.0, "the client's packet (%s)" % what):
		return
	check_eq(server.get_packet_peer(), id, "sent by the client's id (%s)" % what)
	var packet := server.get_packet()
	check(packet.size() == 4 and packet.slice(1) == PackedByteArray([1, 2, 3]), "the raw bytes arrive (%s): %s" % [what, packet])
	if packet.size() != 4:
		return
	# Answer with the same SceneMultiplayer command byte (raw bytes).
	server.set_target_peer(id)
	check_eq(server.put_packet(PackedByteArray([packet[0], 9, 8])), OK, "the server answers (%s)" % what)
	await until(func(): return events.has(["peer_packet", 1, PackedByteArray([9, 8])]), [server], 10.0, "the server's packet (%s)" % what)


func test_invalid_reconnect_settings_are_refused() -> void:
	var cases := [
		["reconnect_delay", -1.0, "reconnect_delay must be a positive number of seconds"],
		["reconnect_delay", NAN, "reconnect_delay must be a positive number of seconds"],
		["reconnect_max_delay", 0.0, "reconnect_max_delay must be a positive number of seconds"],
		["reconnect_max_delay", 0.5, "reconnect_max_delay must not be less than reconnect_delay"],
		["reconnect_max_attempts", -1, "reconnect_max_attempts must be 0 (no limit) or a positive number"],
	]
	for c in cases:
		var ours := WebSocketClient.new()
		ours.auto_reconnect = true
		ours.set(c[0], c[1])
		expect_error(c[2])
		check_eq(ours.connect_to_url("ws://127.0.0.1:9/"), ERR_INVALID_PARAMETER, "%s = %s is refused" % [c[0], c[1]])
		check_eq(ours.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "nothing started for %s = %s" % [c[0], c[1]])
	var ours := WebSocketClient.new()
	ours.auto_reconnect = true
	ours.reconnect_max_attempts = 0
	ours.reconnect_delay = 0.5
	ours.reconnect_max_delay = 0.5
	check_eq(ours.connect_to_url("ws://127.0.0.1:%d/" % free_port()), OK, "0 attempts (no limit) and max = initial are fine")
	ours.close()
