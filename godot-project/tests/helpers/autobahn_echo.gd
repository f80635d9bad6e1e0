## Helper process: the echo server the Autobahn|Testsuite cases run against (fuzzingclient):
##   -s res://tests/helpers/autobahn_echo.gd -- <port> [stop file]
## It quits when the stop file appears.
## Every message goes back with its kind (text or binary). When a client's outbound queue is full,
## the rest wait in order and are sent as the queue drains: nothing is dropped.
extends SceneTree

var server := WebSocketServer.new()
## Peer id -> Array of [data, is_text] waiting for room in the outbound queue.
var pending := {}
var stop_file := ""


func _initialize() -> void:
	# An uncapped loop (headless Godot otherwise sleeps 6.9 ms a frame): each case waits for
	# every echo before its next message.
	Engine.max_fps = 0
	OS.low_processor_usage_mode_sleep_usec = 0
	var port := int(OS.get_cmdline_user_args()[0])
	if OS.get_cmdline_user_args().size() > 1:
		stop_file = OS.get_cmdline_user_args()[1]
	server.bind_ip = "127.0.0.1"
	server.max_message_size = 64 << 20
	server.outbound_buffer_size = 16 << 20
	# The compression cases (groups 12 and 13) expect every echo compressed: kosoku's case 12
	# code fails on an uncompressed text echo (it hashes the Python str), which RFC 7692 allows
	# and our default threshold sends for messages under 128 bytes.
	server.deflate_threshold = 0
	if server.listen(port) != OK:
		quit(1)
		return
	FileAccess.open("user://ready_%d" % port, FileAccess.WRITE).store_string("ready")
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		if peer == null:
			return
		var queue: Array = pending.get_or_add(id, [])
		while peer.get_available_packet_count() > 0:
			var data := peer.get_packet()
			queue.append([data, peer.was_string_packet()])
		_flush(id))
	server.client_disconnected.connect(func(id, _clean): pending.erase(id))


func _flush(id: int) -> void:
	var queue: Array = pending.get(id, [])
	var peer: WebSocketConnection = server.get_peer(id) if server.has_peer(id) else null
	while peer and not queue.is_empty() and peer.get_ready_state() == WebSocketConnection.STATE_OPEN:
		var message: Array = queue[0]
		# Room is checked first, so a full queue waits here instead of printing errors.
		if peer.get_current_outbound_buffered_amount() + message[0].size() > server.outbound_buffer_size and peer.get_current_outbound_buffered_amount() > 0:
			return
		if peer.send(message[0], WebSocketConnection.WRITE_MODE_TEXT if message[1] else WebSocketConnection.WRITE_MODE_BINARY) != OK:
			return
		queue.pop_front()


func _process(_delta: float) -> bool:
	if not stop_file.is_empty() and Engine.get_process_frames() % 30 == 0 and FileAccess.file_exists(stop_file):
		server.stop()
		quit(0)
		return true
	server.poll()
	for id in pending.keys():
		_flush(id)
	return false
