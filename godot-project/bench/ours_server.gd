## Bench server with this addon (`cargo xtask bench`; see bench_server.gd for the command line):
## echo and tick: raw mode, every message goes back to its sender (a packet the outbound queue
##   refuses waits, with the rest of that peer's packets, and is sent again next frame);
## broadcast: multiplayer mode; once every expected peer is connected, each frame sends the
##   100-byte state to every peer;
## idle: raw mode, nothing sent.
## With `inline` on the command line the server has no I/O thread (`use_io_thread = false`):
## `poll()` reads and writes the sockets itself.
extends "res://bench/bench_server.gd"

var server := WebSocketServer.new()
## Peer id -> the packet its outbound queue refused, to be sent again first.
var refused := {}


func _initialize() -> void:
	read_arguments()
	server.bind_ip = "127.0.0.1"
	server.use_io_thread = not inline
	if not default_buffers:
		server.max_message_size = 64 << 20
		server.inbound_buffer_size = 16 << 20
		server.outbound_buffer_size = 16 << 20
	server.peer_connected.connect(func(_id): peers += 1)
	server.peer_disconnected.connect(_on_disconnected)
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


func _on_disconnected(id: int) -> void:
	peers -= 1
	refused.erase(id)


## Sends back every packet waiting from `id`, stopping at the first one the queue refuses.
func _echo(id: int) -> void:
	if refused.has(id):
		return
	var peer: WebSocketConnection = server.get_peer(id)
	while peer.get_available_packet_count() > 0:
		var packet := peer.get_packet()
		if peer.send(packet) != OK:
			refused[id] = packet
			return
		echoed += 1


## Sends the refused packets again, then what waited behind them.
func _retry_refused() -> void:
	for id in refused.keys():
		var peer: WebSocketConnection = server.get_peer(id)
		if peer.send(refused[id]) == OK:
			echoed += 1
			refused.erase(id)
			_echo(id)


func _process(_delta: float) -> bool:
	var start := Time.get_ticks_usec()
	server.poll()
	if not refused.is_empty():
		_retry_refused()
	if mode == "broadcast" and peers >= expected:
		server.set_target_peer(0)
		server.put_packet(next_state())
	end_frame(start)
	return false
