## Scale bench server (`cargo xtask bench --only scale`; clients: `wsrs-bench scale`):
##   -s res://bench/scale_server.gd -- <port> <expected peers>
## Our WebSocketServer in raw mode, as a game holds it: 60 frames a second, `poll()` each frame.
## Prints READY, `BENCH peers=N` once a second while clients connect, FULL once every expected
## peer is connected, then runs its phases and prints one `SCALE phase=...` line per phase:
## - idle: 5 s with every connection silent, `poll()` timed each frame;
## - broadcast: 5 rounds, 2 s apart, each one `broadcast()` of 100 bytes (`B`, the round, the wall
##   clock in µs) to every client: the call's time and the next frame's `poll()` time;
## - active: `A` to every client, after which the first clients of each load generator send 10
##   messages a second each, echoed from `data_received`; 5 s with `poll()` timed each frame
##   (the echoes' GDScript included), then `S` (stop), 2 s for the last echoes, then `D` (done).
## Each phase starts with a `SCALE start=<phase>` line so that the bench can read CPU time around it.
extends SceneTree

var server := WebSocketServer.new()
var port := 0
var expected := 0
var peers := 0
var phase := "connect"
## When the current phase (or its next step) began, in µs of Time.get_ticks_usec().
var phase_start := 0
var next_report := 0
var frames := 0
var poll_us := 0
var poll_max_us := 0
var round := 0
var echoed := 0
## A frame after a broadcast round: its poll() time is printed with the round.
var after_broadcast := false
var broadcast_call_us := 0
var broadcast_sent_us := 0

const IDLE_SECONDS := 5.0
const ROUNDS := 5
const ROUND_SECONDS := 2.0
const ACTIVE_SECONDS := 5.0
const SETTLE_SECONDS := 3.0


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	port = int(args[0])
	expected = int(args[1])
	Engine.max_fps = 60
	server.bind_ip = "127.0.0.1"
	# Clients open faster than a frame admits them; give them time under load.
	server.handshake_timeout = 30.0
	server.client_connected.connect(func(_id, _protocol, _resource): peers += 1)
	server.client_disconnected.connect(func(_id, _clean): peers -= 1)
	server.data_received.connect(_echo)
	if server.listen(port) != OK:
		printerr("cannot listen on ", port)
		quit(1)
		return
	next_report = Time.get_ticks_msec() + 1000
	print("READY")


## Sends every waiting message of `id` back (the active clients' `E` messages).
func _echo(id: int) -> void:
	var peer: WebSocketConnection = server.get_peer(id)
	while peer.get_available_packet_count() > 0:
		if peer.send(peer.get_packet()) != OK:
			printerr("an echo was refused")
			return
		echoed += 1


## A one-byte message of `kind` to every client.
func _tell(kind: String) -> void:
	if server.broadcast(kind.to_ascii_buffer()) != OK:
		printerr("broadcast of ", kind, " failed")


func _begin(name: String) -> void:
	phase = name
	phase_start = Time.get_ticks_usec()
	frames = 0
	poll_us = 0
	poll_max_us = 0
	print("SCALE start=", name)


func _seconds_in_phase() -> float:
	return (Time.get_ticks_usec() - phase_start) / 1e6


func _process(_delta: float) -> bool:
	var start := Time.get_ticks_usec()
	server.poll()
	var took := Time.get_ticks_usec() - start
	frames += 1
	poll_us += took
	poll_max_us = max(poll_max_us, took)
	if after_broadcast:
		after_broadcast = false
		print("SCALE phase=broadcast round=%d call_us=%d next_poll_us=%d sent_us=%d" % [round - 1, broadcast_call_us, took, broadcast_sent_us])
	match phase:
		"connect":
			if Time.get_ticks_msec() >= next_report:
				next_report += 1000
				print("BENCH peers=%d" % peers)
			if peers >= expected:
				print("FULL peers=%d" % peers)
				_begin("settle")
		"settle":
			if _seconds_in_phase() >= SETTLE_SECONDS:
				_begin("idle")
		"idle":
			if _seconds_in_phase() >= IDLE_SECONDS:
				print("SCALE phase=idle peers=%d frames=%d poll_us=%d poll_max_us=%d" % [peers, frames, poll_us, poll_max_us])
				_begin("broadcast")
				phase_start -= int(ROUND_SECONDS * 1e6)
		"broadcast":
			if round >= ROUNDS and _seconds_in_phase() >= ROUND_SECONDS:
				print("SCALE phase=broadcast_end peers=%d" % peers)
				_begin("active")
				_tell("A")
			elif round < ROUNDS and _seconds_in_phase() >= ROUND_SECONDS:
				phase_start = Time.get_ticks_usec()
				var message := PackedByteArray()
				message.resize(100)
				message.fill(0x42)
				message[0] = 0x42  # "B"
				message.encode_u64(1, round)
				broadcast_sent_us = int(Time.get_unix_time_from_system() * 1e6)
				message.encode_u64(9, broadcast_sent_us)
				var call_start := Time.get_ticks_usec()
				if server.broadcast(message) != OK:
					printerr("broadcast round ", round, " failed")
				broadcast_call_us = Time.get_ticks_usec() - call_start
				round += 1
				after_broadcast = true
		"active":
			if _seconds_in_phase() >= ACTIVE_SECONDS:
				print("SCALE phase=active peers=%d frames=%d poll_us=%d poll_max_us=%d echoed=%d" % [peers, frames, poll_us, poll_max_us, echoed])
				_tell("S")
				_begin("stopping")
		"stopping":
			if _seconds_in_phase() >= 2.0:
				_tell("D")
				print("SCALE phase=done peers=%d echoed=%d" % [peers, echoed])
				_begin("done")
	return false
