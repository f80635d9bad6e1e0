## Godot-to-Godot RPC bench (`cargo xtask bench`): a server process and a client process exchange
## reliable RPCs through SceneMultiplayer over one transport (the node they call is
## `rpc_node.gd`, at /root/Bench in both). Command lines:
##   server: -- server <transport> <port> <loop>
##   client: -- client <transport> <port> <loop> <seconds> <latency seconds> <server pid>
## transport: `ours` (WebSocketServer / WebSocketClient), `ours_inline` (the same with
##   `use_io_thread = false` on both), `builtin` (WebSocketMultiplayerPeer), `enet`
##   (ENetMultiplayerPeer); loop: `uncapped` (Engine.max_fps = 0) or `capped` (1000 fps); both
##   with OS.low_processor_usage_mode_sleep_usec = 0, so only the cap sets the pace.
##
## The client keeps 32 pings in flight (each pong sends the next) for a one-second warm-up, then
## measures `seconds`: RPC round trips per second and the CPU time (user + system, all threads,
## from /proc/<pid>/stat) of both processes per round trip. It then waits for every ping still in
## flight and measures the round trip with one ping in flight for `latency seconds` (p50, p99).
## Every pong must carry the next sequence number and its intact payload. It prints one line,
## `RESULT workload=rpc ok=... key=value ...`, and quits. The server prints READY once listening
## (or `SKIP <why>` when the transport cannot run in this build) and, once a second,
## `SERVER answered=N errors=E` (pings answered, pings out of order or corrupted).
extends SceneTree

const RpcNode := preload("res://bench/rpc_node.gd")
const IN_FLIGHT := 32
const WARM_UP_USEC := 1_000_000
const DRAIN_LIMIT_USEC := 30_000_000
const CONNECT_LIMIT_USEC := 15_000_000
## Latency samples taken before these are dropped (the first round trips after the drain).
const LATENCY_SKIP := 10

var role := ""
var transport := ""
var port := 0
var loop := ""
var seconds := 1.0
var latency_seconds := 1.0
var server_pid := 0
var bench: RpcNode
var peer: MultiplayerPeer

## Client: connecting, warmup, window, drain, latency, done.
var phase := "connecting"
var phase_end := 0
var started := 0
var next_send := 0
var next_pong := 0
var errors := 0
var first_error := ""
var window_start := 0
var window_pongs := 0
var window_usec := 0
var cpu_start := [0.0, 0.0]
var cpu_used := [0.0, 0.0]
var ping_sent_at := 0
var latencies: PackedInt64Array = []
var next_report := 0


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	if args.size() < 4:
		printerr("usage: -- server|client <transport> <port> <loop> [seconds latency_seconds server_pid]")
		quit(2)
		return
	role = args[0]
	transport = args[1]
	port = int(args[2])
	loop = args[3]
	if role == "client":
		if args.size() < 7:
			printerr("the client needs <seconds> <latency seconds> <server pid>")
			quit(2)
			return
		seconds = float(args[4])
		latency_seconds = float(args[5])
		server_pid = int(args[6])
	Engine.max_fps = 1000 if loop == "capped" else 0
	OS.low_processor_usage_mode_sleep_usec = 0
	bench = RpcNode.new()
	bench.name = "Bench"
	root.add_child(bench)
	var made: Variant = _make_peer()
	if made is String:
		if role == "server":
			print("SKIP ", made)
		else:
			print("RESULT workload=rpc transport=%s loop=%s ok=false skipped=\"%s\"" % [transport, loop, made])
		phase = "done"
		quit(0)
		return
	peer = made
	get_multiplayer().multiplayer_peer = peer
	started = Time.get_ticks_usec()
	if role == "server":
		next_report = Time.get_ticks_msec() + 1000
		print("READY")
	else:
		get_multiplayer().connected_to_server.connect(_on_connected)
		get_multiplayer().connection_failed.connect(func(): _finish("the connection failed"))
		get_multiplayer().server_disconnected.connect(func(): _finish("the server disconnected"))
		bench.on_pong = _on_pong


## The transport's MultiplayerPeer, listening or connecting; or why it cannot run (a String).
func _make_peer() -> Variant:
	var url := "ws://127.0.0.1:%d" % port
	var err := OK
	match transport:
		"ours", "ours_inline":
			var p: MultiplayerPeer
			if role == "server":
				p = WebSocketServer.new()
			else:
				p = WebSocketClient.new()
			if transport == "ours_inline":
				if not "use_io_thread" in p:
					return "this build has no use_io_thread"
				p.set("use_io_thread", false)
			if role == "server":
				err = (p as WebSocketServer).create_server(port, "127.0.0.1")
			else:
				err = (p as WebSocketClient).create_client(url)
			return p if err == OK else "cannot start: %s" % error_string(err)
		"builtin":
			var p := WebSocketMultiplayerPeer.new()
			err = p.create_server(port, "127.0.0.1") if role == "server" else p.create_client(url)
			return p if err == OK else "cannot start: %s" % error_string(err)
		"enet":
			var p := ENetMultiplayerPeer.new()
			if role == "server":
				p.set_bind_ip("127.0.0.1")
				err = p.create_server(port, 4)
			else:
				err = p.create_client("127.0.0.1", port)
			return p if err == OK else "cannot start: %s" % error_string(err)
	return "unknown transport %s" % transport


## CPU seconds (user + system, all threads) of process `pid` so far; -1 when unreadable.
static func cpu_seconds(pid: int) -> float:
	var file := FileAccess.open("/proc/%d/stat" % pid, FileAccess.READ)
	if file == null:
		return -1.0
	var line := file.get_line()
	var close_paren := line.rfind(")")
	if close_paren < 0:
		return -1.0
	var fields := line.substr(close_paren + 1).split(" ", false)
	if fields.size() < 13:
		return -1.0
	# utime and stime: fields 14 and 15 of the line, in 1/100 s clock ticks (USER_HZ).
	return (int(fields[11]) + int(fields[12])) / 100.0


func _cpu_now() -> Array:
	return [cpu_seconds(OS.get_process_id()), cpu_seconds(server_pid)]


func _send_ping() -> void:
	ping_sent_at = Time.get_ticks_usec()
	bench.ping.rpc_id(1, next_send, bench.payload_for(next_send))
	next_send += 1


func _on_connected() -> void:
	phase = "warmup"
	phase_end = Time.get_ticks_usec() + WARM_UP_USEC
	for i in IN_FLIGHT:
		_send_ping()


func _on_pong(seq: int, payload: PackedByteArray) -> void:
	if seq != next_pong or not bench.intact(seq, payload):
		errors += 1
		if first_error.is_empty():
			first_error = "expected pong %d, got %d (%d bytes)" % [next_pong, seq, payload.size()]
	next_pong += 1
	match phase:
		"warmup":
			_send_ping()
		"window":
			window_pongs += 1
			_send_ping()
		"latency":
			var now := Time.get_ticks_usec()
			latencies.append(now - ping_sent_at)
			if now < phase_end:
				_send_ping()


func _process(_delta: float) -> bool:
	if phase == "done":
		return false
	if role == "server":
		if Time.get_ticks_msec() >= next_report:
			next_report += 1000
			print("SERVER answered=%d errors=%d" % [bench.answered, bench.errors])
		return false
	var now := Time.get_ticks_usec()
	match phase:
		"connecting":
			if now - started > CONNECT_LIMIT_USEC:
				_finish("not connected after %d s" % (CONNECT_LIMIT_USEC / 1_000_000))
		"warmup":
			if now >= phase_end:
				phase = "window"
				cpu_start = _cpu_now()
				window_start = Time.get_ticks_usec()
				phase_end = window_start + int(seconds * 1e6)
		"window":
			if now >= phase_end:
				window_usec = now - window_start
				var cpu_end: Array = _cpu_now()
				cpu_used = [cpu_end[0] - cpu_start[0], cpu_end[1] - cpu_start[1]]
				if cpu_start[1] < 0.0 or cpu_end[1] < 0.0:
					cpu_used[1] = -1.0
				phase = "drain"
				phase_end = now + DRAIN_LIMIT_USEC
		"drain":
			if next_pong == next_send:
				phase = "latency"
				phase_end = now + int(latency_seconds * 1e6)
				_send_ping()
			elif now >= phase_end:
				_finish("%d pongs never came back" % (next_send - next_pong))
		"latency":
			if next_pong == next_send and now >= phase_end:
				_finish("")
			elif now >= phase_end + DRAIN_LIMIT_USEC:
				_finish("the last ping was never answered")
	return false


## Prints the RESULT line (failed with `why` unless it is empty) and quits.
func _finish(why: String) -> void:
	if phase == "done":
		return
	phase = "done"
	if not why.is_empty():
		errors += 1
		if first_error.is_empty():
			first_error = why
	var samples := latencies.slice(mini(LATENCY_SKIP, latencies.size() / 2))
	samples.sort()
	var pct := func(p: float) -> int:
		return samples[mini(int(samples.size() * p), samples.size() - 1)] if samples.size() > 0 else 0
	var rpcs := maxi(window_pongs, 1)
	var window_s := maxf(window_usec / 1e6, 1e-6)
	var ok := errors == 0 and window_pongs > 0 and samples.size() > 0
	var fields := "workload=rpc transport=%s loop=%s ok=%s in_flight=%d rpcs=%d errors=%d window_s=%.2f rpcs_per_s=%.0f" % [
		transport, loop, ok, IN_FLIGHT, next_send, errors, window_s, window_pongs / window_s]
	fields += " client_cpu_percent=%.0f client_cpu_us_per_rpc=%.2f" % [100.0 * cpu_used[0] / window_s, cpu_used[0] * 1e6 / rpcs]
	if cpu_used[1] >= 0.0:
		fields += " server_cpu_percent=%.0f server_cpu_us_per_rpc=%.2f" % [100.0 * cpu_used[1] / window_s, cpu_used[1] * 1e6 / rpcs]
	fields += " latency_samples=%d p50_us=%d p99_us=%d" % [samples.size(), pct.call(0.5), pct.call(0.99)]
	if not first_error.is_empty():
		fields += " first_error=\"%s\"" % first_error
	print("RESULT ", fields)
	if peer != null:
		peer.close()
	quit(0 if ok else 1)
