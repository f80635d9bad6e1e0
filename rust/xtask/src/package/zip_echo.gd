## Copied by `cargo xtask package-test` into an empty Godot project that holds nothing but the
## unzipped release package: a WebSocketServer and a WebSocketClient of the packaged library echo
## one message. Prints "ZIP ECHO OK" and exits 0, or "ZIP ECHO FAIL: <why>" and exits 1.
extends SceneTree

const MESSAGE := "hello from the release zip"
const LIMIT_MS := 15000

var server := WebSocketServer.new()
var client := WebSocketClient.new()
var echoed := ""
var started_ms := 0


func _initialize() -> void:
	started_ms = Time.get_ticks_msec()
	server.bind_ip = "127.0.0.1"
	server.data_received.connect(_on_server_data)
	if server.listen(0) != OK:
		_finish("the server cannot listen")
		return
	client.connection_established.connect(_on_client_open)
	client.data_received.connect(_on_client_data)
	client.connection_error.connect(func() -> void: _finish("the client cannot connect"))
	if client.connect_to_url("ws://127.0.0.1:%d/" % server.get_local_port()) != OK:
		_finish("connect_to_url failed")


func _on_server_data(id: int) -> void:
	var peer: WebSocketConnection = server.get_peer(id)
	peer.put_packet(peer.get_packet())


func _on_client_open(_protocol: String) -> void:
	client.get_peer(1).put_packet(MESSAGE.to_utf8_buffer())


func _on_client_data() -> void:
	echoed = client.get_peer(1).get_packet().get_string_from_utf8()


func _process(_delta: float) -> bool:
	if server == null:
		return false
	server.poll()
	client.poll()
	if echoed == MESSAGE:
		_finish("")
	elif echoed != "":
		_finish("the echo was %s" % echoed)
	elif Time.get_ticks_msec() - started_ms > LIMIT_MS:
		_finish("no echo within %d ms" % LIMIT_MS)
	return false


func _finish(failure: String) -> void:
	if server == null:
		return
	client.disconnect_from_host(-1)
	server.stop()
	client = null
	server = null
	if failure.is_empty():
		print("ZIP ECHO OK: %s" % Engine.get_version_info().string)
		quit(0)
	else:
		print("ZIP ECHO FAIL: %s" % failure)
		quit(1)
