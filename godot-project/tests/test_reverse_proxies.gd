## Our server behind a real nginx and a real HAProxy, each started by the test with the project's
## deploy/ configuration on loopback ports (helpers/reverse_proxy.gd): plain and with TLS
## terminated at the proxy, X-Forwarded-For and the PROXY protocol (v1 and v2), the health check;
## and what trusted_proxies makes of forwarding headers and PROXY headers from everyone else.
##
## Addresses (Linux routes all of 127/8 to the loopback interface): our server listens on
## 127.0.0.1; the proxies connect to it from PROXY_ADDRESS, the trusted one, so the socket's
## address is never the answer a test expects; our WebSocketClient connects from 127.0.0.1, the
## Python client (peers/proxy_client.py) from CLIENT_ADDRESS or TRUSTED_CLIENT_ADDRESS.
## `cargo xtask test` provides nginx, HAProxy and Python `websockets` through WSRS_NGINX,
## WSRS_HAPROXY and WSRS_PYTHON.
extends "res://tests/test_case.gd"

const ReverseProxy := preload("res://tests/helpers/reverse_proxy.gd")

## Where nginx and HAProxy connect to our server from (nginx's proxy_bind, HAProxy's source).
const PROXY_ADDRESS := "127.0.0.2"
## Where the Python client connects from: an address no server here trusts.
const CLIENT_ADDRESS := "127.0.0.3"
## Where the Python client connects from when it plays a trusted proxy in front of the proxy.
const TRUSTED_CLIENT_ADDRESS := "127.0.0.4"
## The address a client claims in its own forwarding headers (TEST-NET-3, RFC 5737).
const FORGED_ADDRESS := "203.0.113.7"

## The proxy of the test; it is killed when the test's node goes (the runner frees it after every test).
var proxy: ReverseProxy
## The key and certificate (CN=localhost) of the proxy's TLS listener.
var key: CryptoKey
var cert: X509Certificate
## The placeholders of the proxy's configuration, certificate files included.
var proxy_values := {}
## The proxy's listening ports on 127.0.0.1.
var tls_port := 0
var plain_port := 0
## What our server saw of each client as it connected, by id: "resource", "address", "port",
## "host" (get_connected_host) and "headers" (get_request_headers).
var seen := {}
## Messages our client received, in order (String for text, PackedByteArray for binary).
var client_messages: Array = []


## Our server on 127.0.0.1 (`configure` sets trusted_proxies and the like before listen) that
## records in `seen` what it sees of each client, greets it with a text "welcome" and a binary
## [1, 2, 3], and echoes every message with its kind. Returns its port, or 0.
func start_echo_server(configure: Callable) -> int:
	var port := start_server(configure)
	if port == 0:
		return 0
	server.client_connected.connect(func(id, _protocol, resource_name):
		seen[id] = {"resource": resource_name, "address": server.get_peer_address(id), "port": server.get_peer_port(id),
			"host": server.get_peer(id).get_connected_host()}
		seen[id]["headers"] = server.get_peer(id).get_request_headers())
	server.client_connected.connect(func(id, _protocol, _resource_name):
		server.get_peer(id).send_text("welcome")
		server.get_peer(id).put_packet(PackedByteArray([1, 2, 3])))
	echo_with_kinds()
	return port


## A fresh RSA key and a self-signed certificate for localhost, saved for the proxy.
func make_identity() -> void:
	var crypto := Crypto.new()
	key = crypto.generate_rsa(2048)
	cert = openssl_readable_certificate(key, "CN=localhost,O=websocket-rs tests,C=US")
	proxy_values.merge(proxy.save_identity(key, cert))


## nginx with deploy/nginx/websocket-rs.conf in front of our server on `server_port`: TLS on
## tls_port, plain on plain_port. Returns whether it runs.
func start_nginx(server_port: int) -> bool:
	proxy = ReverseProxy.new(self)
	make_identity()
	tls_port = proxy.loopback_port()
	plain_port = proxy.loopback_port()
	proxy_values.merge({"SERVER_NAME": "localhost", "TLS_LISTEN": "127.0.0.1:%d" % tls_port,
		"PLAIN_LISTEN": "127.0.0.1:%d" % plain_port, "UPSTREAM": "127.0.0.1:%d" % server_port})
	return await proxy.start_nginx(proxy_values, PROXY_ADDRESS, [server])


## HAProxy with deploy/haproxy/websocket-rs-http.cfg in front of our server on `server_port`:
## TLS on tls_port, plain on plain_port. Returns whether it runs.
func start_haproxy_http(server_port: int) -> bool:
	proxy = ReverseProxy.new(self)
	make_identity()
	tls_port = proxy.loopback_port()
	plain_port = proxy.loopback_port()
	proxy_values.merge({"TLS_BIND": "127.0.0.1:%d" % tls_port, "PLAIN_BIND": "127.0.0.1:%d" % plain_port,
		"UPSTREAM": "127.0.0.1:%d" % server_port})
	return await proxy.start_haproxy(ReverseProxy.HAPROXY_HTTP, proxy_values, PROXY_ADDRESS, [server])


## HAProxy with deploy/haproxy/websocket-rs-tcp.cfg in front of our server on `server_port`,
## with `send_proxy` on its server line ("send-proxy" or "send-proxy-v2", and "check-ssl verify none"
## for a wss:// server), on plain_port. Returns whether it runs.
func start_haproxy_tcp(server_port: int, send_proxy: String) -> bool:
	proxy = ReverseProxy.new(self)
	plain_port = proxy.loopback_port()
	proxy_values.merge({"PLAIN_BIND": "127.0.0.1:%d" % plain_port, "UPSTREAM": "127.0.0.1:%d" % server_port, "SEND_PROXY": send_proxy})
	return await proxy.start_haproxy(ReverseProxy.HAPROXY_TCP, proxy_values, PROXY_ADDRESS, [server])


## Our client's session with the echo server through `url`: it expects the greeting, sends a
## text and a binary message, expects them echoed, then closes with 1000 and waits for our server
## to see the clean close. Returns whether all of it happened.
func our_client_session(url: String, headers := PackedStringArray(), client_setup := Callable()) -> bool:
	start_client(url, PackedStringArray(), headers, client_setup)
	client.data_received.connect(func():
		var peer: WebSocketConnection = client.get_peer(1)
		while peer.get_available_packet_count() > 0:
			var data := peer.get_packet()
			client_messages.append(data.get_string_from_utf8() if peer.was_string_packet() else data))
	if not await until(func(): return client_messages.size() == 2, [server, client], 10.0, "the greeting at our client through %s" % url):
		check(false, "our client's events: %s" % [client_events])
		return false
	check_eq(client_messages, ["welcome", PackedByteArray([1, 2, 3])], "the greeting through %s" % url)
	client.get_peer(1).send_text("text through the proxy")
	client.get_peer(1).put_packet(PackedByteArray([0, 98, 255]))
	if not await until(func(): return client_messages.size() == 4, [server, client], 10.0, "the echoes at our client"):
		return false
	check_eq(client_messages.slice(2), ["text through the proxy", PackedByteArray([0, 98, 255])], "the echoes through %s" % url)
	var id := id_for(url.substr(url.find("/", url.find("://") + 3)))
	client.disconnect_from_host(1000, "done")
	var closed := func(): return server_events.any(func(e): return e[0] == "client_disconnected" and e[1] == id)
	if not await until(closed, [server, client], 10.0, "the close through the proxy"):
		return false
	check(server_events.has(["client_disconnected", id, true]), "clean close through the proxy: %s" % [server_events])
	return true


## Starts peers/proxy_client.py against `url` with `options` (see its doc); returns
## {"path": its result file, "pid": ...}, or {} when it could not start.
func start_python_client(url: String, options := PackedStringArray()) -> Dictionary:
	var python := tool_path("WSRS_PYTHON")
	if python.is_empty():
		return {}
	var folder := proxy.folder if proxy != null else OS.get_user_data_dir()  # the proxy's goes with it
	var path := folder.path_join("proxy_client_%d.json" % Time.get_ticks_usec())
	DirAccess.remove_absolute(path)
	var args := PackedStringArray([ProjectSettings.globalize_path("res://tests/peers/proxy_client.py"), url, path])
	args.append_array(options)
	var pid := spawn(python, args)
	return {"path": path, "pid": pid} if pid > 0 else {}


## Polls our server until the Python client of start_python_client() has finished; checks that
## it saw no error and returns its result, or {}.
func python_result(python: Dictionary) -> Dictionary:
	if python.is_empty():
		return {}
	await until(func(): return FileAccess.file_exists(python["path"]) and not is_running(python["pid"]), [server], 30.0, "the Python client to finish")
	var result: Variant = read_json(python["path"])
	DirAccess.remove_absolute(python["path"])
	if not result is Dictionary:
		check(false, "the Python client wrote no result")
		return {}
	check_eq(result["errors"], [], "what the Python client saw")
	return result if result["errors"].is_empty() else {}


## Our server's id of the client that asked for `resource` (path and query), or -1.
func id_for(resource: String) -> int:
	for event in server_events:
		if event[0] == "client_connected" and event[3] == resource:
			return event[1]
	return -1


## Checks what our server saw of the client that asked for `resource`: get_peer_address and
## get_connected_host are `address`, get_peer_port is `port` (any port but 0 for -1), and each
## request header in `headers` has its value (null: absent).
func check_seen(resource: String, address: String, port: int, headers := {}) -> void:
	var id := id_for(resource)
	if not seen.has(id):
		check(false, "no client asked for %s: %s" % [resource, server_events])
		return
	var record: Dictionary = seen[id]
	check_eq(record["address"], address, "get_peer_address of the client of %s" % resource)
	check_eq(record["host"], address, "get_connected_host of the client of %s" % resource)
	if port >= 0:
		check_eq(record["port"], port, "get_peer_port of the client of %s" % resource)
	else:
		check(record["port"] > 0, "get_peer_port of the client of %s is its socket's port: %d" % [resource, record["port"]])
	var request_headers: Dictionary = record.get("headers", {})
	for name in headers:
		check_eq(request_headers.get(name), headers[name], "request header %s of the client of %s" % [name, resource])


## A plain TCP connection from `source` (a loopback address) to our server on `port`.
func raw_connect_from(source: String, port: int) -> StreamPeerTCP:
	var tcp := StreamPeerTCP.new()
	check_eq(tcp.bind(0, source), OK, "binding a TCP socket to %s" % source)
	tcp.connect_to_host("127.0.0.1", port)
	await until(func():
		tcp.poll()
		return tcp.get_status() == StreamPeerTCP.STATUS_CONNECTED, [server], 5.0, "a TCP connection from %s" % source)
	return tcp


## Everything `tcp` receives until the other side closes it, or with `head_only` until an HTTP
## head ended (or it closed), polling our server and client meanwhile; a failure is recorded when
## neither happened within `timeout_s`.
func read_until_closed(tcp: StreamPeerTCP, what: String, head_only := false, timeout_s := 10.0) -> String:
	var box := [PackedByteArray()]  # an Array, so the lambda's additions are seen here
	var pollables: Array = [server] if client == null else [server, client]
	await until(func():
		tcp.poll()
		if tcp.get_status() != StreamPeerTCP.STATUS_CONNECTED:
			return true
		var count := tcp.get_available_bytes()
		if count > 0:
			box[0] = box[0] + tcp.get_data(count)[1]
		return head_only and box[0].get_string_from_ascii().contains("\r\n\r\n"), pollables, timeout_s, what)
	# As Latin-1: what follows an HTTP head may be WebSocket frames, not text.
	return box[0].get_string_from_ascii()


## A plain HTTP GET of `path` to 127.0.0.1:`port` (with "Connection: close"); the whole answer.
func http_get(port: int, path: String) -> String:
	var tcp := await raw_connect(port, [server])
	tcp.put_data(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path).to_utf8_buffer())
	return await read_until_closed(tcp, "the answer to GET %s" % path)


func test_nginx_forwards_our_client_over_plain_http() -> void:
	var port := start_echo_server(func(s): s.trusted_proxies = PackedStringArray([PROXY_ADDRESS]))
	if port == 0 or not await start_nginx(port):
		return
	if not await our_client_session("ws://127.0.0.1:%d/play?room=1" % plain_port):
		return
	# nginx's X-Forwarded-For names our client only; it gives no port.
	check_seen("/play?room=1", "127.0.0.1", 0, {"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http", "host": "127.0.0.1"})


func test_nginx_terminates_tls_for_our_client() -> void:
	var port := start_echo_server(func(s): s.trusted_proxies = PackedStringArray([PROXY_ADDRESS]))
	if port == 0 or not await start_nginx(port):
		return
	if not await our_client_session("wss://localhost:%d/secure" % tls_port, PackedStringArray(), func(c): c.trusted_tls_certificate = cert):
		return
	check_seen("/secure", "127.0.0.1", 0, {"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "https", "host": "localhost"})


func test_nginx_terminates_tls_for_a_python_client_with_forged_headers() -> void:
	var port := start_echo_server(func(s): s.trusted_proxies = PackedStringArray([PROXY_ADDRESS]))
	if port == 0 or not await start_nginx(port):
		return
	# The client names someone else in its own X-Forwarded-For and Forwarded headers; nginx appends
	# the address it came from to the first and removes the second. The client is not trusted, so
	# the walk from the right stops at its own address.
	var python := start_python_client("wss://127.0.0.1:%d/python" % tls_port, PackedStringArray(["--source", CLIENT_ADDRESS,
		"--cafile", proxy_values["CERTIFICATE"], "--server-hostname", "localhost",
		"--header", "X-Forwarded-For: " + FORGED_ADDRESS, "--header", "Forwarded: for=" + FORGED_ADDRESS]))
	var result := await python_result(python)
	if result.is_empty():
		return
	check_eq(result["local_address"][0], CLIENT_ADDRESS, "the Python client's own address")
	check_seen("/python", CLIENT_ADDRESS, 0, {"x-forwarded-for": "%s, %s" % [FORGED_ADDRESS, CLIENT_ADDRESS],
		"x-forwarded-proto": "https", "forwarded": null})


func test_nginx_believes_a_clients_forwarded_for_only_when_the_client_is_trusted() -> void:
	# TRUSTED_CLIENT_ADDRESS plays a proxy in front of nginx (a CDN, a second load balancer).
	var port := start_echo_server(func(s): s.trusted_proxies = PackedStringArray([PROXY_ADDRESS, TRUSTED_CLIENT_ADDRESS + "/32"]))
	if port == 0 or not await start_nginx(port):
		return
	var header := "X-Forwarded-For: " + FORGED_ADDRESS
	var untrusted := start_python_client("ws://127.0.0.1:%d/untrusted" % plain_port, PackedStringArray(["--source", CLIENT_ADDRESS, "--header", header]))
	var trusted := start_python_client("ws://127.0.0.1:%d/trusted" % plain_port, PackedStringArray(["--source", TRUSTED_CLIENT_ADDRESS, "--header", header]))
	var untrusted_result := await python_result(untrusted)
	var trusted_result := await python_result(trusted)
	if untrusted_result.is_empty() or trusted_result.is_empty():
		return
	check_seen("/untrusted", CLIENT_ADDRESS, 0, {"x-forwarded-for": "%s, %s" % [FORGED_ADDRESS, CLIENT_ADDRESS]})
	check_seen("/trusted", FORGED_ADDRESS, 0, {"x-forwarded-for": "%s, %s" % [FORGED_ADDRESS, TRUSTED_CLIENT_ADDRESS]})


func test_nginx_passes_the_health_check() -> void:
	var port := start_echo_server(func(s):
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.health_check_path = "/healthz")
	if port == 0 or not await start_nginx(port):
		return
	var answer := await http_get(plain_port, "/healthz")
	check(answer.begins_with("HTTP/1.1 200 "), "/healthz through nginx: %s" % answer.c_escape())
	check(answer.get_slice("\r\n\r\n", 1).contains("ok\n"), "/healthz's body through nginx: %s" % answer.c_escape())
	# Any other plain request is closed without an answer, which nginx reports as a bad gateway.
	answer = await http_get(plain_port, "/somewhere-else")
	check(answer.begins_with("HTTP/1.1 502 "), "another path through nginx: %s" % answer.c_escape())
	# A player still gets in; while the server drains the health check says 503.
	if not await our_client_session("ws://127.0.0.1:%d/player" % plain_port):
		return
	check_eq(server.drain(30.0), OK, "drain")
	answer = await http_get(plain_port, "/healthz")
	check(answer.begins_with("HTTP/1.1 503 "), "/healthz through nginx while draining: %s" % answer.c_escape())


func test_haproxy_http_mode_forwards_our_client_with_x_forwarded_for() -> void:
	var port := start_echo_server(func(s):
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.health_check_path = "/healthz")
	if port == 0 or not await start_haproxy_http(port):
		return
	# HAProxy adds an X-Forwarded-For line of its own after the one our client forged (the server
	# joins them) and removes the forged Forwarded.
	var forged := PackedStringArray(["X-Forwarded-For: " + FORGED_ADDRESS, "Forwarded: for=" + FORGED_ADDRESS])
	if not await our_client_session("ws://127.0.0.1:%d/play" % plain_port, forged):
		return
	check_seen("/play", "127.0.0.1", 0, {"x-forwarded-for": "%s, 127.0.0.1" % FORGED_ADDRESS, "x-forwarded-proto": "http", "forwarded": null})


func test_haproxy_terminates_tls_for_our_client() -> void:
	var port := start_echo_server(func(s):
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.health_check_path = "/healthz")
	if port == 0 or not await start_haproxy_http(port):
		return
	if not await our_client_session("wss://localhost:%d/secure" % tls_port, PackedStringArray(), func(c): c.trusted_tls_certificate = cert):
		return
	check_seen("/secure", "127.0.0.1", 0, {"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "https"})


func test_haproxy_takes_a_draining_server_out_of_rotation() -> void:
	var port := start_echo_server(func(s):
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.health_check_path = "/healthz")
	if port == 0 or not await start_haproxy_http(port):
		return
	# A player gets in while HAProxy's health checks pass, and stays while the server drains.
	start_client("ws://127.0.0.1:%d/player" % plain_port)
	client.data_received.connect(func():
		while client.get_peer(1).get_available_packet_count() > 0:
			client_messages.append(client.get_peer(1).get_packet()))
	if not await until(func(): return client_messages.size() == 2, [server, client], 10.0, "the player's greeting through HAProxy"):
		return
	check_eq(server.drain(60.0), OK, "drain")
	# The health check answers 503 now; after three of them (2 s apart) HAProxy stops passing
	# requests on and answers with its own 503 (a plain request our server would have left
	# unanswered, a 502 from HAProxy, until then).
	var answer := ""
	var deadline := Time.get_ticks_msec() + 20000
	while Time.get_ticks_msec() < deadline and not answer.contains("No server is available"):
		answer = await http_get(plain_port, "/")
		await pump([server, client], 0.5)
	check(answer.begins_with("HTTP/1.1 503 ") and answer.contains("No server is available"),
		"HAProxy's answer once the server drains: %s" % answer.c_escape())
	client.get_peer(1).send_text("still playing")
	await until(func(): return client_messages.size() == 3, [server, client], 5.0, "the player's echo while draining")
	check_eq(client_messages.slice(2), ["still playing".to_utf8_buffer()], "the player's echo while draining")


## HAProxy in TCP mode sending `send_proxy`: the Python client (from CLIENT_ADDRESS) and our client
## (from 127.0.0.1) at the same time; the PROXY header gives each one's address and port.
func check_proxy_protocol(send_proxy: String) -> void:
	var port := start_echo_server(func(s):
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.proxy_protocol = true
		s.health_check_path = "/healthz")
	if port == 0 or not await start_haproxy_tcp(port, send_proxy):
		return
	var python := start_python_client("ws://127.0.0.1:%d/python" % plain_port, PackedStringArray(["--source", CLIENT_ADDRESS]))
	if not await our_client_session("ws://127.0.0.1:%d/ours" % plain_port):
		return
	var result := await python_result(python)
	if result.is_empty():
		return
	check_seen("/python", CLIENT_ADDRESS, int(result["local_address"][1]), {"x-forwarded-for": null})
	check_seen("/ours", "127.0.0.1", -1, {"x-forwarded-for": null})


func test_haproxy_tcp_mode_with_proxy_protocol_v1() -> void:
	await check_proxy_protocol("send-proxy")


func test_haproxy_tcp_mode_with_proxy_protocol_v2() -> void:
	await check_proxy_protocol("send-proxy-v2")


func test_haproxy_tcp_mode_with_proxy_protocol_v2_before_our_tls() -> void:
	# TLS passes through HAProxy to our server; the PROXY header comes before the TLS hello.
	var identity := Crypto.new()
	key = identity.generate_rsa(2048)
	cert = openssl_readable_certificate(key, "CN=localhost,O=websocket-rs tests,C=US")
	var port := start_echo_server(func(s):
		s.private_key = key
		s.ssl_certificate = cert
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.proxy_protocol = true
		s.health_check_path = "/healthz")
	if port == 0 or not await start_haproxy_tcp(port, "send-proxy-v2 check-ssl verify none"):
		return
	var cafile: String = proxy.save_identity(key, cert)["CERTIFICATE"]
	var python := start_python_client("wss://127.0.0.1:%d/python" % plain_port, PackedStringArray(["--source", CLIENT_ADDRESS,
		"--cafile", cafile, "--server-hostname", "localhost"]))
	var result := await python_result(python)
	if result.is_empty():
		return
	check_seen("/python", CLIENT_ADDRESS, int(result["local_address"][1]))


func test_a_malformed_trusted_proxies_entry_is_refused_at_listen() -> void:
	var refusing := WebSocketServer.new()
	refusing.trusted_proxies = PackedStringArray(["10.0.0.0/33"])
	expect_error("trusted_proxies entry '10.0.0.0/33'")
	check_eq(refusing.listen(0), ERR_INVALID_PARAMETER, "a malformed trusted_proxies entry")


func test_forwarding_headers_from_an_untrusted_address_are_ignored() -> void:
	var port := start_echo_server(func(s): s.trusted_proxies = PackedStringArray([PROXY_ADDRESS, "10.0.0.0/8", "::1"]))
	if port == 0:
		return
	# Straight to our server from 127.0.0.1, which is not trusted: the headers are only headers.
	var forged := PackedStringArray(["X-Forwarded-For: " + FORGED_ADDRESS, "Forwarded: for=" + FORGED_ADDRESS])
	if not await our_client_session("ws://127.0.0.1:%d/forged" % port, forged):
		return
	check_seen("/forged", "127.0.0.1", -1, {"x-forwarded-for": FORGED_ADDRESS, "forwarded": "for=" + FORGED_ADDRESS})


func test_a_proxy_header_from_an_untrusted_address_is_not_believed() -> void:
	var port := start_echo_server(func(s):
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.proxy_protocol = true)
	if port == 0:
		return
	# 127.0.0.1 is not trusted, so nothing but HTTP is expected from it: "PROXY ..." is no request.
	var tcp := await raw_connect(port, [server])
	tcp.put_data(("PROXY TCP4 %s 127.0.0.1 5555 %d\r\n" % [FORGED_ADDRESS, port]).to_utf8_buffer() + upgrade_request("/forged"))
	var answer := await read_until_closed(tcp, "our server to close the connection that sent a PROXY header")
	check(not answer.begins_with("HTTP/1.1 101"), "a PROXY header from an untrusted address was answered with: %s" % answer.c_escape())
	check_eq(id_for("/forged"), -1, "the id of a client behind a PROXY header from an untrusted address")
	# The same address without one is welcome, as itself.
	if await our_client_session("ws://127.0.0.1:%d/plain" % port):
		check_seen("/plain", "127.0.0.1", -1)


func test_a_malformed_proxy_header_closes_only_that_connection() -> void:
	var port := start_echo_server(func(s):
		s.trusted_proxies = PackedStringArray([PROXY_ADDRESS])
		s.proxy_protocol = true)
	if port == 0:
		return
	# A client at an untrusted address (127.0.0.1) is connected all along; it sends no PROXY header.
	start_client("ws://127.0.0.1:%d/bystander" % port)
	client.data_received.connect(func():
		while client.get_peer(1).get_available_packet_count() > 0:
			client_messages.append(client.get_peer(1).get_packet()))
	if not await until(func(): return client_messages.size() == 2, [server, client], 10.0, "the bystander's greeting"):
		return
	# From the trusted address: a PROXY line that is not one, then no PROXY header at all.
	var malformed := await raw_connect_from(PROXY_ADDRESS, port)
	malformed.put_data("PROXY TCP4 not-an-address\r\n".to_utf8_buffer() + upgrade_request("/malformed"))
	await read_until_closed(malformed, "our server to close the connection with a malformed PROXY header")
	var missing := await raw_connect_from(PROXY_ADDRESS, port)
	missing.put_data(upgrade_request("/missing"))
	await read_until_closed(missing, "our server to close the trusted connection without a PROXY header")
	check_eq([id_for("/malformed"), id_for("/missing")], [-1, -1], "ids of the connections without a valid PROXY header")
	# A valid version 1 header from the trusted address names the client, port included.
	var valid := await raw_connect_from(PROXY_ADDRESS, port)
	valid.put_data(("PROXY TCP4 198.51.100.9 127.0.0.1 40000 %d\r\n" % port).to_utf8_buffer() + upgrade_request("/valid"))
	var head := await read_until_closed(valid, "the answer behind a valid PROXY header", true)
	check(head.begins_with("HTTP/1.1 101"), "the answer behind a valid PROXY header: %s" % head.c_escape())
	await until(func(): return seen.has(id_for("/valid")), [server, client], 5.0, "the client behind a valid PROXY header")
	check_seen("/valid", "198.51.100.9", 40000)
	# The bystander never noticed.
	client.get_peer(1).send_text("still here")
	await until(func(): return client_messages.size() == 3, [server, client], 5.0, "the bystander's echo")
	check_eq(client_messages.slice(2), ["still here".to_utf8_buffer()], "the bystander's echo")
	check_eq(count_events(server_events, "client_disconnected"), 0, "clients our server lost")
