## A dedicated game server with websocket-rs: a chat relay that a process manager (systemd,
## Docker) can run, health-check, drain and stop. The deployment guide, docs/deployment.md,
## explains every part of it. Copy it into your project (next to project.godot, with
## addons/websocket_rs/) and run it headless:
##
##   godot --headless --path /srv/game -s res://dedicated_server.gd -- --port=9080
##
## (a headless export runs it the same way: ./game.x86_64 --headless -s res://dedicated_server.gd -- ...)
##
## Settings come from `--name=value` arguments after `--`, else from environment variables, else
## the defaults below (run it with -- --help for the list).
##
## Stopping: Godot 4.6 on Linux installs no handler for SIGTERM, SIGINT or SIGHUP, so any of
## them ends the process at once (players are dropped without a close frame) and GDScript never
## hears of it. The graceful stop is a file instead: when the drain file appears, the server
## drains (new players and the health check get HTTP 503, players already in get drain_grace
## seconds, then a close with 1001 "going away") and the process exits with code 0 once the last
## one has left, or drain_timeout seconds after the grace at the latest. The systemd unit's
## ExecStop= and the container's entrypoint create that file (deploy/websocket-rs-server.service,
## deploy/Dockerfile).
##
## Certificates: with a key and certificate the server serves wss:// itself, and it checks the
## two files every tls_check_interval seconds; new contents are loaded with reload_tls(): new
## connections get the new certificate, players already connected stay.
extends SceneTree

## Every setting: [name, environment variable, default, help].
const SETTINGS := [
	["port", "WSRS_PORT", "9080", "TCP port to listen on"],
	["bind", "WSRS_BIND", "*", "address to listen on: * (every interface) or e.g. 127.0.0.1 behind a proxy on this host"],
	["health-path", "WSRS_HEALTH_PATH", "/healthz", "path answered 200 ok (503 while draining or full); empty: off"],
	["drain-file", "WSRS_DRAIN_FILE", "user://drain", "when this file appears, the server drains and quits"],
	["drain-grace", "WSRS_DRAIN_GRACE", "30", "seconds players may stay after a drain starts"],
	["drain-timeout", "WSRS_DRAIN_TIMEOUT", "10", "seconds after the grace before quitting anyway"],
	["trusted-proxies", "WSRS_TRUSTED_PROXIES", "", "comma-separated addresses or CIDR ranges of reverse proxies"],
	["max-connections", "WSRS_MAX_CONNECTIONS", "1000", "players beyond this many get HTTP 503 (0: no limit)"],
	["heartbeat", "WSRS_HEARTBEAT", "20", "seconds between pings; a player silent for two is dropped (0: off)"],
	["private-key", "WSRS_PRIVATE_KEY", "", "PEM private key: serve wss:// (with certificate)"],
	["certificate", "WSRS_CERTIFICATE", "", "PEM certificate chain (e.g. fullchain.pem)"],
	["tls-check-interval", "WSRS_TLS_CHECK_INTERVAL", "60", "seconds between checks of the key and certificate files"],
	["fps", "WSRS_FPS", "60", "frames per second: how often the server polls (0: as fast as possible)"],
]

var server := WebSocketServer.new()
## The settings in effect, by name (strings, as given).
var config := {}
## The drain file as an absolute path.
var drain_file := ""
## Ticks (ms) after which a drain gives up waiting for `drained`; 0 while not draining.
var quit_deadline_ms := 0
## Ticks (ms) of the next look at the drain file and the TLS files.
var next_file_check_ms := 0
var next_tls_check_ms := 0
## Contents (MD5 of key and certificate) of the TLS files in use, and at the previous check.
var tls_loaded := ""
var tls_seen := ""


func _initialize() -> void:
	var parsed := parse_settings(OS.get_cmdline_user_args())
	if parsed.has("error"):
		printerr(parsed["error"])
		printerr(usage())
		quit(2)
		return
	if parsed.has("help"):
		print(usage())
		quit(0)
		return
	config = parsed
	Engine.max_fps = int(config["fps"])
	drain_file = ProjectSettings.globalize_path(config["drain-file"])
	# A file left by an earlier run (a container restarted after `docker stop`) is no request.
	DirAccess.remove_absolute(drain_file)
	var err := start()
	if err != OK:
		printerr("dedicated_server: cannot listen on %s:%s: %s" % [config["bind"], config["port"], error_string(err)])
		quit(1)


## Configures the server from `config` and listens.
func start() -> Error:
	server.bind_ip = config["bind"]
	server.health_check_path = config["health-path"]
	server.max_connections = int(config["max-connections"])
	server.heartbeat_interval = float(config["heartbeat"])
	var proxies := PackedStringArray()
	for entry in config["trusted-proxies"].split(",", false):
		proxies.append(entry.strip_edges())
	server.trusted_proxies = proxies
	var tls: bool = not config["private-key"].is_empty() or not config["certificate"].is_empty()
	if tls:
		var identity := load_identity()
		if identity.is_empty():
			return ERR_INVALID_DATA
		server.private_key = identity[0]
		server.ssl_certificate = identity[1]
		tls_loaded = tls_signature()
		tls_seen = tls_loaded
	server.client_connected.connect(_on_client_connected)
	server.client_disconnected.connect(_on_client_disconnected)
	server.data_received.connect(_on_data_received)
	server.drained.connect(_on_drained)
	var err := server.listen(int(config["port"]))
	if err == OK:
		print("dedicated_server: listening on %s:%d (%s), health check %s, drain file %s" % [config["bind"],
			server.get_local_port(), "wss://" if tls else "ws://", config["health-path"], drain_file])
	return err


func _process(_delta: float) -> bool:
	server.poll()
	var now := Time.get_ticks_msec()
	if now >= next_file_check_ms:
		next_file_check_ms = now + 250
		if quit_deadline_ms == 0 and FileAccess.file_exists(drain_file):
			begin_drain()
	if quit_deadline_ms > 0 and now >= quit_deadline_ms:
		print("dedicated_server: players still connected %s s after the grace; quitting anyway" % config["drain-timeout"])
		finish()
	if not tls_loaded.is_empty() and now >= next_tls_check_ms:
		next_tls_check_ms = now + int(float(config["tls-check-interval"]) * 1000.0)
		check_tls_files()
	return false


## Stops taking players; the process quits on `drained` (or at quit_deadline_ms).
func begin_drain() -> void:
	var grace := float(config["drain-grace"])
	print("dedicated_server: draining: new players get 503, the ones here have %.0f s" % grace)
	server.drain(grace)
	quit_deadline_ms = Time.get_ticks_msec() + int((grace + float(config["drain-timeout"])) * 1000.0)


func _on_drained() -> void:
	print("dedicated_server: drained, every player has left")
	finish()


## Stops listening, removes the drain file and quits with code 0.
func finish() -> void:
	quit_deadline_ms = 0
	server.stop()
	DirAccess.remove_absolute(drain_file)
	quit(0)


## Reloads the key and certificate when the files have new contents that did not change since
## the previous check (so a renewal caught half-copied is taken at the next check).
func check_tls_files() -> void:
	var signature := tls_signature()
	var settled := signature == tls_seen
	tls_seen = signature
	if signature == tls_loaded or not settled:
		return
	tls_loaded = signature  # tried once per new contents, whether they load or not
	var identity := load_identity()
	if identity.is_empty():
		return
	var err := server.reload_tls(identity[0], identity[1])
	if err == OK:
		print("dedicated_server: new TLS certificate loaded; players already connected keep theirs")
	else:
		printerr("dedicated_server: reload_tls failed (%s); the previous certificate stays" % error_string(err))


## MD5 of the key file and of the certificate file.
func tls_signature() -> String:
	return FileAccess.get_md5(config["private-key"]) + FileAccess.get_md5(config["certificate"])


## [CryptoKey, X509Certificate] from the configured files, or [] after printing why not.
func load_identity() -> Array:
	var key := CryptoKey.new()
	var cert := X509Certificate.new()
	var loaded := [key.load(config["private-key"]), cert.load(config["certificate"])]
	if loaded != [OK, OK]:
		printerr("dedicated_server: cannot load the private key %s (%s) and certificate %s (%s)" % [config["private-key"],
			error_string(loaded[0]), config["certificate"], error_string(loaded[1])])
		return []
	return [key, cert]


func _on_client_connected(id: int, _protocol: String, _path: String) -> void:
	print("dedicated_server: player %d joined from %s" % [id, server.get_peer_address(id)])


func _on_client_disconnected(id: int, was_clean: bool) -> void:
	print("dedicated_server: player %d left%s" % [id, "" if was_clean else " (connection lost)"])


## The chat: every message goes to every player (its sender included), text as text.
func _on_data_received(id: int) -> void:
	var peer: WebSocketConnection = server.get_peer(id)
	while peer.get_available_packet_count() > 0:
		var message := peer.get_packet()
		var mode := WebSocketConnection.WRITE_MODE_TEXT if peer.was_string_packet() else WebSocketConnection.WRITE_MODE_BINARY
		server.broadcast(message, mode)


## The settings from `args` (`--name=value`), the environment and the defaults, by name; a
## dictionary with "error" for an unknown or malformed argument, with "help" for --help.
static func parse_settings(args: PackedStringArray) -> Dictionary:
	var result := {}
	for setting in SETTINGS:
		var from_env := OS.get_environment(setting[1])
		result[setting[0]] = from_env if OS.has_environment(setting[1]) else setting[2]
	for arg in args:
		if arg == "--help" or arg == "-h":
			return {"help": true}
		var pair := arg.trim_prefix("--").split("=", true, 1)
		if not arg.begins_with("--") or pair.size() != 2 or not result.has(pair[0]):
			return {"error": "dedicated_server: unknown argument %s" % arg}
		result[pair[0]] = pair[1]
	for number in ["port", "drain-grace", "drain-timeout", "max-connections", "heartbeat", "tls-check-interval", "fps"]:
		if not result[number].is_valid_float() or float(result[number]) < 0.0:
			return {"error": "dedicated_server: --%s must be a number >= 0, not \"%s\"" % [number, result[number]]}
	return result


## The command line help.
static func usage() -> String:
	var text := "usage: godot --headless [--path PROJECT] -s res://dedicated_server.gd -- [--name=value ...]\n"
	for setting in SETTINGS:
		text += "  --%s (%s, default \"%s\"): %s\n" % setting
	return text
