## Helper process: our WebSocketClient as the Autobahn|Testsuite client testee, against a
## fuzzing server:
##   -s res://tests/helpers/autobahn_client.gd -- <ws://host:port> <agent> <done file>
## Asks /getCaseCount, runs every case (/runCase: echo each message with its kind until the
## server closes), then /updateReports, and writes <done file>.
extends SceneTree

var base: String
var agent: String
var done_file: String
var client: WebSocketClient
var case_count := -1
var current := 0
## Messages waiting for room in the outbound queue, as [data, is_text].
var pending: Array = []
var finished := false


func _initialize() -> void:
	# An uncapped loop: each case waits for every echo before its next message, and headless
	# Godot otherwise sleeps 6.9 ms a frame (1000 messages a case would take 7 s).
	Engine.max_fps = 0
	OS.low_processor_usage_mode_sleep_usec = 0
	var args := OS.get_cmdline_user_args()
	base = args[0]
	agent = args[1]
	done_file = args[2]
	_open("/getCaseCount")


func _open(path: String) -> void:
	client = WebSocketClient.new()
	client.max_message_size = 64 << 20
	client.outbound_buffer_size = 16 << 20
	client.handshake_timeout = 10.0
	# The compression cases (groups 12 and 13) expect every echo compressed: kosoku's case 12
	# code fails on an uncompressed text echo (it hashes the Python str), which RFC 7692 allows
	# and our default threshold sends for messages under 128 bytes.
	client.deflate_threshold = 0
	pending.clear()
	client.data_received.connect(_on_data)
	client.connection_closed.connect(func(_clean): _next())
	client.connection_error.connect(func(): _next())
	if client.connect_to_url(base + path) != OK:
		_next()


func _on_data() -> void:
	var peer: WebSocketConnection = client.get_peer(1)
	while peer.get_available_packet_count() > 0:
		var data := peer.get_packet()
		if case_count < 0:
			case_count = int(data.get_string_from_utf8())
		elif current >= 1 and current <= case_count:
			pending.append([data, peer.was_string_packet()])
	_flush()


func _flush() -> void:
	var peer: WebSocketConnection = client.get_peer(1)
	while not pending.is_empty() and peer.get_ready_state() == WebSocketConnection.STATE_OPEN:
		var message: Array = pending[0]
		if peer.get_current_outbound_buffered_amount() > 0 and peer.get_current_outbound_buffered_amount() + message[0].size() > client.outbound_buffer_size:
			return
		if peer.send(message[0], WebSocketConnection.WRITE_MODE_TEXT if message[1] else WebSocketConnection.WRITE_MODE_BINARY) != OK:
			return
		pending.pop_front()


func _next() -> void:
	current += 1
	if case_count < 0:
		print("autobahn_client: no case count")
		quit(1)
	elif current <= case_count:
		_open.call_deferred("/runCase?case=%d&agent=%s" % [current, agent])
	elif current == case_count + 1:
		_open.call_deferred("/updateReports?agent=%s" % agent)
	elif not finished:
		finished = true
		FileAccess.open(done_file, FileAccess.WRITE).store_string("done %d" % case_count)
		quit(0)


func _process(_delta: float) -> bool:
	if client:
		client.poll()
		if client and client.get_peer(1):
			_flush()
	return false
