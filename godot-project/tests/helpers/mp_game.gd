## The node every process of the multiplayer tests shares at /root/Game: the same RPCs, a
## MultiplayerSpawner for players under Game/Players, each player with a MultiplayerSynchronizer
## replicating its position. It records what it sees in `events` as [kind, sender, text].
extends Node

## What this process saw, in order: RPCs as [name, sender id, text] and multiplayer signals.
var events: Array = []


func _ready() -> void:
	var players := Node.new()
	players.name = "Players"
	add_child(players)
	var spawner := MultiplayerSpawner.new()
	spawner.name = "Spawner"
	spawner.spawn_function = _spawn_player
	add_child(spawner)
	spawner.spawn_path = spawner.get_path_to(players)
	multiplayer.peer_connected.connect(func(id): events.append(["peer_connected", id, ""]))
	multiplayer.peer_disconnected.connect(func(id): events.append(["peer_disconnected", id, ""]))
	multiplayer.connected_to_server.connect(func(): events.append(["connected_to_server", multiplayer.get_unique_id(), ""]))
	multiplayer.connection_failed.connect(func(): events.append(["connection_failed", 0, ""]))
	multiplayer.server_disconnected.connect(func(): events.append(["server_disconnected", 0, ""]))


## Server only: spawns a player on every peer.
func spawn_player(player_name: String) -> Node2D:
	return $Spawner.spawn({"name": player_name})


## A player's position as [x, y], or [] when it does not exist here.
func player_position(player_name: String) -> Array:
	var player := get_node_or_null("Players/" + player_name) as Node2D
	return [player.position.x, player.position.y] if player else []


func _spawn_player(data: Variant) -> Node:
	var player := Node2D.new()
	player.name = data["name"]
	var sync := MultiplayerSynchronizer.new()
	var config := SceneReplicationConfig.new()
	config.add_property(NodePath(".:position"))
	sync.replication_config = config
	sync.replication_interval = 0.0
	player.add_child(sync)
	return player


## Any peer to the server.
@rpc("any_peer", "call_remote", "reliable")
func hello(text: String) -> void:
	events.append(["hello", multiplayer.get_remote_sender_id(), text])


## Only the server (the authority) may call it.
@rpc("authority", "call_remote", "reliable")
func welcome(text: String) -> void:
	events.append(["welcome", multiplayer.get_remote_sender_id(), text])


## Runs on the caller too.
@rpc("any_peer", "call_local", "reliable")
func shout(text: String) -> void:
	events.append(["shout", multiplayer.get_remote_sender_id(), text])


## Client to client through the server's relay; asks for unreliable delivery, which WebSocket
## delivers reliably anyway.
@rpc("any_peer", "call_remote", "unreliable")
func direct(text: String) -> void:
	events.append(["direct", multiplayer.get_remote_sender_id(), text])
