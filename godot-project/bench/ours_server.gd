## Bench server with this addon (`cargo xtask bench`; see bench_server.gd for the command line):
## echo: raw mode, every message goes back to its sender;
## broadcast: multiplayer mode; once every expected peer is connected, each frame sends the
##   100-byte state to every peer;
## idle: raw mode, nothing sent.
extends "res://bench/bench_server.gd"

var server := WebSocketServer.new()


func _initialize() -> void:
	read_arguments()
	server.bind_ip = "127.0.0.1"
	server.max_message_size = 64 << 20
	server.inbound_buffer_size = 16 << 20
	server.outbound_buffer_size = 16 << 20
	server.peer_connected.connect(func(_id): peers += 1)
	server.peer_disconnected.connect(func(_id): peers -= 1)
	var err := OK
	if mode == "broadcast":
		err = server.create_server(port, "127.0.0.1")
	else:
		server.data_received.connect(_echo)
		err = server.listen(port)
	if err != OK:
		printerr("cannot listen: ", error_string(err))
		quit(1)
		return
	print("READY")


func _echo(id: int) -> void:
	var peer: WebSocketConnection = server.get_peer(id)
	while peer.get_available_packet_count() > 0:
		peer.send(peer.get_packet())
		echoed += 1


func _process(_delta: float) -> bool:
	var start := Time.get_ticks_usec()
	server.poll()
	if mode == "broadcast" and peers >= expected:
		server.set_target_peer(0)
		server.put_packet(next_state())
	end_frame(start)
	return false
