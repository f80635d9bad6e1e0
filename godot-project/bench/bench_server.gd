## What the two Godot bench servers share (`ours_server.gd`, `builtin_server.gd`): their command
## line (`-- <echo|tick|tick_batch|tick_text|broadcast|idle> <port> <expected peers> [sized|defaults]
## [inline] [nodeflate]`), the frame settings of each mode, the 100-byte broadcast state and the
## `BENCH peers=N frames=F busy_us=U echoed=E deflated=D` line printed once a second. F and U
## count only frames with every expected peer connected; U is the time spent in the server's own
## calls (poll and sends); D counts the connections that agreed to permessage-deflate (ours only).
## `tick` is echo at 60 frames a second; `tick_batch` (ours only) the same with the
## batch calls; `tick_text` (ours only) the same sending text messages back as text (the
## compression workload's JSON). `defaults` leaves the buffer settings as
## Godot or the addon ships them; `sized` (the default) gives every connection 16 MiB queues.
## `inline` (ours only) sets `use_io_thread = false`: the sockets are served inside `poll()`.
## `nodeflate` (ours only) sets `permessage_deflate = false`; otherwise it stays on, as shipped.
extends SceneTree

var mode := ""
var port := 0
var expected := 0
var peers := 0
var frames := 0
var busy_us := 0
var echoed := 0
## Connections that agreed to permessage-deflate (ours counts them as they open).
var deflated := 0
var tick := 0
var state := PackedByteArray()
var next_report := 0
## Whether the buffer settings stay as shipped (`defaults` on the command line).
var default_buffers := false
## Whether ours runs without its I/O thread (`inline` on the command line).
var inline := false
## Whether ours offers permessage-deflate (not with `nodeflate` on the command line).
var permessage_deflate := true


## Reads the command line and sets the frame rate: echo runs frames back to back, the other
## modes at 60 frames a second.
func read_arguments() -> void:
	var args := OS.get_cmdline_user_args()
	mode = args[0]
	port = int(args[1])
	expected = int(args[2])
	default_buffers = args.size() > 3 and args[3] == "defaults"
	inline = args.slice(4).has("inline")
	permessage_deflate = not args.slice(4).has("nodeflate")
	state.resize(100)
	state.fill(0x42)
	Engine.max_fps = 0 if mode == "echo" else 60
	if echoes():
		# Headless Godot sleeps 6.9 ms a frame by default; echo runs frames back to back, and
		# tick leaves the 60 fps cap alone to set the pace.
		OS.low_processor_usage_mode_sleep_usec = 0
	next_report = Time.get_ticks_msec() + 1000


## Whether this mode echoes every message (`echo` uncapped, `tick`, `tick_batch` and `tick_text`
## at 60 frames a second).
func echoes() -> bool:
	return mode == "echo" or mode == "tick" or mode == "tick_batch" or mode == "tick_text"


## The next broadcast state: the tick number, then filler.
func next_state() -> PackedByteArray:
	state.encode_u64(0, tick)
	tick += 1
	return state


## Counts a frame that began at `start_usec` (if every peer is connected) and prints the
## report once a second.
func end_frame(start_usec: int) -> void:
	if peers >= expected:
		frames += 1
		busy_us += Time.get_ticks_usec() - start_usec
	if Time.get_ticks_msec() >= next_report:
		next_report += 1000
		print("BENCH peers=%d frames=%d busy_us=%d echoed=%d deflated=%d" % [peers, frames, busy_us, echoed, deflated])
