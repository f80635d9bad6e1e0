## Sample: a chat over the websocket_rs addon.
##
## Headless, one role per process (what `cargo xtask demo` runs):
##   godot --headless --path godot-project res://demo/demo.tscn -- --role=server --port=9080 --clients=2
##   godot --headless --path godot-project res://demo/demo.tscn -- --role=client --port=9080 --name=alice
## Without arguments (e.g. from the editor) it runs a server and two clients in this one process
## and shows the transcript on screen.
## Transcript lines are printed with a leading "| ".
extends Control

const CHAT_LINES := {
	"alice": ["hi everyone", "who wants a game?", "ready"],
	"bob": ["hello alice", "me!", "ready too"],
}

@onready var _log_label: Label = $Transcript


func _ready() -> void:
	var args := {}
	for arg in OS.get_cmdline_user_args():
		var parts := arg.trim_prefix("--").split("=", true, 1)
		args[parts[0]] = parts[1] if parts.size() > 1 else ""
	var port := int(args.get("port", "9080"))
	match args.get("role", "local"):
		"server":
			_add(ChatServer.new(port, int(args.get("clients", "2")), args.get("ready-file", ""), _say, true))
		"client":
			_add(ChatClient.new(port, args.get("name", "guest"), 2, _say, true))
		_:
			_add(ChatServer.new(port, 2, "", _say, false))
			_add(ChatClient.new(port, "alice", 2, _say, false))
			_add(ChatClient.new(port, "bob", 2, _say, false))
	get_tree().create_timer(30.0).timeout.connect(func():
		_say("demo timed out")
		get_tree().quit(1))


func _add(role: Node) -> void:
	add_child(role)


func _say(line: String) -> void:
	print("| " + line)
	if _log_label:
		_log_label.text += line + "\n"


## The chat server: greets clients, starts the chat once everyone is in, relays every line to
## everybody, and (headless) quits when all have left.
class ChatServer extends Node:
	var server := WebSocketServer.new()
	var names := {}
	var expected: int
	var joined := 0
	var say: Callable
	var quit_when_done: bool

	func _init(port: int, clients: int, ready_file: String, say_fn: Callable, quit_at_end: bool) -> void:
		expected = clients
		say = say_fn
		quit_when_done = quit_at_end
		server.client_connected.connect(_on_connected)
		server.data_received.connect(_on_data)
		server.client_disconnected.connect(_on_disconnected)
		var err := server.listen(port)
		if err != OK:
			say.call("server: cannot listen on %d (%s)" % [port, error_string(err)])
			return
		say.call("server: listening on port %d, waiting for %d players" % [port, expected])
		if not ready_file.is_empty():
			FileAccess.open(ready_file, FileAccess.WRITE).store_string("ready")

	func _process(_delta: float) -> void:
		server.poll()

	func _on_connected(id: int, _protocol: String, resource: String) -> void:
		say.call("server: peer %d connected (path %s)" % [id, resource])

	func _on_data(id: int) -> void:
		var peer: WebSocketConnection = server.get_peer(id)
		while peer.get_available_packet_count() > 0:
			var message = JSON.parse_string(peer.get_packet().get_string_from_utf8())
			if typeof(message) != TYPE_DICTIONARY:
				continue
			match message.get("type"):
				"hello":
					names[id] = message.get("name", "guest")
					joined += 1
					say.call("server: %s joined as peer %d (%d/%d)" % [names[id], id, joined, expected])
					if joined == expected:
						say.call("server: everyone is here, starting the chat")
						_broadcast({"type": "start"})
				"chat":
					say.call("server: relaying %s: %s" % [names.get(id, "?"), message.get("text", "")])
					_broadcast({"type": "chat", "from": names.get(id, "?"), "text": message.get("text", "")})

	func _on_disconnected(id: int, was_clean: bool) -> void:
		say.call("server: %s left (clean close: %s)" % [names.get(id, "peer %d" % id), was_clean])
		names.erase(id)
		if names.is_empty() and joined == expected and quit_when_done:
			say.call("server: everyone left, stopping")
			server.stop()
			get_tree().quit(0)

	func _broadcast(message: Dictionary) -> void:
		var data := JSON.stringify(message).to_utf8_buffer()
		for id in names:
			server.get_peer(id).put_packet(data)


## A chat client: says hello, sends its lines once the chat starts, and leaves cleanly after it
## has seen every player's lines.
class ChatClient extends Node:
	var client := WebSocketClient.new()
	var player: String
	var lines_to_see: int
	var seen := 0
	var say: Callable
	var quit_when_done: bool

	func _init(port: int, name_: String, players: int, say_fn: Callable, quit_at_end: bool) -> void:
		player = name_
		say = say_fn
		quit_when_done = quit_at_end
		lines_to_see = players * 3
		client.connection_established.connect(_on_established)
		client.data_received.connect(_on_data)
		client.connection_closed.connect(_on_closed)
		client.connection_error.connect(_on_error)
		var url := "ws://127.0.0.1:%d/chat?name=%s" % [port, player]
		var err := client.connect_to_url(url)
		if err != OK:
			_on_error()

	func _process(_delta: float) -> void:
		client.poll()

	func _send(message: Dictionary) -> void:
		client.get_peer(1).put_packet(JSON.stringify(message).to_utf8_buffer())

	func _on_established(_protocol: String) -> void:
		say.call("%s: connected" % player)
		_send({"type": "hello", "name": player})

	func _on_data() -> void:
		var peer: WebSocketConnection = client.get_peer(1)
		while peer.get_available_packet_count() > 0:
			var message = JSON.parse_string(peer.get_packet().get_string_from_utf8())
			if typeof(message) != TYPE_DICTIONARY:
				continue
			match message.get("type"):
				"start":
					say.call("%s: the chat has started" % player)
					for line in CHAT_LINES.get(player, ["hello"]):
						_send({"type": "chat", "text": line})
				"chat":
					seen += 1
					say.call("%s: sees %s: %s" % [player, message.get("from"), message.get("text")])
					if seen == lines_to_see:
						say.call("%s: has seen all %d lines, leaving" % [player, seen])
						client.disconnect_from_host(1000, "bye")

	func _on_closed(was_clean: bool) -> void:
		say.call("%s: disconnected (clean close: %s)" % [player, was_clean])
		if quit_when_done:
			get_tree().quit(0 if was_clean else 1)

	func _on_error() -> void:
		say.call("%s: could not connect" % player)
		if quit_when_done:
			get_tree().quit(1)
