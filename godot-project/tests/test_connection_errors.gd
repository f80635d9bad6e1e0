## A client that cannot connect gets connection_error and an error message naming the cause; bad
## calls return an Error code.
extends "res://tests/test_case.gd"



func test_connecting_to_a_closed_port_emits_connection_error() -> void:
	var probe := WebSocketServer.new()
	probe.listen(0)
	var port: int = probe.get_local_port()
	probe.stop()  # nobody listens on `port` now
	client = WebSocketClient.new()
	var errors := [0]
	var established := [0]
	client.connection_error.connect(func(): errors[0] += 1)
	client.connection_established.connect(func(_p): established[0] += 1)
	expect_error("connecting to ws://127.0.0.1:%d/ failed: could not connect" % port)
	check_eq(client.connect_to_url("ws://127.0.0.1:%d/" % port), OK, "connect_to_url starts")
	await until(func(): return errors[0] == 1, [client], 5.0, "connection_error")
	await pump([client], 0.2)
	check_eq(errors[0], 1, "connection_error emitted once")
	check_eq(established[0], 0, "never established")
	check_eq(client.get_connection_status(), MultiplayerPeer.CONNECTION_DISCONNECTED, "status after failure")


func test_invalid_urls_are_refused_at_once() -> void:
	client = WebSocketClient.new()
	expect_error("invalid URL 'http://example.com/': scheme 'http' is not ws://")
	check_eq(client.connect_to_url("http://example.com/"), ERR_INVALID_PARAMETER, "http scheme")
	expect_error("invalid URL 'nonsense'")
	check_eq(client.connect_to_url("nonsense"), ERR_INVALID_PARAMETER, "no scheme")
	expect_error("header 'NoColonHere' is not of the form 'Name: value'")
	check_eq(client.connect_to_url("ws://127.0.0.1:9/", [], false, ["NoColonHere"]), ERR_INVALID_PARAMETER, "bad header")


func test_listen_errors() -> void:
	server = WebSocketServer.new()
	expect_error("port 70000 is out of range 0-65535")
	check_eq(server.listen(70000), ERR_INVALID_PARAMETER, "port out of range")
	check_eq(server.listen(0), OK, "listen")
	expect_error("the server is already listening")
	check_eq(server.listen(0), ERR_ALREADY_IN_USE, "listen twice")
	var other := WebSocketServer.new()
	expect_error("is already in use")
	check_eq(other.listen(server.get_local_port()), ERR_ALREADY_IN_USE, "port in use")
	expect_error("no connected peer has id 77")
	check(server.get_peer(77) == null, "get_peer(unknown) is null")
	server.stop()
	check(not server.is_listening(), "stopped")
	expect_error("get_peer: not listening or not connected")
	check(server.get_peer(2) == null, "get_peer on a stopped server is null")
	expect_error("get_peer_address: not listening or not connected")
	check_eq(server.get_peer_address(2), "", "get_peer_address on a stopped server")
