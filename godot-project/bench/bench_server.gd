## What the two Godot bench servers share (`ours_server.gd`, `builtin_server.gd`): their command
## line (`-- <echo|broadcast|idle> <port> <expected peers>`), the frame settings of each mode, the
## 100-byte broadcast state and the `BENCH peers=N frames=F busy_us=U echoed=E` line printed once
## a second. F and U count only frames with every expected peer connected; U is the time spent in
## the server's own calls (poll and sends).
extends SceneTree

var mode := ""
var port := 0
var expected := 0
var peers := 0
var frames := 0
var busy_us := 0
var echoed := 0
var tick := 0
var state := PackedByteArray()
var next_report := 0


## Reads the command line and sets the frame rate: echo runs frames back to back, the other
## modes at 60 frames a second.
func read_arguments() -> void:
	var args := OS.get_cmdline_user_args()
	mode = args[0]
	port = int(args[1])
	expected = int(args[2])
	state.resize(100)
	state.fill(0x42)
	Engine.max_fps = 0 if mode == "echo" else 60
	if mode == "echo":
		# Headless Godot sleeps 6.9 ms a frame by default; echo runs frames back to back.
		OS.low_processor_usage_mode_sleep_usec = 0
	next_report = Time.get_ticks_msec() + 1000


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
		print("BENCH peers=%d frames=%d busy_us=%d echoed=%d" % [peers, frames, busy_us, echoed])
