## The scene `cargo xtask docs --monitors-screenshot` plays from the editor so that the WebSocket
## graphs in Debugger > Monitors have something to show: a server on a free loopback port that
## echoes every message, and clients that join one after another (heartbeat on, so the round-trip
## time has values) and send at a rate that rises and falls, each with its own message size.
## The last client leaves again after a while, so the peer count steps down too.
extends Node

const CLIENTS := 4
## Seconds between two clients joining.
const JOIN_EVERY := 6.0
## Seconds after which the last client leaves.
const LAST_LEAVES_AT := 60.0
const HEARTBEAT := 0.5

var server := WebSocketServer.new()
var clients: Array[WebSocketClient] = []
## Messages each client still owes (the fractional part of rate * time).
var owed: Array[float] = []
var started_ms := Time.get_ticks_msec()
var last_left := false
var crypto := Crypto.new()


func _ready() -> void:
	server.bind_ip = "127.0.0.1"
	server.heartbeat_interval = HEARTBEAT
	server.data_received.connect(_echo)
	var err := server.listen(0)
	if err != OK:
		push_error("traffic: cannot listen (%s)" % error_string(err))
		get_tree().quit(1)


func _echo(id: int) -> void:
	var peer: WebSocketConnection = server.get_peer(id)
	while peer.get_available_packet_count() > 0:
		var message := peer.get_packet()
		# A client that is leaving gets no answer.
		if peer.get_ready_state() == WebSocketConnection.STATE_OPEN:
			peer.put_packet(message)


func _process(delta: float) -> void:
	var seconds := (Time.get_ticks_msec() - started_ms) / 1000.0
	if clients.size() < CLIENTS and seconds >= clients.size() * JOIN_EVERY:
		var client := WebSocketClient.new()
		client.heartbeat_interval = HEARTBEAT
		client.connect_to_url("ws://127.0.0.1:%d/" % server.get_local_port())
		clients.append(client)
		owed.append(0.0)
	if seconds >= LAST_LEAVES_AT and clients.size() == CLIENTS and not last_left:
		clients[-1].disconnect_from_host()
		last_left = true
	server.poll()
	for i in clients.size():
		var client := clients[i]
		client.poll()
		var peer := client.get_peer(1)
		if peer == null or peer.get_ready_state() != WebSocketConnection.STATE_OPEN:
			continue
		# Between 10 and 70 messages a second, each client on its own phase.
		owed[i] += (40.0 + 30.0 * sin(seconds * 0.25 + i * 1.7)) * delta
		# Random bytes, so that permessage-deflate leaves them as they are on the wire.
		var payload := crypto.generate_random_bytes(100 + 300 * i)
		while owed[i] >= 1.0:
			peer.put_packet(payload)
			owed[i] -= 1.0
		while peer.get_available_packet_count() > 0:
			peer.get_packet()
