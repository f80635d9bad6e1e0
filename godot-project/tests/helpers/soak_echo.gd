## Helper process: the echo server of `cargo xtask soak`:
##   -s res://tests/helpers/soak_echo.gd -- <port> <tls port> <key.pem> <cert.pem> <stop file>
## Two WebSocketServers in one process, as a game would hold them, at 60 frames a second: ws://
## on <port> and wss:// (the key and certificate made for the run) on <tls port>, both with
## permessage-deflate as shipped (on, threshold 128 bytes). Every message goes back with its
## kind (text or binary); when a client's outbound queue is full, the rest wait in order and
## are sent as it drains: nothing is dropped. Prints READY once both listen, then every 5 s
## `SOAK plain_peers=.. tls_peers=.. plain_connected=.. tls_connected=.. plain_echoed=..
## tls_echoed=.. plain_deflate=.. tls_deflate=.. refused=..` (totals since the start; `*_deflate`
## counts connections that agreed to permessage-deflate). Quits when the stop file appears.
extends SceneTree

var plain := WebSocketServer.new()
var tls := WebSocketServer.new()
## [server, peer id] -> Array of [data, is_text] waiting for room in the outbound queue.
var pending := {}
var stop_file := ""
var counts := {"plain_peers": 0, "tls_peers": 0, "plain_connected": 0, "tls_connected": 0, "plain_echoed": 0, "tls_echoed": 0, "plain_deflate": 0, "tls_deflate": 0, "refused": 0}
var next_report := 0


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	var port := int(args[0])
	var tls_port := int(args[1])
	var key := CryptoKey.new()
	var cert := X509Certificate.new()
	if key.load(args[2]) != OK or cert.load(args[3]) != OK:
		printerr("cannot load the key or the certificate")
		quit(1)
		return
	stop_file = args[4]
	Engine.max_fps = 60
	tls.private_key = key
	tls.ssl_certificate = cert
	for entry in [[plain, "plain", port], [tls, "tls", tls_port]]:
		var server: WebSocketServer = entry[0]
		var name: String = entry[1]
		server.bind_ip = "127.0.0.1"
		server.max_message_size = 1 << 20
		server.data_received.connect(func(id): _receive(server, name, id))
		server.client_connected.connect(func(id, _protocol, _resource):
			counts[name + "_peers"] += 1
			counts[name + "_connected"] += 1
			if server.get_peer(id).has_permessage_deflate():
				counts[name + "_deflate"] += 1)
		server.client_disconnected.connect(func(id, _clean):
			counts[name + "_peers"] -= 1
			pending.erase([server, id]))
		if server.listen(entry[2]) != OK:
			printerr("cannot listen on ", entry[2])
			quit(1)
			return
	next_report = Time.get_ticks_msec() + 5000
	print("READY")


func _receive(server: WebSocketServer, name: String, id: int) -> void:
	var peer: WebSocketConnection = server.get_peer(id)
	if peer == null:
		return
	var queue: Array = pending.get_or_add([server, id], [])
	while peer.get_available_packet_count() > 0:
		var data := peer.get_packet()
		queue.append([data, peer.was_string_packet()])
	_flush(server, name, id)


func _flush(server: WebSocketServer, name: String, id: int) -> void:
	var queue: Array = pending.get([server, id], [])
	var peer: WebSocketConnection = server.get_peer(id) if server.has_peer(id) else null
	while peer and not queue.is_empty() and peer.get_ready_state() == WebSocketConnection.STATE_OPEN:
		var message: Array = queue[0]
		if peer.get_current_outbound_buffered_amount() + message[0].size() > server.outbound_buffer_size and peer.get_current_outbound_buffered_amount() > 0:
			counts["refused"] += 1
			return
		if peer.send(message[0], WebSocketConnection.WRITE_MODE_TEXT if message[1] else WebSocketConnection.WRITE_MODE_BINARY) != OK:
			counts["refused"] += 1
			return
		queue.pop_front()
		counts[name + "_echoed"] += 1


func _process(_delta: float) -> bool:
	if Engine.get_process_frames() % 30 == 0 and FileAccess.file_exists(stop_file):
		plain.stop()
		tls.stop()
		quit(0)
		return true
	plain.poll()
	tls.poll()
	for key in pending.keys():
		if not pending[key].is_empty():
			_flush(key[0], "plain" if key[0] == plain else "tls", key[1])
	if Time.get_ticks_msec() >= next_report:
		next_report += 5000
		var line := "SOAK"
		for name in counts:
			line += " %s=%d" % [name, counts[name]]
		print(line)
	return false
