## Bench server with this addon (`cargo xtask bench`):
##   -s res://bench/ours_server.gd -- <echo|broadcast|idle> <port> <expected peers>
## echo: raw mode, every message goes back to its sender, as fast as frames go;
## broadcast: multiplayer mode at 60 frames a second; once <expected peers> are connected, each
##   frame sends a 100-byte state (tick number first) to every peer;
## idle: raw mode at 60 frames a second, nothing sent.
## Once a second it prints `BENCH peers=N frames=F busy_us=U echoed=E`: F and U count only frames
## with every expected peer connected; U is the time spent in the server's own calls (poll, sends).
extends SceneTree

var server := WebSocketServer.new()
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
	server.bind_ip = "127.0.0.1"
	server.max_message_size = 64 << 20
	server.inbound_buffer_size = 16 << 20
	server.outbound_buffer_size = 16 << 20
	server.peer_connected.connect(func(_id): peers += 1)
	server.peer_disconnected.connect(func(_id): peers -= 1)
	var err := OK
	if mode == "broadcast":
		Engine.max_fps = 60
		state.resize(100)
		state.fill(0x42)
		err = server.create_server(port, "127.0.0.1")
	else:
		Engine.max_fps = 0 if mode == "echo" else 60
		if mode == "echo":
			# Headless Godot sleeps 6.9 ms a frame by default; echo runs frames back to back.
			OS.low_processor_usage_mode_sleep_usec = 0
		server.data_received.connect(_echo)
		err = server.listen(port)
	if err != OK:
		printerr("cannot listen: ", error_string(err))
		quit(1)
		return
	print("READY")
	next_report = Time.get_ticks_msec() + 1000


func _echo(id: int) -> void:
	var peer: WebSocketConnection = server.get_peer(id)
	while peer.get_available_packet_count() > 0:
		peer.send(peer.get_packet())
		echoed += 1


func _process(_delta: float) -> bool:
	var start := Time.get_ticks_usec()
	server.poll()
	if mode == "broadcast" and peers >= expected:
		state.encode_u64(0, tick)
		tick += 1
		server.set_target_peer(0)
		server.put_packet(state)
	if peers >= expected:
		frames += 1
		busy_us += Time.get_ticks_usec() - start
	if Time.get_ticks_msec() >= next_report:
		next_report += 1000
		print("BENCH peers=%d frames=%d busy_us=%d echoed=%d" % [peers, frames, busy_us, echoed])
	return false
