## Helper process: a WebSocketServer on the port given after `--` that echoes every packet and
## quits when its first client disconnects.
extends SceneTree

var server := WebSocketServer.new()


func _initialize() -> void:
	var port := int(OS.get_cmdline_user_args()[0])
	if server.listen(port) != OK:
		quit(1)
		return
	# Tell the test (test_case.gd's helper_ready) that connections are welcome now.
	FileAccess.open("user://ready_%d" % port, FileAccess.WRITE).store_string("ready")
	server.data_received.connect(func(id):
		var peer: WebSocketConnection = server.get_peer(id)
		while peer.get_available_packet_count() > 0:
			peer.put_packet(peer.get_packet()))
	server.client_disconnected.connect(func(_id, _clean):
		DirAccess.remove_absolute("user://ready_%d" % port)
		quit(0))


func _process(_delta: float) -> bool:
	server.poll()
	return false
