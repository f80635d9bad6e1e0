## Per-peer and server statistics: counters exact after a known exchange, the round-trip time
## against a peer that delays its pongs by a known amount, refusals counted by reason, rates.
extends "res://tests/test_case.gd"


## No compression: every frame's size on the wire is known.
func _plain(endpoint: Object) -> void:
	endpoint.permessage_deflate = false



func test_counters_are_exact_after_a_known_exchange() -> void:
	var id: int = await start_pair("/", _plain, _plain)
	if id < 0:
		return
	var to_server: WebSocketConnection = client.get_peer(1)
	for i in 3:
		check_eq(to_server.send_text("hello"), OK, "send %d" % i)
	await until(func(): return count_events(server_events, "data_received") == 3, [server, client], 5.0, "three messages")
	# The I/O thread publishes what it wrote just after the write: the peer may have the bytes a
	# moment before the counters say so.
	await until(func(): return client.get_statistics().wire_bytes_sent >= 33, [server, client], 5.0, "the client's counters published")
	var sent: Dictionary = client.get_statistics()
	# A client frame of 5 bytes: 2 header bytes, a 4-byte mask, the payload.
	check_eq([sent.messages_sent, sent.bytes_sent, sent.wire_bytes_sent], [3, 15, 33], "the client's sent counters")
	var received: Dictionary = server.get_peer_statistics(id)
	check_eq([received.messages_received, received.bytes_received, received.wire_bytes_received], [3, 15, 33],
		"the server's received counters")
	check_eq([received.queued_inbound_messages, received.queued_inbound_bytes], [3, 15], "not taken yet")
	var connection: WebSocketConnection = server.get_peer(id)
	for i in 3:
		connection.get_packet()
	received = connection.get_statistics()
	check_eq([received.queued_inbound_messages, received.queued_inbound_bytes], [0, 0], "taken")
	check_eq(connection.send_text("hi"), OK, "reply")
	await until(func(): return has_event(client_events, "data_received"), [server, client], 5.0, "the reply")
	await until(func(): return connection.get_statistics().wire_bytes_sent >= 4 and server.get_statistics().wire_bytes_sent >= 4,
		[server, client], 5.0, "the server's counters published")
	# A server frame of 2 bytes: 2 header bytes, no mask.
	sent = connection.get_statistics()
	check_eq([sent.messages_sent, sent.bytes_sent, sent.wire_bytes_sent], [1, 2, 4], "the server's sent counters")
	received = client.get_statistics()
	check_eq([received.messages_received, received.bytes_received, received.wire_bytes_received], [1, 2, 4],
		"the client's received counters")
	check_eq([received.queued_outbound_messages, received.queued_outbound_bytes], [0, 0], "nothing left to send")
	check(received.connected_seconds > 0.0 and received.connected_seconds < 10.0, "connected_seconds: %s" % received.connected_seconds)
	check(received.idle_seconds >= 0.0 and received.idle_seconds < 5.0, "idle_seconds: %s" % received.idle_seconds)
	check_eq([received.rtt_ms, client.get_round_trip_time()], [0.0, 0.0], "no heartbeat, no round-trip time")
	var totals: Dictionary = server.get_statistics()
	check_eq([totals.open, totals.accepted, totals.opened, totals.handshaking], [1, 1, 1, 0], "open, accepted, opened, handshaking")
	check_eq(totals.out_of_descriptors, 0, "never out of file descriptors")
	check_eq([totals.messages_received, totals.bytes_received, totals.wire_bytes_received], [3, 15, 33], "received totals")
	check_eq([totals.messages_sent, totals.bytes_sent, totals.wire_bytes_sent], [1, 2, 4], "sent totals")
	# After the close the counters stay readable and connected_seconds stops.
	client.disconnect_from_host()
	await until(func(): return has_event(client_events, "connection_closed"), [server, client], 5.0, "the close")
	var frozen: float = client.get_statistics().connected_seconds
	await pump([server, client], 0.1)
	check_eq(client.get_statistics().connected_seconds, frozen, "connected_seconds stops at the close")
	check_eq(client.get_statistics().messages_sent, 3, "the last connection's counters stay readable")


func test_the_round_trip_time_matches_a_known_pong_delay() -> void:
	var python := tool_path("WSRS_PYTHON")
	var port := start_server(func(s): s.heartbeat_interval = 0.4)
	if port == 0 or python.is_empty():
		return
	var result_path := OS.get_user_data_dir().path_join("slow_pong_%d.json" % OS.get_process_id())
	DirAccess.remove_absolute(result_path)
	var delay_ms := 150
	spawn(python, PackedStringArray([ProjectSettings.globalize_path("res://tests/peers/slow_pong_peer.py"), "127.0.0.1",
		str(port), str(delay_ms), "3", result_path]))
	if not await until(func(): return has_event(server_events, "client_connected"), [server], 20.0, "the Python peer"):
		return
	var id: int = first_event(server_events, "client_connected")[1]
	var connection: WebSocketConnection = server.get_peer(id)
	# The first ping goes out with the handshake, the next every 0.4 s: wait for three samples.
	var start := Time.get_ticks_msec()
	await until(func(): return Time.get_ticks_msec() - start > 1300 or not connection.get_ready_state() == WebSocketConnection.STATE_OPEN,
		[server], 5.0, "three pongs")
	var stats: Dictionary = connection.get_statistics()
	print("round-trip time for a %d ms pong delay: last %.2f ms, smoothed %.2f ms, variance %.2f ms" % [delay_ms, stats.rtt_last_ms, stats.rtt_ms, stats.rtt_variance_ms])
	# The pong leaves the peer 150 ms after the ping arrived; loopback and both threads add a
	# little. The upper bound is generous for a busy machine.
	check(stats.rtt_last_ms >= delay_ms and stats.rtt_last_ms < delay_ms + 150, "last sample %.1f ms for a %d ms delay" % [stats.rtt_last_ms, delay_ms])
	check(stats.rtt_ms >= delay_ms and stats.rtt_ms < delay_ms + 150, "smoothed %.1f ms for a %d ms delay" % [stats.rtt_ms, delay_ms])
	check_eq(connection.get_round_trip_time(), stats.rtt_ms, "get_round_trip_time is the smoothed value")
	check(stats.rtt_variance_ms >= 0.0 and stats.rtt_variance_ms < 100.0, "variance %.1f ms" % stats.rtt_variance_ms)
	var mean: float = server.get_statistics().mean_rtt_ms
	check(absf(mean - stats.rtt_ms) < 0.01, "the server's mean (%.2f) is its one peer's (%.2f)" % [mean, stats.rtt_ms])
	await until(func(): return FileAccess.file_exists(result_path), [server], 10.0, "the peer's result")
	var result: Variant = read_json(result_path)
	check(result != null and result.errors.is_empty() and result.pings >= 3, "the peer answered the pings: %s" % str(result))


func test_a_client_measures_its_round_trip_time_to_our_server() -> void:
	var id: int = await start_pair("/", Callable(), func(c): c.heartbeat_interval = 0.2)
	if id < 0:
		return
	await until(func(): return client.get_round_trip_time() > 0.0, [server, client], 5.0, "a round-trip time")
	var rtt: float = client.get_round_trip_time()
	check(rtt > 0.0 and rtt < 100.0, "loopback round-trip time %.3f ms" % rtt)
	check_eq(client.get_statistics().rtt_ms, rtt, "the same in get_statistics")
	check_eq(server.get_peer_statistics(id).rtt_ms, 0.0, "the server sends no pings of its own here")


func test_the_server_counts_refusals_by_reason_health_checks_and_failures() -> void:
	var port := start_server(func(s):
		s.health_check_path = "/health"
		s.handshake_timeout = 0.5)
	if port == 0:
		return
	var health := await raw_exchange(port, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n".to_utf8_buffer(), [server])
	check(health.begins_with("HTTP/1.1 200"), "health check: %s" % health)
	check_eq(await raw_exchange(port, "GET /page HTTP/1.1\r\nHost: a\r\n\r\n".to_utf8_buffer(), [server]), "", "no upgrade")
	var post := upgrade_request().get_string_from_utf8().replace("GET ", "POST ").to_utf8_buffer()
	var bad := await raw_exchange(port, post, [server])
	check(bad.begins_with("HTTP/1.1 400"), "an upgrade by POST is refused: %s" % bad.get_slice("\r\n", 0))
	# A TCP connection that never sends its request fails at handshake_timeout.
	var silent: StreamPeerTCP = await raw_connect(port, [server])
	await until(func(): return server.get_statistics().failed_handshakes == 1, [server, silent], 5.0, "the silent one to fail")
	server.set_refuse_new_connections(true)
	var refused: StreamPeerTCP = await raw_connect(port, [server])
	await until(func(): return server.get_statistics().refused.not_accepting == 1, [server, refused], 5.0, "the refusal")
	var totals: Dictionary = server.get_statistics()
	check_eq(totals.health_checks, 1, "health checks")
	check_eq(totals.refused.not_websocket, 1, "plain requests")
	check_eq(totals.refused.bad_request, 1, "bad requests")
	check_eq(totals.refused.not_accepting, 1, "refused at accept")
	check_eq([totals.refused.full, totals.refused.draining, totals.refused.origin, totals.refused.rejected, totals.refused.no_verdict],
		[0, 0, 0, 0, 0], "nothing else refused")
	check_eq(totals.failed_handshakes, 1, "the silent connection")
	check_eq(totals.accepted, 4, "accepted into a handshake: health, page, bad request, silent")
	check_eq([totals.opened, totals.open], [0, 0], "nobody opened")
	expect_error("get_peer_statistics")
	check_eq(server.get_peer_statistics(12345), {}, "an unknown peer")


func test_rates_show_traffic_per_second() -> void:
	var id: int = await start_pair("/", _plain, _plain)
	if id < 0:
		return
	var to_server: WebSocketConnection = client.get_peer(1)
	server.get_statistics()  # opens the first rate window
	var start := Time.get_ticks_msec()
	var sent := [0]
	await until(func():
		if to_server.send_text("tick") == OK:
			sent[0] += 1
		return Time.get_ticks_msec() - start > 1200, [server, client], 5.0, "a second and more of traffic")
	await pump([server, client], 0.1)
	var totals: Dictionary = server.get_statistics()
	check_eq(totals.messages_received, sent[0], "every message counted")
	var expected_rate := float(sent[0]) * 1000.0 / float(Time.get_ticks_msec() - start)
	check(totals.messages_received_per_second > expected_rate * 0.5 and totals.messages_received_per_second < expected_rate * 2.0,
		"messages in per second %.1f, about %.1f expected" % [totals.messages_received_per_second, expected_rate])
	# Each "tick" is 10 bytes on the wire (2 header, 4 mask, 4 payload).
	check(absf(totals.bytes_received_per_second - totals.messages_received_per_second * 10.0) < 0.01,
		"bytes in per second %.1f = 10 x messages" % totals.bytes_received_per_second)
	check_eq(totals.messages_sent_per_second, 0.0, "the server sent nothing")


func test_multiplayer_peers_have_statistics_too() -> void:
	var port := free_port()
	server = WebSocketServer.new()
	_plain(server)
	server.heartbeat_interval = 0.2
	check_eq(server.create_server(port, "127.0.0.1"), OK, "create_server")
	var server_mp := SceneMultiplayer.new()
	server_mp.multiplayer_peer = server
	var peer := WebSocketClient.new()
	_plain(peer)
	check_eq(peer.create_client("ws://127.0.0.1:%d" % port), OK, "create_client")
	var client_mp := SceneMultiplayer.new()
	client_mp.multiplayer_peer = peer
	await until(func(): return server_mp.get_peers().size() == 1 and client_mp.get_unique_id() > 1, [server_mp, client_mp], 5.0, "a session")
	var id: int = server_mp.get_peers()[0]
	await until(func(): return server.get_peer_statistics(id).rtt_ms > 0.0, [server_mp, client_mp], 5.0, "a round-trip time")
	check(server.get_peer_statistics(id).rtt_ms > 0.0, "the server measures its peer's round-trip time")
	var stats: Dictionary = peer.get_statistics()
	# The id message (4 bytes in a 6-byte frame) came first.
	check(stats.messages_received >= 1 and stats.wire_bytes_received >= 6, "the client counted the id message: %s" % str(stats))
	check_eq(server.get_statistics().open, 1, "one open peer")
	peer.close()
	server_mp.multiplayer_peer = null
	client_mp.multiplayer_peer = null
