## Sample game: a lobby with chat and players that move, over WebSocketServer / WebSocketClient
## in multiplayer mode (@rpc, MultiplayerSpawner, MultiplayerSynchronizer).
##
## In a window: "Host" starts a server (it plays too), "Join" connects to one; arrow keys move
## your square, Enter sends the chat line.
## Headless, one role per process (what `cargo xtask demo` runs):
##   godot --headless --path godot-project res://lobby/lobby.tscn -- --role=server --port=9090 --players=2
##   godot --headless --path godot-project res://lobby/lobby.tscn -- --role=client --port=9090 --name=alice
## Headless clients are scripted: they chat, walk to a spot, and print what they see of the others.
## Transcript lines are printed with a leading "| ".
## A network overlay (bottom left) lists every link with its ping and its traffic: on the server
## one line per player, on a client its link to the server. Headless, each process prints those
## lines when its script is done.
extends Node2D

const SCRIPTED_LINES := {
	"alice": ["hi bob!", "race you to the door"],
	"bob": ["hey alice", "you're on"],
}
const SCRIPTED_TARGETS := {"alice": Vector2(300, 120), "bob": Vector2(120, 300)}
const SPEED := 200.0
## Seconds between two pings on every link; the ping column needs a heartbeat.
const HEARTBEAT := 1.0
## Seconds between two refreshes of the network overlay (rates are over that window).
const NETWORK_EVERY := 0.5

var players: Node2D
var spawner: MultiplayerSpawner
var my_name := ""
## Server: peer id -> player name.
var names := {}
## Server: peers that finished their script; the demo ends when every expected player did.
var done_peers := {}
var expected_players := 0
var headless := false
var ready_file := ""
## Scripted client state.
var lines_to_send: Array = []
var target := Vector2.ZERO
var chat_seen: Array = []
var reported_done := false
var ui: Dictionary = {}
## Network overlay: per link (peer id), the statistics of the previous refresh and their time.
var previous_stats := {}
## Network overlay: one line per link, as of the last refresh.
var network_lines := PackedStringArray()


func _ready() -> void:
	players = Node2D.new()
	players.name = "Players"
	add_child(players)
	spawner = MultiplayerSpawner.new()
	spawner.name = "PlayerSpawner"
	spawner.spawn_function = _spawn_player
	add_child(spawner)
	spawner.spawn_path = spawner.get_path_to(players)
	var network_timer := Timer.new()
	network_timer.wait_time = NETWORK_EVERY
	network_timer.timeout.connect(_refresh_network)
	add_child(network_timer)
	network_timer.start()
	multiplayer.peer_connected.connect(_on_peer_connected)
	multiplayer.peer_disconnected.connect(_on_peer_disconnected)
	multiplayer.connected_to_server.connect(_on_connected_to_server)
	multiplayer.connection_failed.connect(func(): _say("%s: could not connect" % my_name); _finish(1))
	multiplayer.server_disconnected.connect(func(): _say("%s: the server closed" % my_name); _finish(0))
	var args := {}
	for arg in OS.get_cmdline_user_args():
		var parts := arg.trim_prefix("--").split("=", true, 1)
		args[parts[0]] = parts[1] if parts.size() > 1 else ""
	var port := int(args.get("port", "9090"))
	ready_file = args.get("ready-file", "")
	match args.get("role", ""):
		"server":
			headless = true
			expected_players = int(args.get("players", "2"))
			my_name = "server"
			_host(port)
			get_tree().create_timer(45.0).timeout.connect(func(): _say("server: timed out"); _finish(1))
		"client":
			headless = true
			my_name = args.get("name", "guest")
			lines_to_send = SCRIPTED_LINES.get(my_name, ["hello"]).duplicate()
			target = SCRIPTED_TARGETS.get(my_name, Vector2(200, 200))
			_join("127.0.0.1", port)
			get_tree().create_timer(45.0).timeout.connect(func(): _say("%s: timed out" % my_name); _finish(1))
		_:
			_build_menu()


func _host(port: int) -> void:
	var server := WebSocketServer.new()
	server.heartbeat_interval = HEARTBEAT
	var err := server.create_server(port)
	if err != OK:
		_say("server: cannot listen on port %d (%s)" % [port, error_string(err)])
		_finish(1)
		return
	multiplayer.multiplayer_peer = server
	_say("%s: hosting the lobby on port %d" % [my_name, port])
	if not ready_file.is_empty():
		FileAccess.open(ready_file, FileAccess.WRITE).store_string("ready")
	if not headless:
		_register_player(1, my_name)


func _join(host: String, port: int) -> void:
	var client := WebSocketClient.new()
	client.heartbeat_interval = HEARTBEAT
	var err := client.create_client("ws://%s:%d/lobby" % [host, port])
	if err != OK:
		_say("%s: cannot connect (%s)" % [my_name, error_string(err)])
		_finish(1)
		return
	multiplayer.multiplayer_peer = client


func _on_connected_to_server() -> void:
	_say("%s: joined as peer %d" % [my_name, multiplayer.get_unique_id()])
	register.rpc_id(1, my_name)


func _on_peer_connected(id: int) -> void:
	if multiplayer.is_server():
		_say("server: peer %d connected" % id)


func _on_peer_disconnected(id: int) -> void:
	if not multiplayer.is_server():
		return
	var player_name: String = names.get(id, str(id))
	names.erase(id)
	var player := players.get_node_or_null(str(id))
	if player:
		player.queue_free()
	announce.rpc("%s left" % player_name)
	if headless and names.is_empty() and done_peers.size() >= expected_players:
		_say("server: everyone left, closing")
		_finish(0)


## Client -> server: my name. The server spawns the player everywhere.
@rpc("any_peer", "call_remote", "reliable")
func register(player_name: String) -> void:
	if not multiplayer.is_server():
		return
	_register_player(multiplayer.get_remote_sender_id(), player_name.substr(0, 16))


func _register_player(id: int, player_name: String) -> void:
	names[id] = player_name
	spawner.spawn({"id": id, "name": player_name, "position": Vector2(60 + 60 * names.size(), 60)})
	announce.rpc("%s joined" % player_name)


## Client -> server: a chat line, relayed to everybody with the sender's name.
@rpc("any_peer", "call_local", "reliable")
func send_chat(text: String) -> void:
	if not multiplayer.is_server():
		return
	var sender := multiplayer.get_remote_sender_id()
	if sender == 0:
		sender = 1
	announce.rpc("%s: %s" % [names.get(sender, "?"), text.substr(0, 200)])


## Server -> everybody: a chat or lobby line.
@rpc("authority", "call_local", "reliable")
func announce(text: String) -> void:
	chat_seen.append(text)
	_say("%s sees chat: %s" % [my_name, text])
	if ui.has("chat"):
		ui["chat"].text += text + "\n"


## Client -> server: my script is done (headless demo).
@rpc("any_peer", "call_remote", "reliable")
func script_done() -> void:
	if not multiplayer.is_server():
		return
	done_peers[multiplayer.get_remote_sender_id()] = true
	_say("server: %s finished its script (%d of %d)" % [names.get(multiplayer.get_remote_sender_id(), "?"), done_peers.size(), expected_players])
	if done_peers.size() >= expected_players:
		_say_network()
		everyone_done.rpc()


## Server -> everybody: every scripted player is done; clients leave.
@rpc("authority", "call_remote", "reliable")
func everyone_done() -> void:
	_say("%s: leaving" % my_name)
	multiplayer.multiplayer_peer.close()
	# Leaving on purpose: drop the peer so no server_disconnected follows.
	multiplayer.multiplayer_peer = null
	_finish(0)


func _spawn_player(data: Variant) -> Node:
	var player := Node2D.new()
	player.name = str(data["id"])
	player.position = data["position"]
	player.set_meta("player_name", data["name"])
	var body := ColorRect.new()
	body.size = Vector2(24, 24)
	body.position = Vector2(-12, -12)
	body.color = Color.from_hsv(fmod(float(data["id"]) * 0.618, 1.0), 0.7, 0.9)
	player.add_child(body)
	var label := Label.new()
	label.text = data["name"]
	label.position = Vector2(-12, -34)
	player.add_child(label)
	var sync := MultiplayerSynchronizer.new()
	var config := SceneReplicationConfig.new()
	config.add_property(NodePath(".:position"))
	sync.replication_config = config
	player.add_child(sync)
	# Each player moves its own square: the owning peer is the authority of the node and its sync.
	player.set_multiplayer_authority(data["id"])
	return player


func _process(delta: float) -> void:
	if multiplayer.multiplayer_peer == null or multiplayer.multiplayer_peer is OfflineMultiplayerPeer:
		return
	if multiplayer.multiplayer_peer.get_connection_status() != MultiplayerPeer.CONNECTION_CONNECTED:
		return
	var me := players.get_node_or_null(str(multiplayer.get_unique_id())) as Node2D
	if me == null:
		return
	if headless:
		_run_script(me, delta)
	else:
		var direction := Input.get_vector("ui_left", "ui_right", "ui_up", "ui_down")
		me.position += direction * SPEED * delta


## The scripted (headless) client: chat, walk to the target, then report what it sees.
func _run_script(me: Node2D, delta: float) -> void:
	if not lines_to_send.is_empty() and Engine.get_process_frames() % 20 == 0:
		send_chat.rpc_id(1, lines_to_send.pop_front())
	me.position = me.position.move_toward(target, SPEED * delta)
	if reported_done or not lines_to_send.is_empty() or me.position != target:
		return
	# Done when every other scripted player is seen at its target and their lines arrived.
	for other in players.get_children():
		if other == me:
			continue
		var other_name: String = other.get_meta("player_name", "")
		var other_target: Vector2 = SCRIPTED_TARGETS.get(other_name, Vector2.INF)
		if other.position != other_target:
			return
		for line in SCRIPTED_LINES.get(other_name, []):
			if not chat_seen.has("%s: %s" % [other_name, line]):
				return
		_say("%s sees %s (peer %s) at %s" % [my_name, other_name, other.name, other.position])
	if players.get_child_count() < 2:
		return
	reported_done = true
	_say("%s: reached %s, script done" % [my_name, me.position])
	_say_network()
	script_done.rpc_id(1)


## The links the overlay lists, as [peer id, name, statistics Dictionary, ping in ms] each: on the server
## every connected peer, on a client its link to the server.
func _network_links() -> Array:
	var peer := multiplayer.multiplayer_peer
	var links := []
	if peer is WebSocketServer:
		for id in multiplayer.get_peers():
			var connection: WebSocketConnection = peer.get_peer(id)
			if connection != null:
				links.append([id, names.get(id, "peer %d" % id), connection.get_statistics(), connection.get_round_trip_time()])
	elif peer is WebSocketClient:
		links.append([1, "server", peer.get_statistics(), peer.get_round_trip_time()])
	return links


## Recomputes the overlay's lines: ping, and messages and bytes (on the wire) per second each way
## since the previous refresh.
func _refresh_network() -> void:
	var now := Time.get_ticks_usec()
	var lines := PackedStringArray()
	var seen := {}
	for link in _network_links():
		var id: int = link[0]
		var stats: Dictionary = link[2]
		seen[id] = true
		var before: Dictionary = previous_stats.get(id, {})
		previous_stats[id] = {"time": now, "stats": stats}
		var ping: float = link[3]
		var line := "%-10s ping %s" % [link[1], ("%.1f ms" % ping) if ping > 0.0 else "-"]
		if not before.is_empty():
			var seconds := maxf((now - int(before["time"])) / 1000000.0, 0.001)
			var rate := func(key: String) -> float: return (int(stats.get(key, 0)) - int(before["stats"].get(key, 0))) / seconds
			line += "   in %d msg/s %s/s   out %d msg/s %s/s" % [
				roundi(rate.call("messages_received")), String.humanize_size(roundi(rate.call("wire_bytes_received"))),
				roundi(rate.call("messages_sent")), String.humanize_size(roundi(rate.call("wire_bytes_sent")))]
		lines.append(line)
	for id in previous_stats.keys():
		if not seen.has(id):
			previous_stats.erase(id)
	network_lines = lines
	if ui.has("network"):
		ui["network"].text = "Network (%s)\n%s" % [my_name, "\n".join(lines) if not lines.is_empty() else "no links"]


## Headless: prints the overlay's lines to the transcript.
func _say_network() -> void:
	for line in network_lines:
		_say("%s network: %s" % [my_name, line])


func _finish(code: int) -> void:
	if headless:
		get_tree().quit(code)


func _say(line: String) -> void:
	print("| " + line)


## The window UI: name, address, Host / Join, a chat box.
func _build_menu() -> void:
	var panel := VBoxContainer.new()
	panel.position = Vector2(420, 16)
	panel.custom_minimum_size = Vector2(300, 0)
	var layer := CanvasLayer.new()
	add_child(layer)
	layer.add_child(panel)
	var name_edit := LineEdit.new()
	name_edit.placeholder_text = "your name"
	name_edit.text = "player%d" % (randi() % 1000)
	var address_edit := LineEdit.new()
	address_edit.text = "127.0.0.1:9090"
	var buttons := HBoxContainer.new()
	var host_button := Button.new()
	host_button.text = "Host"
	var join_button := Button.new()
	join_button.text = "Join"
	buttons.add_child(host_button)
	buttons.add_child(join_button)
	var chat := Label.new()
	chat.custom_minimum_size = Vector2(300, 300)
	chat.vertical_alignment = VERTICAL_ALIGNMENT_BOTTOM
	var chat_edit := LineEdit.new()
	chat_edit.placeholder_text = "say something, Enter to send"
	for control in [name_edit, address_edit, buttons, chat, chat_edit]:
		panel.add_child(control)
	var network := Label.new()
	network.position = Vector2(16, 440)
	var monospace := SystemFont.new()
	monospace.font_names = PackedStringArray(["monospace"])
	network.add_theme_font_override("font", monospace)
	network.text = "Network: not connected"
	layer.add_child(network)
	ui = {"chat": chat, "network": network}
	var port_of := func() -> int: return int(address_edit.text.get_slice(":", 1)) if address_edit.text.contains(":") else 9090
	host_button.pressed.connect(func():
		my_name = name_edit.text
		_host(port_of.call())
		buttons.hide())
	join_button.pressed.connect(func():
		my_name = name_edit.text
		_join(address_edit.text.get_slice(":", 0), port_of.call())
		buttons.hide())
	chat_edit.text_submitted.connect(func(text: String):
		if multiplayer.multiplayer_peer and not text.is_empty():
			send_chat.rpc_id(1, text)
			chat_edit.clear())
