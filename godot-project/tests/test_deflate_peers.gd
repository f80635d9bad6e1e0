## permessage-deflate (RFC 7692) with real third-party peers, checked from both sides: headless
## Chromium and Python's `websockets` as clients of our server; Python `websockets` and Node `ws`
## servers that require compression (they refuse our client with compression off) for our client,
## with their own settings, small windows and context takeover. One session each
## (peers/deflate_peer.py describes it): the peer sends text and binary messages (small, about
## 2 KB, 1 MiB) that we echo, we send ours that it echoes, then it reports what it saw and closes.
## We check the peer's messages against its report (SHA-256, kind, order) and the echoes of ours
## byte for byte; the peer checks its echoes. Both sides must report the same agreement, and the
## wire must show compression: Python records RSV1 per message, and a relay counts the bytes
## between Chromium or Node and us.
## `cargo xtask test` provides the peers through WSRS_PYTHON, WSRS_CHROMIUM and WSRS_NODE.
extends "res://tests/test_case.gd"

## Messages each side sends in a session.
const MESSAGE_COUNT := 7
## Which of a session's messages we send compressed (ours and our echoes of the peer's, which
## have the same kinds and sizes): none below deflate_threshold (128 bytes), and not the random
## one, which deflate does not make smaller (it goes as it is, RSV1 clear).
const WE_COMPRESS := [false, false, true, true, true, true, false]
## What our default settings agree on with a client offering only
## "permessage-deflate; client_max_window_bits" (Chromium, Python).
const DEFAULT_AGREEMENT := {
	"server_no_context_takeover": true,
	"client_no_context_takeover": true,
	"server_max_window_bits": 15,
	"client_max_window_bits": 15,
	"header": "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
}
## The Sec-WebSocket-Extensions a client sends by default in Chromium and Python `websockets`.
const USUAL_OFFER := "permessage-deflate; client_max_window_bits"

## Every message our side of the session received, in order, as [bytes, is_text].
var received: Array = []
## Our messages of the session, as [bytes, is_text].
var ours: Array = []
## get_permessage_deflate() of our side of the session's connection, taken when it opened.
var agreed_here := {}
## has_permessage_deflate() of our side of the session's connection, taken when it opened.
var compressed_here := false


## A TCP relay between one client and 127.0.0.1:`target_port`, to see what goes over the wire: it
## keeps both HTTP heads and counts the bytes after them each way.
class Relay:
	## The port the client connects to.
	var port := 0
	## The client's HTTP request and the server's HTTP response (the upgrade).
	var heads := ["", ""]
	## Bytes after the heads: [client to server, server to client].
	var frame_bytes := [0, 0]
	var _listener := TCPServer.new()
	var _target_port := 0
	## [the client's connection to us, ours to the target].
	var _ends: Array[StreamPeerTCP] = []
	## Bytes read and not yet written on: [to the target, to the client].
	var _pending: Array[PackedByteArray] = [PackedByteArray(), PackedByteArray()]
	## What each end sent until its head ended, and whether it has.
	var _head_bytes: Array[PackedByteArray] = [PackedByteArray(), PackedByteArray()]
	var _head_done := [false, false]

	func _init(target_port: int) -> void:
		_target_port = target_port
		_listener.listen(0, "127.0.0.1")
		port = _listener.get_local_port()

	## Moves what can be moved; called every frame (until() polls it).
	func poll() -> void:
		if _ends.is_empty():
			if _listener.is_connection_available():
				var upstream := StreamPeerTCP.new()
				upstream.connect_to_host("127.0.0.1", _target_port)
				_ends = [_listener.take_connection(), upstream]
			return
		for end in _ends:
			end.poll()
		if _ends[1].get_status() == StreamPeerTCP.STATUS_CONNECTING:
			return
		for way in 2:
			_move(way)

	## Reads what end `way` sent and writes what is pending to the other end; once `way`'s
	## sender has closed and all is written, closes the other end too.
	func _move(way: int) -> void:
		var from := _ends[way]
		var to := _ends[1 - way]
		var available := from.get_available_bytes() if from.get_status() == StreamPeerTCP.STATUS_CONNECTED else 0
		if available > 0:
			var chunk: PackedByteArray = from.get_data(available)[1]
			_count(way, chunk)
			_pending[way].append_array(chunk)
		if not _pending[way].is_empty() and to.get_status() == StreamPeerTCP.STATUS_CONNECTED:
			var written: int = to.put_partial_data(_pending[way])[1]
			_pending[way] = _pending[way].slice(written)
		if from.get_status() != StreamPeerTCP.STATUS_CONNECTED and _pending[way].is_empty():
			to.disconnect_from_host()

	## Adds `chunk` (sent by end `way`) to that way's head until the head ends, the rest to its
	## count of frame bytes.
	func _count(way: int, chunk: PackedByteArray) -> void:
		if _head_done[way]:
			frame_bytes[way] += chunk.size()
			return
		var head := _head_bytes[way]
		var start := maxi(head.size() - 3, 0)
		head.append_array(chunk)
		_head_bytes[way] = head
		for i in range(start, head.size() - 3):
			if head[i] == 13 and head[i + 1] == 10 and head[i + 2] == 13 and head[i + 3] == 10:
				heads[way] = head.slice(0, i + 4).get_string_from_utf8()
				frame_bytes[way] += head.size() - (i + 4)
				_head_done[way] = true
				return


## JSON-like text of about `size` bytes, with a few characters beyond ASCII.
func _json(size: int) -> String:
	var parts := PackedStringArray()
	var length := 0
	var i := 0
	while length < size:
		var part := '{"id":%d,"name":"godotß%d","x":%d.5,"alive":true}' % [i, i % 37, i * 3]
		parts.append(part)
		length += part.to_utf8_buffer().size() + 1
		i += 1
	return "[" + ",".join(parts) + "]"


## Our messages of a session: small, JSON-like and 1 MiB text and binary (the last one random),
## the same kinds and sizes as the peers' (about).
func _our_messages() -> Array:
	var records := PackedByteArray()
	records.resize(1 << 20)
	for i in 1 << 17:
		records.encode_u32(i * 8, i * 3)
		records.encode_float(i * 8 + 4, i * 0.25)
	return [
		["godot ß✓ small".to_utf8_buffer(), true],
		[PackedByteArray(range(0, 300, 3)), false],
		[_json(2000).to_utf8_buffer(), true],
		[_json(2200).to_utf8_buffer(), false],
		[_json(1 << 20).to_utf8_buffer(), true],
		[records, false],
		[Crypto.new().generate_random_bytes(1 << 20), false],
	]


## "kind:size:sha256" of a message, as the peers write it.
func _digest(data: PackedByteArray, is_text: bool) -> String:
	var hashing := HashingContext.new()
	hashing.start(HashingContext.HASH_SHA256)
	hashing.update(data)
	return "%s:%d:%s" % ["text" if is_text else "binary", data.size(), hashing.finish().hex_encode()]


## An agreement (get_permessage_deflate()) as the peers write theirs.
func _agreement(agreed: Dictionary) -> String:
	if agreed.is_empty():
		return "none"
	return "server_no_context_takeover=%s, client_no_context_takeover=%s, server_max_window_bits=%d, client_max_window_bits=%d" % [
		agreed["server_no_context_takeover"], agreed["client_no_context_takeover"],
		agreed["server_max_window_bits"], agreed["client_max_window_bits"]]


## Limits that let a session's 1 MiB messages queue up.
func _big_queues(peer: Object) -> void:
	peer.inbound_buffer_size = 8 << 20
	peer.outbound_buffer_size = 8 << 20


## Takes what our side of a session's connection says was agreed.
func _note_agreement(peer: WebSocketConnection) -> void:
	agreed_here = peer.get_permessage_deflate()
	compressed_here = peer.has_permessage_deflate()


## Our side of a session on `peer`: takes what arrived, echoes the peer's first MESSAGE_COUNT
## messages with their kinds and, after the last of them, sends ours.
func _session_step(peer: WebSocketConnection) -> void:
	while peer.get_available_packet_count() > 0:
		var data := peer.get_packet()
		var is_text := peer.was_string_packet()
		received.append([data, is_text])
		var index := received.size() - 1
		if index < MESSAGE_COUNT:
			check_eq(peer.send(data, _write_mode(is_text)), OK, "echo of message %d" % index)
		if index == MESSAGE_COUNT - 1:
			for message in ours:
				check_eq(peer.send(message[0], _write_mode(message[1])), OK, "send our %d bytes" % message[0].size())


## The write mode for a message of this kind.
func _write_mode(is_text: bool) -> int:
	return WebSocketConnection.WRITE_MODE_TEXT if is_text else WebSocketConnection.WRITE_MODE_BINARY


## Checks a finished session from our side: the peer's messages against its report, the echoes
## of ours, and what the peer checked. Returns the peer's report ({} if there is none).
func _check_session(who: String) -> Dictionary:
	check_eq(received.size(), 2 * MESSAGE_COUNT + 1, "messages from %s (its own, the echoes of ours, its report)" % who)
	if received.size() != 2 * MESSAGE_COUNT + 1:
		return {}
	var last: Array = received[-1]
	var report: Variant = JSON.parse_string(last[0].get_string_from_utf8())
	check(last[1] and report is Dictionary, "%s's report is text JSON: %s" % [who, last[0].get_string_from_utf8().left(200)])
	if not report is Dictionary:
		return {}
	check_eq(report["errors"], [], "what %s checked (its messages came back whole, with their kinds, in order)" % who)
	var theirs := received.slice(0, MESSAGE_COUNT).map(func(m): return _digest(m[0], m[1]))
	check_eq(theirs, report["sent"], "%s's messages arrived whole, with their kinds, in order" % who)
	check_eq(report["received"], ours.map(func(m): return _digest(m[0], m[1])), "%s received ours whole, with their kinds, in order" % who)
	for i in MESSAGE_COUNT:
		var echo: Array = received[MESSAGE_COUNT + i]
		check(echo[1] == ours[i][1] and echo[0] == ours[i][0],
			"%s echoed our message %d (%d bytes, %s) the same" % [who, i, ours[i][0].size(), "text" if ours[i][1] else "binary"])
	return report


## Bytes of the session's messages one way that deflate can shrink, as [all, compressible]: the
## peer's, its echoes of ours and its report (`from_peer`), or our echoes of its and ours (which
## are its own and the echoes it sent, byte for byte).
func _payload_bytes(from_peer: bool) -> Array:
	var total := 0
	var compressible := 0
	for i in (received.size() if from_peer else 2 * MESSAGE_COUNT):
		var size: int = received[i][0].size()
		total += size
		if i < 2 * MESSAGE_COUNT and WE_COMPRESS[i % MESSAGE_COUNT]:
			compressible += size
	return [total, compressible]


## Checks that `wire` bytes of frames carried messages of `payload` bytes ([all, compressible])
## compressed: without compression the frames would be larger than the payload; with it the
## compressible part (JSON-like, records) shrinks to well under half.
func _check_compressed_on_wire(wire: int, payload: Array, what: String) -> void:
	check(wire < payload[0] - payload[1] / 2,
		"%s went compressed: %d bytes on the wire for %d bytes of messages, %d of them compressible" % [what, wire, payload[0], payload[1]])
	print("MEASURE: %s: %d bytes of frames for %d bytes of messages (%.0f%%)" % [what, wire, payload[0], 100.0 * wire / payload[0]])


## Our server (1 MiB messages allowed, then `configure`) on a free port, running our side of a
## session with the first client; returns the port.
func _start_session_server(configure := Callable()) -> int:
	ours = _our_messages()
	var port := start_server(func(s):
		_big_queues(s)
		if configure.is_valid():
			configure.call(s))
	server.client_connected.connect(func(id, _p, _r): _note_agreement(server.get_peer(id)))
	server.data_received.connect(func(id): _session_step(server.get_peer(id)))
	return port


## Python's `websockets` client (offering what it offers by default) against our server with
## `configure`; returns the Python client's report after the common checks, which include
## `expected` as the agreement on both sides.
func _python_client_session(configure: Callable, expected: Dictionary) -> Dictionary:
	var python := tool_path("WSRS_PYTHON")
	if python.is_empty():
		return {}
	var port := _start_session_server(configure)
	var script := ProjectSettings.globalize_path("res://tests/peers/deflate_peer.py")
	if spawn(python, PackedStringArray([script, "client", "ws://127.0.0.1:%d/deflate" % port])) < 0:
		return {}
	await until(func(): return has_event(server_events, "client_disconnected"), [server], 40.0, "the Python client's session")
	var report := _check_session("the Python client")
	if report.is_empty():
		return {}
	check_eq(agreed_here, expected, "our server's view of the agreement")
	check(compressed_here, "has_permessage_deflate() on our side")
	check_eq(report["offer"], USUAL_OFFER, "Python's offer")
	check_eq(report["answer"], expected["header"], "the answer Python got")
	check_eq(report["agreed"], _agreement(expected), "Python's view of the agreement")
	check_eq(report["sent_compressed"], WE_COMPRESS.map(func(_c): return true) + WE_COMPRESS.map(func(_c): return true),
		"Python compressed every message it sent (RSV1 set)")
	check_eq(report["received_compressed"], WE_COMPRESS + WE_COMPRESS, "RSV1 on our echoes then our messages, as Python saw it")
	var id: int = first_event(server_events, "client_connected")[1]
	check(server_events.has(["client_close_request", id, 4001, "python done"]), "Python's close: %s" % [server_events.filter(func(e): return e[0] != "data_received")])
	check(server_events.has(["client_disconnected", id, true]), "clean close")
	print("MEASURE: Python client offered '%s', our server answered '%s'" % [report["offer"], report["answer"]])
	return report


func test_python_client_with_our_default_settings() -> void:
	await _python_client_session(Callable(), DEFAULT_AGREEMENT)


## Our server keeping its contexts and asking for small windows: 9 bits for its own, 10 for the
## client's. (Not 8 for the client's: zlib refuses to deflate raw with an 8-bit window, and
## `websockets` 15 passes 8 on to it, so its client fails the handshake with "Invalid
## initialization option"; python-websockets/websockets pull request 1757.)
func test_python_client_with_small_windows_and_takeover() -> void:
	var settings := func(s: WebSocketServer):
		s.deflate_server_no_context_takeover = false
		s.deflate_client_no_context_takeover = false
		s.deflate_server_max_window_bits = 9
		s.deflate_client_max_window_bits = 10
	await _python_client_session(settings, {
		"server_no_context_takeover": false,
		"client_no_context_takeover": false,
		"server_max_window_bits": 9,
		"client_max_window_bits": 10,
		"header": "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10",
	})


## Headless Chromium (offering what it always offers) against our server with `configure`; both
## must agree on `expected`.
func _chromium_session(configure: Callable, expected: Dictionary) -> void:
	var chromium := tool_path("WSRS_CHROMIUM")
	if chromium.is_empty():
		return
	var relay := Relay.new(_start_session_server(configure))
	var page := "file://" + ProjectSettings.globalize_path("res://tests/peers/deflate_browser_peer.html").uri_encode().replace("%2F", "/") + "?port=%d" % relay.port
	var profile := OS.get_user_data_dir().path_join("chromium-profile-%d" % relay.port)
	var pid := spawn(chromium, PackedStringArray(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + profile, page]))
	if pid < 0:
		return
	await until(func(): return has_event(server_events, "client_disconnected"), [server, relay], 50.0, "the browser's session")
	var report := _check_session("Chromium")
	if report.is_empty():
		return
	check_eq(agreed_here, expected, "our server's view of the agreement")
	check(compressed_here, "has_permessage_deflate() on our side")
	check_eq(report["extensions"], expected["header"], "ws.extensions in Chromium")
	var offer := _header(relay.heads[0], "sec-websocket-extensions")
	check_eq(offer, USUAL_OFFER, "Chromium's offer")
	check_eq(_header(relay.heads[1], "sec-websocket-extensions"), expected["header"], "our answer on the wire")
	_check_compressed_on_wire(relay.frame_bytes[0], _payload_bytes(true), "Chromium to us")
	_check_compressed_on_wire(relay.frame_bytes[1], _payload_bytes(false), "us to Chromium")
	var id: int = first_event(server_events, "client_connected")[1]
	check(server_events.has(["client_close_request", id, 4002, "browser done"]), "the browser's close: %s" % [server_events.filter(func(e): return e[0] != "data_received")])
	check(server_events.has(["client_disconnected", id, true]), "clean close")
	print("MEASURE: Chromium offered '%s', our server answered '%s'" % [offer, report["extensions"]])


func test_chromium_page_against_our_server() -> void:
	await _chromium_session(Callable(), DEFAULT_AGREEMENT)


## The smallest windows, 8 bits both ways (we deflate with 9 bits reaching back at most 250
## bytes; Chromium inflates with 8), and both sides keeping their contexts.
func test_chromium_with_eight_bit_windows_and_takeover() -> void:
	var settings := func(s: WebSocketServer):
		s.deflate_server_no_context_takeover = false
		s.deflate_client_no_context_takeover = false
		s.deflate_server_max_window_bits = 8
		s.deflate_client_max_window_bits = 8
	await _chromium_session(settings, {
		"server_no_context_takeover": false,
		"client_no_context_takeover": false,
		"server_max_window_bits": 8,
		"client_max_window_bits": 8,
		"header": "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
	})


## The value of header `name` (lower case) in an HTTP head, or "" when it has none.
func _header(head: String, name: String) -> String:
	for line in head.split("\r\n"):
		var colon := line.find(":")
		if colon > 0 and line.left(colon).strip_edges().to_lower() == name:
			return line.substr(colon + 1).strip_edges()
	return ""


## Starts a third-party server: `program` with `args`, which writes `ready_path` once it
## listens. Returns whether it does within 20 s.
func _start_server_peer(program: String, args: PackedStringArray, ready_path: String, who: String) -> bool:
	if program.is_empty():
		return false
	DirAccess.remove_absolute(ready_path)
	if spawn(program, args) < 0:
		return false
	return await until(func(): return FileAccess.file_exists(ready_path), [], 20.0, "%s to listen" % who)


## Our client against a server on `port` that requires compression: one with compression off is
## refused first (HTTP 400); then one with `configure` (and 1 MiB messages allowed) runs a session,
## through `relay` when there is one, and must agree on `expected`; the server closes with 4001
## `close_reason`. Its answer must be `answer`: `expected["header"]` is the agreement as we write
## it, which a server may write with its parameters in another order.
## Returns the server's report after those checks ({} if there is none).
func _client_session(who: String, port: int, relay: Relay, configure: Callable, expected: Dictionary, answer: String, close_reason: String) -> Dictionary:
	var url := "ws://127.0.0.1:%d/deflate" % port
	expect_error("connecting to %s failed" % url)
	start_client(url, PackedStringArray(), PackedStringArray(), func(c): c.permessage_deflate = false)
	await until(func(): return not client_events.is_empty(), [client], 10.0, "the uncompressed client's outcome")
	check_eq(client_events, [["connection_error"]], "%s refuses a client without compression" % who)
	client_events.clear()
	ours = _our_messages()
	var pollables := []
	if relay != null:
		url = "ws://127.0.0.1:%d/deflate" % relay.port
		pollables.append(relay)
	start_client(url, PackedStringArray(), PackedStringArray(), func(c):
		_big_queues(c)
		configure.call(c))
	pollables.append(client)
	client.connection_established.connect(func(_p): _note_agreement(client.get_peer(1)))
	client.data_received.connect(func(): _session_step(client.get_peer(1)))
	await until(func(): return has_event(client_events, "connection_closed"), pollables, 40.0, "the session with %s" % who)
	var report := _check_session(who)
	if report.is_empty():
		return {}
	check_eq(report["refused"], 1, "%s counted one refused client" % who)
	check_eq(agreed_here, expected, "our client's view of the agreement")
	check(compressed_here, "has_permessage_deflate() on our side")
	check_eq(report["answer"], answer, "the answer of %s" % who)
	check(client_events.has(["server_close_request", 4001, close_reason]), "the close of %s: %s" % [who, client_events.filter(func(e): return e[0] != "data_received")])
	check(client_events.has(["connection_closed", true]), "clean close")
	return report


## Our client (then `configure`) against a Python `websockets` server that requires compression
## and answers as `variant` (see peers/deflate_peer.py); Python must get `offer` and agree on
## `expected`.
func _python_server_session(variant: String, configure: Callable, offer: String, expected: Dictionary) -> void:
	var port := free_port()
	var ready_path := OS.get_user_data_dir().path_join("deflate_server_%d.ready" % port)
	var script := ProjectSettings.globalize_path("res://tests/peers/deflate_peer.py")
	if not await _start_server_peer(tool_path("WSRS_PYTHON"), PackedStringArray([script, "server", str(port), ready_path, variant]), ready_path, "the Python server"):
		return
	var report := await _client_session("the Python server", port, null, configure, expected, expected["header"], "python done")
	if report.is_empty():
		return
	check_eq(report["offer"], offer, "our offer as Python got it")
	check_eq(report["agreed"], _agreement(expected), "Python's view of the agreement")
	check_eq(report["received_compressed"], WE_COMPRESS + WE_COMPRESS, "RSV1 on our echoes then our messages, as Python saw it")
	check(report["sent_compressed"].all(func(c): return c) and report["sent_compressed"].size() == 2 * MESSAGE_COUNT,
		"Python compressed every message it sent: %s" % [report["sent_compressed"]])
	print("MEASURE: our client offered '%s', the Python server (%s) answered '%s'" % [report["offer"], variant, report["answer"]])


## Our client (then `configure`) against a Node `ws` server that requires compression (see
## peers/deflate_peer_node.js), through a relay that counts the bytes; Node must get `offer`,
## answer `answer` and agree on `expected`.
func _node_server_session(configure: Callable, offer: String, answer: String, expected: Dictionary) -> void:
	var port := free_port()
	var ready_path := OS.get_user_data_dir().path_join("deflate_node_%d.ready" % port)
	var script := ProjectSettings.globalize_path("res://tests/peers/deflate_peer_node.js")
	if not await _start_server_peer(tool_path("WSRS_NODE"), PackedStringArray([script, "server", str(port), ready_path]), ready_path, "the Node server"):
		return
	var relay := Relay.new(port)
	var report := await _client_session("the Node server", port, relay, configure, expected, answer, "node done")
	if report.is_empty():
		return
	check_eq(report["offer"], offer, "our offer as Node got it")
	check_eq(_header(relay.heads[0], "sec-websocket-extensions"), offer, "our offer on the wire")
	check_eq(_header(relay.heads[1], "sec-websocket-extensions"), answer, "Node's answer on the wire")
	_check_compressed_on_wire(relay.frame_bytes[0], _payload_bytes(false), "us to Node")
	_check_compressed_on_wire(relay.frame_bytes[1], _payload_bytes(true), "Node to us")
	print("MEASURE: our client offered '%s', the Node ws server answered '%s'" % [report["offer"], report["answer"]])


func test_our_client_against_a_python_server_requiring_compression() -> void:
	await _python_server_session("default", func(_c): pass,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits", {
		"server_no_context_takeover": true,
		"client_no_context_takeover": true,
		"server_max_window_bits": 12,
		"client_max_window_bits": 12,
		"header": "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12",
	})


## Python answers with a 10-bit window for itself and an 8-bit one for us (which we deflate with
## 9 bits, reaching back at most 250 bytes); both sides keep their contexts.
func test_our_client_against_a_python_server_with_small_windows_and_takeover() -> void:
	var takeover := func(c: WebSocketClient):
		c.deflate_server_no_context_takeover = false
		c.deflate_client_no_context_takeover = false
	await _python_server_session("small-windows", takeover, "permessage-deflate; client_max_window_bits", {
		"server_no_context_takeover": false,
		"client_no_context_takeover": false,
		"server_max_window_bits": 10,
		"client_max_window_bits": 8,
		"header": "permessage-deflate; server_max_window_bits=10; client_max_window_bits=8",
	})


func test_our_client_against_a_node_ws_server_requiring_compression() -> void:
	await _node_server_session(func(_c): pass,
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=13; server_max_window_bits=11", {
		"server_no_context_takeover": true,
		"client_no_context_takeover": true,
		"server_max_window_bits": 11,
		"client_max_window_bits": 13,
		"header": "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=13",
	})


## `ws` keeps its contexts when the client does not ask otherwise; so do we here.
func test_our_client_against_a_node_ws_server_with_takeover() -> void:
	var takeover := func(c: WebSocketClient):
		c.deflate_server_no_context_takeover = false
		c.deflate_client_no_context_takeover = false
	await _node_server_session(takeover, "permessage-deflate; client_max_window_bits",
		"permessage-deflate; client_max_window_bits=13; server_max_window_bits=11", {
		"server_no_context_takeover": false,
		"client_no_context_takeover": false,
		"server_max_window_bits": 11,
		"client_max_window_bits": 13,
		"header": "permessage-deflate; server_max_window_bits=11; client_max_window_bits=13",
	})
