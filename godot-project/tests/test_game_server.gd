## Running a game server: authentication at the handshake (`verify_handshakes`, with Python
## `websockets` sending its own headers and raw requests for every answer), the health check,
## draining, and replacing the TLS certificate of a running server.
extends "res://tests/test_case.gd"

## Every handshake_requested, as [id, resource_name, headers, address].
var requests: Array = []
## Every drained signal (one entry each).
var drained: Array = []
## Extra clients of a test, each recording [index, event, args...] in extra_events.
var extra_clients: Array = []
var extra_events: Array = []


## `start_server()` with `verify_handshakes` on; requests are recorded in `requests`.
func start_verifying_server(configure := Callable()) -> int:
	return start_server(func(s):
		s.verify_handshakes = true
		s.handshake_requested.connect(func(id, path, headers, address): requests.append([id, path, headers, address]))
		s.drained.connect(func(): drained.append(true))
		if configure.is_valid():
			configure.call(s))



## A plain HTTP request for `path` with `method`.
func plain_request(path: String, method := "GET") -> PackedByteArray:
	return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % [method, path]).to_utf8_buffer()


## Starts handshake_peer.py against `url` with `headers`; returns [pid, result file].
func python_handshake(python: String, url: String, headers: Array, name: String) -> Array:
	var result_path := OS.get_user_data_dir().path_join("handshake_%s_%d.json" % [name, OS.get_process_id()])
	DirAccess.remove_absolute(result_path)
	var args := PackedStringArray([ProjectSettings.globalize_path("res://tests/peers/handshake_peer.py"), url, result_path])
	args.append_array(PackedStringArray(headers))
	return [spawn(python, args), result_path]


## A WebSocketClient connected to `url` (recorded in extra_clients and extra_events).
func extra_client(url: String, configure := Callable()) -> WebSocketClient:
	var c := WebSocketClient.new()
	var index := extra_clients.size()
	extra_clients.append(c)
	if configure.is_valid():
		configure.call(c)
	c.connection_established.connect(func(_p): extra_events.append([index, "established"]))
	c.connection_error.connect(func(): extra_events.append([index, "error"]))
	c.connection_closed.connect(func(clean): extra_events.append([index, "closed", clean]))
	c.server_close_request.connect(func(code, reason): extra_events.append([index, "close_request", code, reason]))
	check_eq(c.connect_to_url(url), OK, "connect_to_url %s" % url)
	return c


func has_extra_event(index: int, name: String) -> bool:
	return extra_events.any(func(e): return e[0] == index and e[1] == name)


func test_a_python_client_is_let_in_by_its_token_and_another_refused() -> void:
	var python := tool_path("WSRS_PYTHON")
	if python.is_empty():
		return
	var port := start_verifying_server()
	var headers_at_connect := {}
	server.handshake_requested.connect(func(id, _path, headers, _address):
		if headers.get("authorization", "") == "Bearer good":
			check_eq(server.accept_handshake(id, PackedStringArray(["X-Session: s-%d" % id])), OK, "accept_handshake")
		else:
			check_eq(server.reject_handshake(id, 401, "bad token"), OK, "reject_handshake"))
	server.client_connected.connect(func(id, _p, _r): headers_at_connect[id] = server.get_peer(id).get_request_headers())
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		peer.send_text(peer.get_packet().get_string_from_utf8()))
	var url := "ws://127.0.0.1:%d" % port
	var good := python_handshake(python, url + "/play?room=2", ["Authorization: Bearer good", "Cookie: session=abc", "X-Custom: one", "X-Custom: two"], "good")
	var bad := python_handshake(python, url + "/play", ["Authorization: Bearer wrong"], "bad")
	await until(func(): return not is_running(good[0]) and not is_running(bad[0]), [server], 20.0, "both Python clients to finish")
	check_eq(requests.size(), 2, "two handshake_requested")
	var good_request: Array = requests.filter(func(r): return r[2].get("authorization", "") == "Bearer good").front() if requests.size() == 2 else []
	if good_request.is_empty():
		check(false, "no request with the good token: %s" % [requests])
		return
	var id: int = good_request[0]
	check_eq(good_request[1], "/play?room=2", "resource_name")
	check_eq(good_request[2].get("x-custom"), "one, two", "a repeated header, joined")
	check_eq(good_request[2].get("cookie"), "session=abc", "the cookie")
	check(good_request[2].has("sec-websocket-key") and good_request[2].has("host"), "every header, names in lower case: %s" % [good_request[2]])
	check_eq(good_request[3], "127.0.0.1", "the client's address")
	check_eq(headers_at_connect.keys(), [id], "only the accepted client connected")
	check_eq(headers_at_connect.get(id, {}).get("authorization"), "Bearer good", "get_request_headers on the connection")
	var good_result: Variant = read_json(good[1])
	var bad_result: Variant = read_json(bad[1])
	check(good_result is Dictionary and bad_result is Dictionary, "both Python clients wrote their results")
	if good_result is Dictionary:
		check_eq(good_result["errors"], [], "the accepted client's errors")
		check_eq(good_result["status"], 101, "the accepted client's status")
		check_eq(good_result["response_headers"].get("x-session"), "s-%d" % id, "accept_handshake's header reached the client")
		check_eq(good_result["echo"], "hello", "the accepted client's echo")
	if bad_result is Dictionary:
		check_eq(bad_result["errors"], [], "the refused client's errors")
		check_eq(bad_result["status"], 401, "the refused client's status")
		check_eq(bad_result["body"], "bad token", "the refused client's body")


func test_each_refusal_status_and_body_reach_the_client() -> void:
	var port := start_verifying_server()
	for status in [400, 401, 403, 404, 429, 500, 503]:
		var count := requests.size()
		var answer := await raw_exchange(port, upgrade_request("/s%d" % status), [server], func():
			if await until(func(): return requests.size() == count + 1, [server], 5.0, "request %d" % status):
				check_eq(server.reject_handshake(requests.back()[0], status, "refused %d" % status), OK, "reject %d" % status))
		check(answer.begins_with("HTTP/1.1 %d " % status), "status %d: %s" % [status, answer.get_slice("\r\n", 0)])
		check(answer.ends_with("\r\n\r\nrefused %d" % status), "body of %d: %s" % [status, answer])
	check(not has_event(server_events, "client_connected"), "nobody connected")


func test_bad_answers_are_refused_and_the_request_stays_held() -> void:
	var port := start_verifying_server()
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	tcp.put_data(upgrade_request("/held"))
	if not await until(func(): return requests.size() == 1, [server, tcp], 5.0, "the request"):
		return
	var id: int = requests[0][0]
	expect_error("HTTP status 200 does not refuse")
	check_eq(server.reject_handshake(id, 200), ERR_INVALID_PARAMETER, "status 200")
	expect_error("HTTP status 99999 does not refuse")
	check_eq(server.reject_handshake(id, 99999), ERR_INVALID_PARAMETER, "status 99999")
	expect_error("header 'Upgrade' belongs to the handshake")
	check_eq(server.accept_handshake(id, PackedStringArray(["Upgrade: h2c"])), ERR_INVALID_PARAMETER, "a handshake header")
	expect_error("is not of the form 'Name: value'")
	check_eq(server.accept_handshake(id, PackedStringArray(["no colon"])), ERR_INVALID_PARAMETER, "a malformed header line")
	expect_error("no upgrade request of peer 12345 waits")
	check_eq(server.accept_handshake(12345), ERR_DOES_NOT_EXIST, "an id never seen")
	check_eq(server.accept_handshake(id, PackedStringArray(["X-Ok: yes"])), OK, "the request was still held")
	var head: String = await read_http_head(tcp, [server])
	check(head.begins_with("HTTP/1.1 101 ") and head.contains("X-Ok: yes\r\n"), "accepted after the bad answers: %s" % head)
	expect_error("no upgrade request of peer %d waits" % id)
	check_eq(server.reject_handshake(id, 403), ERR_DOES_NOT_EXIST, "a second answer")
	await until(func(): return has_event(server_events, "client_connected"), [server, tcp], 5.0, "client_connected")


func test_an_answer_after_the_client_left_is_an_error() -> void:
	var port := start_verifying_server()
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	tcp.put_data(upgrade_request("/leaving"))
	if not await until(func(): return requests.size() == 1, [server, tcp], 5.0, "the request"):
		return
	tcp.disconnect_from_host()
	# The I/O thread sees the socket close; the next polls report it.
	await pump([server], 1.0)
	var id: int = requests[0][0]
	expect_error("no upgrade request of peer %d waits" % id)
	check_eq(server.accept_handshake(id), ERR_DOES_NOT_EXIST, "accept after the client left")
	check(not has_event(server_events, "client_connected"), "nobody connected")


func test_a_handshake_never_answered_is_refused_at_the_timeout() -> void:
	var port := start_verifying_server(func(s): s.handshake_timeout = 0.5)
	var started := Time.get_ticks_msec()
	var answer := await raw_exchange(port, upgrade_request("/ignored"), [server])
	var waited := Time.get_ticks_msec() - started
	check(answer.begins_with("HTTP/1.1 503 "), "refused with 503: %s" % answer.get_slice("\r\n", 0))
	check(waited >= 400, "refused at the timeout, not at once (%d ms)" % waited)
	check_eq(requests.size(), 1, "the request was reported")
	if requests.size() == 1:
		expect_error("no upgrade request of peer %d waits" % requests[0][0])
		check_eq(server.accept_handshake(requests[0][0]), ERR_DOES_NOT_EXIST, "accept after the timeout")


func test_multiplayer_peer_connected_comes_only_after_the_accept() -> void:
	server = WebSocketServer.new()
	server.bind_ip = "127.0.0.1"
	server.verify_handshakes = true
	server.handshake_requested.connect(func(id, path, headers, address): requests.append([id, path, headers, address]))
	server.peer_connected.connect(func(id): server_events.append(["peer_connected", id]))
	check_eq(server.create_server(0), OK, "create_server")
	client = WebSocketClient.new()
	client.handshake_headers = PackedStringArray(["X-Token: t0ken"])
	client.peer_connected.connect(func(id): client_events.append(["peer_connected", id]))
	check_eq(client.create_client("ws://127.0.0.1:%d/lobby" % server.get_local_port()), OK, "create_client")
	if not await until(func(): return requests.size() == 1, [server, client], 5.0, "the request"):
		return
	await pump([server, client], 0.3)
	check(server_events.is_empty() and client_events.is_empty(), "no peer_connected before the accept: %s %s" % [server_events, client_events])
	check_eq(requests[0][2].get("x-token"), "t0ken", "the client's header")
	var id: int = requests[0][0]
	check_eq(server.accept_handshake(id), OK, "accept")
	await until(func(): return server_events.size() == 1 and client_events.size() == 1, [server, client], 5.0, "peer_connected on both sides")
	check_eq(server_events, [["peer_connected", id]], "the server's peer_connected, with the id of the request")
	check_eq(client.get_unique_id(), id, "the client got the same id")
	check_eq(server.get_peer(id).get_request_headers().get("x-token"), "t0ken", "get_request_headers in multiplayer mode")


func test_the_health_check_answers_200_or_503_and_nothing_else_changes() -> void:
	var port := start_server(func(s):
		s.health_check_path = "/healthz"
		s.max_connections = 2)
	var answer := await raw_exchange(port, plain_request("/healthz"), [server])
	check(answer.begins_with("HTTP/1.1 200 OK\r\n") and answer.ends_with("\r\n\r\nok\n"), "GET /healthz: %s" % answer)
	var head := await raw_exchange(port, plain_request("/healthz?from=lb", "HEAD"), [server])
	check(head.begins_with("HTTP/1.1 200 OK\r\n") and head.ends_with("\r\n\r\n"), "HEAD /healthz has no body: %s" % head)
	check_eq(await raw_exchange(port, plain_request("/other"), [server]), "", "another path is closed without an answer, as before")
	check_eq(await raw_exchange(port, plain_request("/healthz", "POST"), [server]), "", "a POST is no health check")
	# At max_connections (one open client and one held TCP connection), the check gets 503.
	start_client("ws://127.0.0.1:%d/" % port)
	await until(func(): return has_event(server_events, "client_connected"), [server, client], 5.0, "a client")
	var idle: StreamPeerTCP = await raw_connect(port, [server, client])
	await pump([server, client, idle], 0.2)
	var full := await raw_exchange(port, plain_request("/healthz"), [server, client])
	check(full.begins_with("HTTP/1.1 503 "), "503 at max_connections: %s" % full.get_slice("\r\n", 0))
	idle.disconnect_from_host()
	client.close()
	await until(func(): return has_event(server_events, "client_disconnected"), [server, client], 5.0, "the client to leave")
	await pump([server], 0.2)
	answer = await raw_exchange(port, plain_request("/healthz"), [server])
	check(answer.begins_with("HTTP/1.1 200 "), "200 again with room: %s" % answer.get_slice("\r\n", 0))
	check_eq(server.drain(), OK, "drain")
	answer = await raw_exchange(port, plain_request("/healthz"), [server])
	check(answer.begins_with("HTTP/1.1 503 ") and answer.ends_with("draining\n"), "503 while draining: %s" % answer)
	# Without a health_check_path, nothing answers it.
	var plain := WebSocketServer.new()
	plain.bind_ip = "127.0.0.1"
	check_eq(plain.listen(0), OK, "listen without a health check")
	check_eq(await raw_exchange(plain.get_local_port(), plain_request("/healthz"), [plain]), "", "no health check when off")
	plain.stop()
	expect_error("health_check_path 'no-slash' is not a path")
	var bad := WebSocketServer.new()
	bad.health_check_path = "no-slash"
	check_eq(bad.listen(0), ERR_INVALID_PARAMETER, "a path without '/'")


func test_drain_refuses_new_clients_closes_the_rest_after_the_grace_and_reports_drained() -> void:
	var port := start_server(func(s): s.drained.connect(func(): drained.append(true)))
	var url := "ws://127.0.0.1:%d/" % port
	var a := extra_client(url)
	var b := extra_client(url)
	if not await until(func(): return has_extra_event(0, "established") and has_extra_event(1, "established"), [server, a, b], 5.0, "two clients"):
		return
	var started := Time.get_ticks_msec()
	check_eq(server.drain(1.0), OK, "drain with a grace period")
	check(server.is_draining(), "is_draining")
	var refused := await raw_exchange(port, upgrade_request("/late"), [server, a, b])
	check(refused.begins_with("HTTP/1.1 503 "), "a new client gets 503: %s" % refused.get_slice("\r\n", 0))
	check(drained.is_empty() and not has_extra_event(0, "closed"), "clients stay during the grace period")
	await until(func(): return has_extra_event(0, "closed") and has_extra_event(1, "closed"), [server, a, b], 5.0, "both clients closed")
	check(Time.get_ticks_msec() - started >= 900, "closed after the grace period")
	for index in 2:
		check(extra_events.has([index, "close_request", 1001, "going away"]), "client %d told 1001 going away: %s" % [index, extra_events])
		check(extra_events.has([index, "closed", true]), "client %d closed cleanly" % index)
	await until(func(): return drained.size() == 1, [server], 5.0, "drained")
	await pump([server], 0.2)
	check_eq(drained.size(), 1, "drained once")
	check(server.is_listening(), "still listening after drained, until stop()")


func test_drained_comes_as_soon_as_the_last_client_leaves() -> void:
	var port := start_server(func(s): s.drained.connect(func(): drained.append(true)))
	var a := extra_client("ws://127.0.0.1:%d/" % port)
	if not await until(func(): return has_extra_event(0, "established"), [server, a], 5.0, "a client"):
		return
	check_eq(server.drain(60.0), OK, "drain with a long grace")
	await pump([server, a], 0.2)
	check(drained.is_empty(), "not drained while a client stays")
	a.disconnect_from_host(1000, "done playing")
	check(await until(func(): return drained.size() == 1, [server, a], 5.0, "drained"), "drained long before the grace ends")
	check_eq(server.drain(0.0), OK, "draining again only shortens the grace")
	var idle := WebSocketServer.new()
	idle.bind_ip = "127.0.0.1"
	idle.drained.connect(func(): drained.append(true))
	check_eq(idle.listen(0), OK, "a server without clients")
	check_eq(idle.drain(), OK, "drain it")
	await until(func(): return drained.size() == 2, [idle], 5.0, "drained with nobody connected")
	idle.stop()
	expect_error("drain: not listening")
	check_eq(idle.drain(), ERR_UNCONFIGURED, "drain when stopped")
	expect_error("grace_seconds must be a positive number of seconds, not -1")
	check_eq(server.drain(-1.0), ERR_INVALID_PARAMETER, "a negative grace")


func test_reload_tls_serves_the_new_certificate_and_keeps_open_sessions() -> void:
	var crypto := Crypto.new()
	var old_key := crypto.generate_rsa(2048)
	var old_cert := crypto.generate_self_signed_certificate(old_key, "CN=localhost,O=websocket-rs old,C=US")
	var new_key := crypto.generate_rsa(2048)
	var new_cert := crypto.generate_self_signed_certificate(new_key, "CN=localhost,O=websocket-rs new,C=US")
	var port := start_server(func(s):
		s.private_key = old_key
		s.ssl_certificate = old_cert)
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		peer.send_text(peer.get_packet().get_string_from_utf8()))
	var url := "wss://localhost:%d/" % port
	var first := extra_client(url, func(c): c.trusted_tls_certificate = old_cert)
	if not await until(func(): return has_extra_event(0, "established"), [server, first], 10.0, "the first session"):
		return
	check_eq(server.reload_tls(new_key, new_cert), OK, "reload_tls")
	expect_error("the server's certificate was refused")
	var second := extra_client(url, func(c): c.trusted_tls_certificate = new_cert)
	var stale := extra_client(url, func(c): c.trusted_tls_certificate = old_cert)
	await until(func(): return has_extra_event(1, "established") and has_extra_event(2, "error"), [server, first, second, stale], 10.0,
		"the new certificate to be served")
	check(has_extra_event(1, "established"), "a client trusting only the new certificate connects")
	check(has_extra_event(2, "error") and not has_extra_event(2, "established"), "a client trusting only the old one is refused")
	var echoes := []
	# Through the member array: a lambda capturing the client it is connected to would keep it alive.
	first.data_received.connect(func(): echoes.append(["first", extra_clients[0].get_peer(1).get_packet().get_string_from_utf8()]))
	second.data_received.connect(func(): echoes.append(["second", extra_clients[1].get_peer(1).get_packet().get_string_from_utf8()]))
	first.get_peer(1).send_text("old session")
	second.get_peer(1).send_text("new session")
	await until(func(): return echoes.size() == 2, [server, first, second], 5.0, "both sessions to echo")
	check(echoes.has(["first", "old session"]) and echoes.has(["second", "new session"]), "both sessions alive: %s" % [echoes])
	expect_error("reload_tls needs both a private key and a certificate")
	check_eq(server.reload_tls(null, new_cert), ERR_INVALID_PARAMETER, "a null key")
	var plain := WebSocketServer.new()
	plain.bind_ip = "127.0.0.1"
	check_eq(plain.listen(0), OK, "a plain server")
	expect_error("reloading TLS on a server that listens for plain ws://")
	check_eq(plain.reload_tls(new_key, new_cert), ERR_UNAVAILABLE, "reload_tls on ws://")
	plain.stop()
	expect_error("reload_tls: not listening")
	check_eq(WebSocketServer.new().reload_tls(new_key, new_cert), ERR_UNCONFIGURED, "reload_tls when not listening")
