## Bench server with Godot's built-in WebSocket classes, written the way Godot 4 users write
## them (`cargo xtask bench`):
##   -s res://bench/builtin_server.gd -- <echo|broadcast|idle> <port> <expected peers>
## echo and idle: a raw server, TCPServer + WebSocketPeer.accept_stream, every peer polled each
##   frame; echo sends every message back to its sender as fast as frames go, idle runs at 60
##   frames a second;
## broadcast: WebSocketMultiplayerPeer at 60 frames a second; once <expected peers> are
##   connected, each frame sends a 100-byte state (tick number first) to every peer.
## Prints the same `BENCH` lines as ours_server.gd.
extends SceneTree

var tcp := TCPServer.new()
var raw_peers: Array[WebSocketPeer] = []
var multiplayer_peer := WebSocketMultiplayerPeer.new()
var mode := ""
var expected := 0
var peers := 0
var frames := 0
var busy_us := 0
var echoed := 0
var tick := 0
var state := PackedByteArray()
var next_report := 0


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	mode = args[0]
	var port := int(args[1])
	expected = int(args[2])
	var err := OK
	if mode == "broadcast":
		Engine.max_fps = 60
		state.resize(100)
		state.fill(0x42)
		multiplayer_peer.peer_connected.connect(func(_id): peers += 1)
		multiplayer_peer.peer_disconnected.connect(func(_id): peers -= 1)
		err = multiplayer_peer.create_server(port, "127.0.0.1")
	else:
		Engine.max_fps = 0 if mode == "echo" else 60
		if mode == "echo":
			# Headless Godot sleeps 6.9 ms a frame by default; echo runs frames back to back.
			OS.low_processor_usage_mode_sleep_usec = 0
		err = tcp.listen(port, "127.0.0.1")
	if err != OK:
		printerr("cannot listen: ", error_string(err))
		quit(1)
		return
	print("READY")
	next_report = Time.get_ticks_msec() + 1000


func _poll_raw() -> void:
	while tcp.is_connection_available():
		var peer := WebSocketPeer.new()
		peer.inbound_buffer_size = 16 << 20
		peer.outbound_buffer_size = 16 << 20
		peer.accept_stream(tcp.take_connection())
		raw_peers.append(peer)
	var i := 0
	peers = 0
	while i < raw_peers.size():
		var peer := raw_peers[i]
		peer.poll()
		var ready_state := peer.get_ready_state()
		if ready_state == WebSocketPeer.STATE_CLOSED:
			raw_peers.remove_at(i)
			continue
		if ready_state == WebSocketPeer.STATE_OPEN:
			peers += 1
			while peer.get_available_packet_count() > 0:
				peer.send(peer.get_packet())
				echoed += 1
		i += 1


func _process(_delta: float) -> bool:
	var start := Time.get_ticks_usec()
	if mode == "broadcast":
		multiplayer_peer.poll()
		if peers >= expected:
			state.encode_u64(0, tick)
			tick += 1
			multiplayer_peer.set_target_peer(0)
			multiplayer_peer.put_packet(state)
	else:
		_poll_raw()
	if peers >= expected:
		frames += 1
		busy_us += Time.get_ticks_usec() - start
	if Time.get_ticks_msec() >= next_report:
		next_report += 1000
		print("BENCH peers=%d frames=%d busy_us=%d echoed=%d" % [peers, frames, busy_us, echoed])
	return false
