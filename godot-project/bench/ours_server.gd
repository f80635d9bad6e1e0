## Bench server with this addon (`cargo xtask bench`; see bench_server.gd for the command line):
## echo and tick: raw mode, every message goes back to its sender (a packet the outbound queue
##   refuses waits, with the rest of that peer's packets, and is sent again next frame);
## broadcast: multiplayer mode; once every expected peer is connected, each frame sends the
##   100-byte state to every peer;
## tick_batch: tick with the batch calls: each frame `get_all_packets()` takes every waiting
##   packet and `send_packets()` sends each peer's back in one call (nothing is connected to
##   `data_received`); a batch the outbound queue refuses waits and goes first next frame;
## tick_text: tick sending each message back as text (the compression workload's JSON; the
##   load generator sends text and checks that it comes back as text);
## idle: raw mode, nothing sent.
## With `inline` on the command line the server has no I/O thread (`use_io_thread = false`):
## `poll()` reads and writes the sockets itself. With `nodeflate` it has `permessage_deflate =
## false` (otherwise permessage-deflate stays on, with its default settings: level 6, threshold
## 128, no context takeover either way).
extends "res://bench/bench_server.gd"

var server := WebSocketServer.new()
## Peer id -> the packet its outbound queue refused, to be sent again first.
var refused := {}
## tick_batch: peer id -> the packets its outbound queue refused, to be sent again first.
var backlog := {}
## How echoed messages go out: text in tick_text, binary otherwise.
var write_mode := WebSocketConnection.WRITE_MODE_BINARY


func _initialize() -> void:
	read_arguments()
	server.bind_ip = "127.0.0.1"
	server.use_io_thread = not inline
	server.permessage_deflate = permessage_deflate
	if mode == "tick_text":
		write_mode = WebSocketConnection.WRITE_MODE_TEXT
	if not default_buffers:
		server.max_message_size = 64 << 20
		server.inbound_buffer_size = 16 << 20
		server.outbound_buffer_size = 16 << 20
	server.peer_connected.connect(_on_connected)
	server.peer_disconnected.connect(_on_disconnected)
	var err := OK
	if mode == "broadcast":
		err = server.create_server(port, "127.0.0.1")
	elif mode == "tick_batch":
		err = server.listen(port)
	else:
		server.data_received.connect(_echo)
		err = server.listen(port)
	if err != OK:
		printerr("cannot listen: ", error_string(err))
		quit(1)
		return
	print("READY")


func _on_connected(id: int) -> void:
	peers += 1
	if server.get_peer(id).has_permessage_deflate():
		deflated += 1


func _on_disconnected(id: int) -> void:
	peers -= 1
	refused.erase(id)
	backlog.erase(id)


## Sends back every packet waiting from `id`, stopping at the first one the queue refuses.
func _echo(id: int) -> void:
	if refused.has(id):
		return
	var peer: WebSocketConnection = server.get_peer(id)
	while peer.get_available_packet_count() > 0:
		var packet := peer.get_packet()
		if peer.send(packet, write_mode) != OK:
			refused[id] = packet
			return
		echoed += 1


## tick_batch: sends every peer's waiting packets back, one call per peer, after what its
## outbound queue refused before.
func _echo_batches() -> void:
	var packets: Dictionary = server.get_all_packets()
	for id in backlog.keys():
		var batch: Array[PackedByteArray] = backlog[id]
		if packets.has(id):
			batch.append_array(packets[id])
			packets.erase(id)
		if server.get_peer(id).send_packets(batch) == OK:
			echoed += batch.size()
			backlog.erase(id)
	for id in packets:
		var batch: Array[PackedByteArray] = packets[id]
		if server.get_peer(id).send_packets(batch) == OK:
			echoed += batch.size()
		else:
			backlog[id] = batch


## Sends the refused packets again, then what waited behind them.
func _retry_refused() -> void:
	for id in refused.keys():
		var peer: WebSocketConnection = server.get_peer(id)
		if peer.send(refused[id], write_mode) == OK:
			echoed += 1
			refused.erase(id)
			_echo(id)


func _process(_delta: float) -> bool:
	var start := Time.get_ticks_usec()
	server.poll()
	if mode == "tick_batch":
		_echo_batches()
	if not refused.is_empty():
		_retry_refused()
	if mode == "broadcast" and peers >= expected:
		server.set_target_peer(0)
		server.put_packet(next_state())
	end_frame(start)
	return false
