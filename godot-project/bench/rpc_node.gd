## The node both RPC bench processes put at /root/Bench (`rpc_bench.gd`): the client calls
## `ping` on the server, the server answers each with `pong` to its sender. Both are reliable RPCs
## through SceneMultiplayer; the payload is 64 bytes, its first 8 the RPC's sequence number. The
## server checks that each client's pings come in order, complete and intact; the client checks
## the pongs (in `rpc_bench.gd`).
extends Node

## Client side: called with (seq, payload) for every pong.
var on_pong := Callable()
## Server side: client id -> the sequence number its next ping must carry.
var next_ping := {}
## Server side: pings answered.
var answered := 0
## Server side: pings missing, out of order or corrupted.
var errors := 0
## The bytes after the sequence number in every payload.
var filler := PackedByteArray()


func _init() -> void:
	filler.resize(56)
	filler.fill(0x5a)


## The payload of RPC number `seq`.
func payload_for(seq: int) -> PackedByteArray:
	var payload := PackedByteArray()
	payload.resize(8)
	payload.encode_u64(0, seq)
	payload.append_array(filler)
	return payload


## Whether `payload` is exactly what `payload_for(seq)` made.
func intact(seq: int, payload: PackedByteArray) -> bool:
	return payload.size() == 64 and payload.decode_u64(0) == seq and payload.slice(8) == filler


@rpc("any_peer", "call_remote", "reliable")
func ping(seq: int, payload: PackedByteArray) -> void:
	var sender := multiplayer.get_remote_sender_id()
	var wanted: int = next_ping.get(sender, 0)
	if seq != wanted or not intact(seq, payload):
		errors += 1
		if errors <= 5:
			print("ERROR ping from %d: expected %d, got %d (%d bytes)" % [sender, wanted, seq, payload.size()])
	next_ping[sender] = seq + 1
	answered += 1
	pong.rpc_id(sender, seq, payload)


@rpc("authority", "call_remote", "reliable")
func pong(seq: int, payload: PackedByteArray) -> void:
	on_pong.call(seq, payload)
