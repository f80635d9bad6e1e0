## Bench server with Godot's built-in WebSocket classes, written the way Godot 4 users write
## them (`cargo xtask bench`; see bench_server.gd for the command line):
## echo, tick and idle: a raw server, TCPServer + WebSocketPeer.accept_stream, every peer polled
##   each frame; echo and tick send every message back to its sender (a packet the outbound
##   buffer refuses waits, with the rest of that peer's packets, and is sent again next frame);
## broadcast: WebSocketMultiplayerPeer; once every expected peer is connected, each frame sends
##   the 100-byte state to every peer.
extends "res://bench/bench_server.gd"

var tcp := TCPServer.new()
var raw_peers: Array[WebSocketPeer] = []
## Peer -> the packet its outbound buffer refused, to be sent again first.
var refused := {}
var multiplayer_peer := WebSocketMultiplayerPeer.new()


func _initialize() -> void:
	read_arguments()
	var err := OK
	if mode == "broadcast":
		multiplayer_peer.peer_connected.connect(func(_id): peers += 1)
		multiplayer_peer.peer_disconnected.connect(func(_id): peers -= 1)
		err = multiplayer_peer.create_server(port, "127.0.0.1")
	else:
		err = tcp.listen(port, "127.0.0.1")
	if err != OK:
		printerr("cannot listen: ", error_string(err))
		quit(1)
		return
	print("READY")


func _poll_raw() -> void:
	while tcp.is_connection_available():
		var peer := WebSocketPeer.new()
		if not default_buffers:
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
			refused.erase(peer)
			continue
		if ready_state == WebSocketPeer.STATE_OPEN:
			peers += 1
			if refused.has(peer) and peer.send(refused[peer]) == OK:
				refused.erase(peer)
				echoed += 1
			while not refused.has(peer) and peer.get_available_packet_count() > 0:
				var packet := peer.get_packet()
				if peer.send(packet) != OK:
					refused[peer] = packet
				else:
					echoed += 1
		i += 1


func _process(_delta: float) -> bool:
	var start := Time.get_ticks_usec()
	if mode == "broadcast":
		multiplayer_peer.poll()
		if peers >= expected:
			multiplayer_peer.set_target_peer(0)
			multiplayer_peer.put_packet(next_state())
	else:
		_poll_raw()
	end_frame(start)
	return false
