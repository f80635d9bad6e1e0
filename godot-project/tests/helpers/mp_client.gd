## Helper process for the multiplayer tests: a client that joins a server with our
## WebSocketClient ("ours", or "ours_inline" with use_io_thread = false) or Godot's
## WebSocketMultiplayerPeer ("builtin"):
##   -s res://tests/helpers/mp_client.gd -- <ours|ours_inline|builtin> <url> <name> <result.json>
## Once connected it calls hello (to the server); once it learns of another client, shout (to
## everyone) and direct on that client. It writes what it saw to <result.json> whenever that changes, and
## leaves cleanly (multiplayer_peer.close()) when the file <result.json>.leave appears.
extends SceneTree

var game: Node
var peer: MultiplayerPeer
var result_path: String
var my_name: String
var greeted := false
var directed := {}
var last_written := ""
var leaving := false


func _initialize() -> void:
	var args := OS.get_cmdline_user_args()
	var impl := args[0]
	var url := args[1]
	my_name = args[2]
	result_path = args[3]
	game = load("res://tests/helpers/mp_game.gd").new()
	game.name = "Game"
	root.add_child(game)
	var err: Error
	if impl.begins_with("ours"):
		var client := WebSocketClient.new()
		client.use_io_thread = impl != "ours_inline"
		err = client.create_client(url)
		peer = client
	else:
		var client := WebSocketMultiplayerPeer.new()
		err = client.create_client(url)
		peer = client
	if err != OK:
		_write({"error": "create_client failed: %d" % err})
		quit(1)
		return
	get_multiplayer().multiplayer_peer = peer


func _process(_delta: float) -> bool:
	if leaving:
		return false
	var mp := get_multiplayer()
	if mp.multiplayer_peer.get_connection_status() == MultiplayerPeer.CONNECTION_CONNECTED and not mp.is_server():
		if not greeted:
			game.hello.rpc_id(1, "hello from " + my_name)
			greeted = true
		for id in mp.get_peers():
			if id != 1 and not directed.has(id):
				# Another client is known: everyone hears a shout now (the server relays it).
				if directed.is_empty():
					game.shout.rpc("shout from " + my_name)
				game.direct.rpc_id(id, "direct from " + my_name)
				directed[id] = true
	_write({"unique_id": mp.get_unique_id(), "events": game.events, "hero": game.player_position("Hero")})
	if FileAccess.file_exists(result_path + ".leave"):
		leaving = true
		mp.multiplayer_peer.close()
		_write({"unique_id": mp.get_unique_id(), "events": game.events, "hero": game.player_position("Hero"), "left": true})
		quit(0)
	return false


func _write(result: Dictionary) -> void:
	var text := JSON.stringify(result)
	if text == last_written:
		return
	last_written = text
	var tmp := result_path + ".tmp"
	var file := FileAccess.open(tmp, FileAccess.WRITE)
	if file:
		file.store_string(text)
		file.close()
		DirAccess.rename_absolute(tmp, result_path)
