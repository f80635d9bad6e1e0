## wss:// with certificates made at test time by Godot's Crypto: ours with ours, Godot's built-in
## peers against ours both ways (raw and multiplayer mode), Python `websockets` with an SSL
## context, and the failures: untrusted certificate, wrong host name, ws:// against wss:// and the
## reverse, a garbage TLS hello. The server keeps serving everyone else.
extends "res://tests/test_case.gd"

var key: CryptoKey
var cert: X509Certificate


## A fresh RSA key and a self-signed certificate for `common_name`.
func make_identity(common_name := "localhost") -> void:
	var crypto := Crypto.new()
	key = crypto.generate_rsa(2048)
	# Python's ssl reads it too.
	cert = openssl_readable_certificate(key, "CN=%s,O=websocket-rs tests,C=US" % common_name)


## Our wss server (seed properties) on a free port; returns the port.
func start_tls_server() -> int:
	make_identity()
	return start_server(func(s):
		s.private_key = key
		s.ssl_certificate = cert)


## Waits until `client` is established or failed; true when established.
func client_outcome() -> bool:
	await until(func(): return has_event(client_events, "connection_established") or has_event(client_events, "connection_error"),
		[server, client], 10.0, "the client's outcome")
	return has_event(client_events, "connection_established")


func test_our_client_and_server_over_wss() -> void:
	var port := start_tls_server()
	start_client("wss://localhost:%d/secure" % port, PackedStringArray(), PackedStringArray(), func(c): c.trusted_tls_certificate = cert)
	if not await client_outcome():
		check(false, "wss connection failed: %s" % [client_events])
		return
	await until(func(): return has_event(server_events, "client_connected"), [server, client], 5.0, "server side")
	var id: int = first_event(server_events, "client_connected")[1]
	check_eq(first_event(server_events, "client_connected")[3], "/secure", "resource_name over TLS")
	client.get_peer(1).send_text("over tls")
	await until(func(): return server.get_peer(id).get_available_packet_count() == 1, [server, client], 5.0, "message over TLS")
	check_eq(server.get_peer(id).get_packet().get_string_from_utf8(), "over tls", "message content")
	# A large message both ways (TLS records are 16 KiB; this spans many).
	var big := PackedByteArray()
	big.resize(1 << 20)
	big[12345] = 7
	server.get_peer(id).put_packet(big)
	await until(func(): return client.get_peer(1).get_available_packet_count() == 1, [server, client], 10.0, "1 MiB over TLS")
	check_eq(client.get_peer(1).get_packet(), big, "1 MiB intact")
	client.disconnect_from_host(1000, "done")
	await until(func(): return has_event(server_events, "client_disconnected"), [server, client], 5.0, "clean close over TLS")
	check(server_events.has(["client_disconnected", id, true]), "clean close over TLS")


func test_builtin_websocketpeer_against_our_server() -> void:
	var port := start_tls_server()
	var peer := WebSocketPeer.new()
	check_eq(peer.connect_to_url("wss://localhost:%d/" % port, TLSOptions.client(cert)), OK, "built-in connect_to_url")
	await until(func():
		peer.poll()
		return peer.get_ready_state() == WebSocketPeer.STATE_OPEN, [server], 10.0, "built-in peer open")
	await until(func(): return has_event(server_events, "client_connected"), [server], 5.0, "server side")
	var id: int = first_event(server_events, "client_connected")[1] if has_event(server_events, "client_connected") else -1
	peer.send_text("from godot's own peer")
	await until(func(): return server.has_peer(id) and server.get_peer(id).get_available_packet_count() == 1, [server], 5.0, "message from the built-in peer")
	if server.has_peer(id):
		check_eq(server.get_peer(id).get_packet().get_string_from_utf8(), "from godot's own peer", "content")
		server.get_peer(id).send_text("hello built-in")
	await until(func():
		peer.poll()
		return peer.get_available_packet_count() == 1, [server], 5.0, "message to the built-in peer")
	check_eq(peer.get_packet().get_string_from_utf8(), "hello built-in", "content back")
	peer.close()


func test_multiplayer_mode_over_wss_both_ways() -> void:
	make_identity()
	# Our server, Godot's built-in client.
	var port := free_port()
	var ours := WebSocketServer.new()
	check_eq(ours.create_server(port, "*", TLSOptions.server(key, cert)), OK, "our create_server with TLSOptions")
	var builtin_client := WebSocketMultiplayerPeer.new()
	check_eq(builtin_client.create_client("wss://localhost:%d" % port, TLSOptions.client(cert)), OK, "built-in create_client")
	await until(func(): return builtin_client.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED, [ours, builtin_client], 10.0, "built-in client connected")
	check(builtin_client.get_unique_id() >= 2, "the built-in client got its id from our server")
	builtin_client.set_target_peer(1)
	builtin_client.put_packet(PackedByteArray([1, 2, 3]))
	await until(func(): return ours.get_available_packet_count() == 1, [ours, builtin_client], 5.0, "packet at our server")
	check_eq(ours.get_packet_peer(), builtin_client.get_unique_id(), "sender id")
	check_eq(ours.get_packet(), PackedByteArray([1, 2, 3]), "packet content")
	ours.close()
	# Godot's built-in server, our client.
	port = free_port()
	var builtin_server := WebSocketMultiplayerPeer.new()
	check_eq(builtin_server.create_server(port, "*", TLSOptions.server(key, cert)), OK, "built-in create_server")
	var our_client := WebSocketClient.new()
	check_eq(our_client.create_client("wss://localhost:%d" % port, TLSOptions.client(cert)), OK, "our create_client with TLSOptions")
	await until(func(): return our_client.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED, [builtin_server, our_client], 10.0, "our client connected")
	check(our_client.get_unique_id() >= 2, "our client got its id from the built-in server")
	our_client.put_packet(PackedByteArray([4, 5]))
	await until(func(): return builtin_server.get_available_packet_count() == 1, [builtin_server, our_client], 5.0, "packet at the built-in server")
	check_eq(builtin_server.get_packet_peer(), our_client.get_unique_id(), "sender id at the built-in server")
	check_eq(builtin_server.get_packet(), PackedByteArray([4, 5]), "packet content at the built-in server")
	our_client.close()
	builtin_server.close()


func test_our_client_against_a_builtin_raw_wss_server() -> void:
	make_identity()
	var tcp := TCPServer.new()
	check_eq(tcp.listen(0, "127.0.0.1"), OK, "TCPServer")
	var port := tcp.get_local_port()
	start_client("wss://localhost:%d/" % port, PackedStringArray(), PackedStringArray(), func(c): c.trusted_tls_certificate = cert)
	var box := {}
	var step := func():
		if not box.has("tls") and tcp.is_connection_available():
			var tls := StreamPeerTLS.new()
			tls.accept_stream(tcp.take_connection(), TLSOptions.server(key, cert))
			box["tls"] = tls
		if box.has("tls") and not box.has("ws"):
			box["tls"].poll()
			if box["tls"].get_status() == StreamPeerTLS.STATUS_CONNECTED:
				var ws := WebSocketPeer.new()
				ws.accept_stream(box["tls"])
				box["ws"] = ws
		if box.has("ws"):
			box["ws"].poll()
		return has_event(client_events, "connection_established") or has_event(client_events, "connection_error")
	await until(step, [client], 10.0, "our client against TCPServer + StreamPeerTLS + WebSocketPeer")
	check(has_event(client_events, "connection_established"), "connected: %s" % [client_events])
	client.get_peer(1).send_text("to the built-in raw server")
	await until(func():
		step.call()
		return box.has("ws") and box["ws"].get_available_packet_count() == 1, [client], 5.0, "message at the built-in server")
	if box.has("ws") and box["ws"].get_available_packet_count() == 1:
		check_eq(box["ws"].get_packet().get_string_from_utf8(), "to the built-in raw server", "content")
	tcp.stop()


func test_python_websockets_over_wss() -> void:
	var python := tool_path("WSRS_PYTHON")
	if python.is_empty():
		return
	var port := start_tls_server()
	var cert_path := OS.get_user_data_dir().path_join("tls_cert_%d.crt" % port)
	var key_path := OS.get_user_data_dir().path_join("tls_key_%d.key" % port)
	cert.save(cert_path)
	key.save(key_path)
	server.client_connected.connect(func(id, _p, _r):
		server.get_peer(id).send_text("welcome python")
		server.get_peer(id).put_packet(PackedByteArray([1, 2, 3])))
	echo_with_kinds()
	var script := ProjectSettings.globalize_path("res://tests/peers/ws_peer.py")
	var result_path := OS.get_user_data_dir().path_join("python_tls_client_%d.json" % port)
	DirAccess.remove_absolute(result_path)
	var pid := spawn(python, PackedStringArray([script, "client", "wss://localhost:%d/" % port, result_path, "--cafile", cert_path]))
	await until(func(): return has_event(server_events, "client_disconnected") and not is_running(pid), [server], 20.0, "the Python wss client")
	var result: Variant = read_json(result_path)
	check(result is Dictionary and result["errors"] == [], "Python client over wss: %s" % [result])
	# Python as the wss server, our client.
	var py_port := free_port()
	var ready_path := OS.get_user_data_dir().path_join("python_tls_server_%d.ready" % py_port)
	var server_result := OS.get_user_data_dir().path_join("python_tls_server_%d.json" % py_port)
	DirAccess.remove_absolute(ready_path)
	DirAccess.remove_absolute(server_result)
	var spid := spawn(python, PackedStringArray([script, "server", str(py_port), server_result, ready_path, "--certfile", cert_path, "--keyfile", key_path]))
	if not await until(func(): return FileAccess.file_exists(ready_path), [], 20.0, "the Python wss server"):
		return
	client_events.clear()
	start_client("wss://localhost:%d/tls" % py_port, PackedStringArray(), PackedStringArray(), func(c): c.trusted_tls_certificate = cert)
	await until(func(): return client.get_peer(1).get_available_packet_count() == 2, [client], 10.0, "Python's greeting over wss")
	check_eq(client.get_peer(1).get_packet().get_string_from_utf8(), "hello from python", "greeting text")
	check_eq(client.get_peer(1).get_packet(), PackedByteArray([255, 0]), "greeting binary")
	client.get_peer(1).send_text("godot text")
	client.get_peer(1).put_packet(PackedByteArray([7, 8, 9]))
	await until(func(): return client.get_peer(1).get_available_packet_count() == 2, [client], 10.0, "echoes over wss")
	client.disconnect_from_host(4003, "godot bye")
	await until(func(): return not is_running(spid), [client], 10.0, "Python server exit")
	var sresult: Variant = read_json(server_result)
	check(sresult is Dictionary and sresult["received"] == [["text", "godot text"], ["binary", "070809"]] and sresult["close_code"] == 4003,
		"Python server over wss saw: %s" % [sresult])


func test_failures_are_clear_and_harmless() -> void:
	var port := start_tls_server()
	# A garbage TLS hello: dropped, with a warning.
	var tcp: StreamPeerTCP = await raw_connect(port, [server])
	tcp.put_data("this is not a TLS ClientHello\r\n\r\n".to_utf8_buffer())
	# Untrusted certificate: the public roots do not know it.
	expect_error("the server's certificate was refused: no trusted authority signed it")
	start_client("wss://localhost:%d/" % port)
	check(not await client_outcome(), "untrusted certificate refused")
	# Wrong host name: the certificate is for localhost.
	client_events.clear()
	expect_error("the server's certificate was refused: it is not for this host name")
	start_client("wss://127.0.0.1:%d/" % port, PackedStringArray(), PackedStringArray(), func(c): c.trusted_tls_certificate = cert)
	check(not await client_outcome(), "wrong host name refused")
	# Plain ws:// to the wss:// server.
	client_events.clear()
	expect_error("connecting to ws://localhost:%d/ failed" % port)
	start_client("ws://localhost:%d/" % port)
	check(not await client_outcome(), "ws:// to a wss:// server fails")
	# wss:// to a plain server.
	var plain := WebSocketServer.new()
	plain.bind_ip = "127.0.0.1"
	plain.listen(0)
	client_events.clear()
	expect_error("connecting to wss://localhost:%d/ failed" % plain.get_local_port())
	client = WebSocketClient.new()
	client.connection_error.connect(func(): client_events.append(["connection_error"]))
	client.connect_to_url("wss://localhost:%d/" % plain.get_local_port())
	await until(func(): return has_event(client_events, "connection_error"), [client, plain], 10.0, "wss:// to ws:// fails")
	plain.stop()
	# verify_tls = false accepts anything (for testing only).
	client_events.clear()
	start_client("wss://127.0.0.1:%d/" % port, PackedStringArray(), PackedStringArray(), func(c): c.verify_tls = false)
	check(await client_outcome(), "verify_tls = false connects")
	# The server kept serving: a good client still connects and talks.
	client_events.clear()
	start_client("wss://localhost:%d/" % port, PackedStringArray(), PackedStringArray(), func(c): c.trusted_tls_certificate = cert)
	check(await client_outcome(), "a good client still connects")
	tcp.disconnect_from_host()
	# Half-configured TLS is refused at listen.
	var half := WebSocketServer.new()
	half.private_key = key
	expect_error("private_key is set but ssl_certificate is not")
	check_eq(half.listen(0), ERR_INVALID_PARAMETER, "key without certificate")
	expect_error("these TLSOptions are for a client")
	check_eq(WebSocketServer.new().create_server(0, "*", TLSOptions.client()), ERR_INVALID_PARAMETER, "client options for a server")


func test_one_hundred_simultaneous_tls_handshakes() -> void:
	var port := start_tls_server()
	var clients: Array[WebSocketClient] = []
	for i in 100:
		var c := WebSocketClient.new()
		c.trusted_tls_certificate = cert
		c.connect_to_url("wss://localhost:%d/" % port)
		clients.append(c)
	var longest := [0]
	var polls := [0]
	var step := func():
		var started := Time.get_ticks_usec()
		server.poll()
		longest[0] = max(longest[0], Time.get_ticks_usec() - started)
		polls[0] += 1
		for c in clients:
			c.poll()
		return count_events(server_events, "client_connected") == 100
	await until(step, [], 30.0, "100 TLS clients")
	check_eq(count_events(server_events, "client_connected"), 100, "every TLS handshake finished")
	print("MEASURE: longest WebSocketServer.poll() during 100 simultaneous TLS handshakes: %d us over %d polls" % [longest[0], polls[0]])
