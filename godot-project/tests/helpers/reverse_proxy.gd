## A real nginx or HAProxy for one test, run as the user the tests run as. Its site configuration
## is one of the project's deploy/ files (the ones the deployment guide shows) with the
## placeholders filled in; around it goes what a test needs: in the foreground as one process,
## every file (configuration, certificates, pid, logs, nginx's temporary files) in a folder of its
## own under the user data folder, and connections to the upstream made from a chosen loopback
## address (nginx's proxy_bind, HAProxy's source), so the server can tell the proxy apart from the
## clients. The proxy is killed and its folder removed by stop() or when this object goes: keep it
## in a member of the test, which the runner frees after every test, passed or failed. (Should the
## test process itself die, `cargo xtask test` kills its whole process group, the proxy with it.)
##
##   var proxy := ReverseProxy.new(self)
##   var port := proxy.loopback_port()
##   await proxy.start_nginx({"PLAIN_LISTEN": "127.0.0.1:%d" % port, ...}, "127.0.0.2")
extends RefCounted

## The project's deploy/ folder, next to the Godot project.
const DEPLOY := "res://../deploy"
## The nginx site configuration the deployment guide shows.
const NGINX_SITE := DEPLOY + "/nginx/websocket-rs.conf"
## HAProxy in HTTP mode (X-Forwarded-For, TLS at HAProxy).
const HAPROXY_HTTP := DEPLOY + "/haproxy/websocket-rs-http.cfg"
## HAProxy in TCP mode (a PROXY protocol header before the client's bytes).
const HAPROXY_TCP := DEPLOY + "/haproxy/websocket-rs-tcp.cfg"
## How long a proxy may take to accept connections on every port it was given.
const START_TIMEOUT_S := 15.0

## The folder of this proxy's files (unique per test process and object).
var folder := ""
## The proxy's process id, or -1 before it started.
var pid := -1
## The test (test_case.gd) whose failures this records.
var _test: Node
## Ports handed out by loopback_port(): the proxy must accept on each before start returns.
var _ports: Array[int] = []
## Listeners that hold those ports until the proxy starts, so no two are the same.
var _port_holders: Array[TCPServer] = []


func _init(test: Node) -> void:
	_test = test
	folder = OS.get_user_data_dir().path_join("reverse_proxy_%d_%d" % [OS.get_process_id(), Time.get_ticks_usec()])
	var err := DirAccess.make_dir_recursive_absolute(folder)
	_test.check(err == OK, "cannot create the proxy's folder %s: %s" % [folder, error_string(err)])


func _notification(what: int) -> void:
	# Only members and static functions here: a method of this object cannot be called any more.
	if what == NOTIFICATION_PREDELETE:
		_kill(pid)
		for holder in _port_holders:
			holder.stop()
		_remove_tree(folder)


## A free TCP port on 127.0.0.1 for the proxy to listen on; start_nginx/start_haproxy wait until
## the proxy accepts on every one handed out.
func loopback_port() -> int:
	var holder := TCPServer.new()
	var err := holder.listen(0, "127.0.0.1")
	_test.check(err == OK, "no free port on 127.0.0.1: %s" % error_string(err))
	_port_holders.append(holder)
	_ports.append(holder.get_local_port())
	return _ports.back()


## Saves a key and its certificate as PEM files in the folder; returns the placeholders that
## name them: CERTIFICATE and PRIVATE_KEY (nginx), CERTIFICATE_AND_KEY (HAProxy, one file).
func save_identity(key: CryptoKey, cert: X509Certificate) -> Dictionary:
	var placeholders := {
		"CERTIFICATE": folder.path_join("certificate.pem"),
		"PRIVATE_KEY": folder.path_join("private_key.pem"),
		"CERTIFICATE_AND_KEY": folder.path_join("certificate_and_key.pem"),
	}
	# save(), not save_to_string(): the latter's text ends in a NUL character.
	var saved := [cert.save(placeholders["CERTIFICATE"]), key.save(placeholders["PRIVATE_KEY"])]
	_test.check(saved == [OK, OK], "cannot save the certificate and key in %s: %s" % [folder, saved])
	var combined := FileAccess.get_file_as_bytes(placeholders["CERTIFICATE"]) + FileAccess.get_file_as_bytes(placeholders["PRIVATE_KEY"])
	_write(placeholders["CERTIFICATE_AND_KEY"], combined)
	return placeholders


## Starts WSRS_NGINX with deploy/nginx/websocket-rs.conf, its placeholders (names without the
## @s) from `values`, connecting to the upstream from `upstream_source`. Waits until it accepts on
## every loopback_port(), polling `pollables` meanwhile. Returns whether it runs; a failure is
## recorded in the test with the reason.
func start_nginx(values: Dictionary, upstream_source: String, pollables := []) -> bool:
	var nginx := _program("WSRS_NGINX", "nginx", "nginx")
	var site := _fill(NGINX_SITE, values)
	if nginx.is_empty() or site.is_empty():
		return false
	var site_path := folder.path_join("websocket-rs.conf")
	_write(site_path, site)
	for temporary in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]:
		DirAccess.make_dir_recursive_absolute(folder.path_join(temporary))
	# One process in the foreground, every path inside the folder (Debian's defaults under
	# /var/lib/nginx and /var/log/nginx are root's). -e names the error log nginx opens before it
	# reads this.
	var main := """daemon off;
master_process off;
pid "{folder}/nginx.pid";
error_log "{folder}/error.log" info;
events {
    worker_connections 256;
}
http {
    access_log "{folder}/access.log";
    client_body_temp_path "{folder}/client_body";
    proxy_temp_path "{folder}/proxy";
    fastcgi_temp_path "{folder}/fastcgi";
    uwsgi_temp_path "{folder}/uwsgi";
    scgi_temp_path "{folder}/scgi";
    # The tests only: the upstream sees nginx at an address of its own.
    proxy_bind {source};
    include "{site}";
}
""".format({"folder": folder, "source": upstream_source, "site": site_path})
	var main_path := folder.path_join("nginx.conf")
	_write(main_path, main)
	var error_log := folder.path_join("error.log")
	return await _start("nginx", nginx, PackedStringArray(["-p", folder + "/", "-c", main_path, "-e", error_log]), error_log, pollables)


## Starts WSRS_HAPROXY with `site` (HAPROXY_HTTP or HAPROXY_TCP), its placeholders (names without
## the @s) from `values`, connecting to the upstream (and sending its health checks) from
## `upstream_source`. Waits until it accepts on every loopback_port(), polling `pollables`
## meanwhile. Returns whether it runs; a failure is recorded in the test with the reason.
func start_haproxy(site: String, values: Dictionary, upstream_source: String, pollables := []) -> bool:
	var haproxy := _program("WSRS_HAPROXY", "HAProxy", "haproxy")
	var site_text := _fill(site, values)
	if haproxy.is_empty() or site_text.is_empty():
		return false
	var site_path := folder.path_join(site.get_file())
	_write(site_path, site_text)
	# What /etc/haproxy/haproxy.cfg would hold: nothing but what the tests need. In the foreground
	# (-db), as the test's user, no chroot, no stats socket; its messages go to the test's output.
	var main := """global
    maxconn 256

defaults
    # The tests only: the upstream sees HAProxy at an address of its own.
    source {source}
""".format({"source": upstream_source})
	var main_path := folder.path_join("haproxy.cfg")
	_write(main_path, main)
	return await _start("HAProxy", haproxy, PackedStringArray(["-db", "-f", main_path, "-f", site_path]), "", pollables)


## Whether the proxy process is still running.
func is_running() -> bool:
	return pid > 0 and OS.is_process_running(pid)


## Kills the proxy (if it runs) and removes its folder.
func stop() -> void:
	_kill(pid)
	pid = -1
	for holder in _port_holders:
		holder.stop()
	_port_holders.clear()
	_remove_tree(folder)


## The program in environment variable `variable`, or "" after recording why it is missing.
func _program(variable: String, proxy_name: String, package: String) -> String:
	var path := OS.get_environment(variable)
	if path.is_empty():
		_test.check(false, "%s is not set: %s (the Debian package `%s`) could not be provided; `cargo xtask test` prints why at its start"
			% [variable, proxy_name, package])
	return path


## The template at `template` with each @NAME@ replaced by values[NAME], or "" after recording a
## failure (unreadable, or a placeholder left unfilled).
func _fill(template: String, values: Dictionary) -> String:
	var path := ProjectSettings.globalize_path(template).simplify_path()
	var text := FileAccess.get_file_as_string(path)
	if text.is_empty():
		_test.check(false, "cannot read the proxy configuration %s: %s" % [path, error_string(FileAccess.get_open_error())])
		return ""
	for name in values:
		text = text.replace("@%s@" % name, str(values[name]))
	var left := RegEx.create_from_string("@[A-Z_]+@").search(text)
	if left != null:
		_test.check(false, "placeholder %s of %s was not filled in" % [left.get_string(), path])
		return ""
	return text


## Starts `program` and waits until it accepts on every port handed out; on failure records why,
## with the end of `log_path` (nginx's error log; HAProxy prints to the test's output).
func _start(proxy_name: String, program: String, args: PackedStringArray, log_path: String, pollables: Array) -> bool:
	for holder in _port_holders:
		holder.stop()
	_port_holders.clear()
	pid = OS.create_process(program, args)
	if pid <= 0:
		_test.check(false, "could not start %s (%s)" % [proxy_name, program])
		return false
	var waiting := _ports.duplicate()
	var probe := [null]  # the connection being tried, in an Array so the lambda can replace it
	var accepting := func() -> bool:
		if not OS.is_process_running(pid):
			return true
		if probe[0] == null:
			probe[0] = StreamPeerTCP.new()
			probe[0].connect_to_host("127.0.0.1", waiting[0])
		probe[0].poll()
		match probe[0].get_status():
			StreamPeerTCP.STATUS_CONNECTED:
				probe[0].disconnect_from_host()
				probe[0] = null
				waiting.pop_front()
			StreamPeerTCP.STATUS_ERROR, StreamPeerTCP.STATUS_NONE:
				probe[0] = null  # refused: not listening yet, try again next frame
		return waiting.is_empty()
	var started: bool = await _test.until(accepting, pollables, START_TIMEOUT_S, "%s to accept connections on %s" % [proxy_name, _ports])
	if not OS.is_process_running(pid):
		var tail := ""
		if not log_path.is_empty() and FileAccess.file_exists(log_path):
			tail = ": " + " / ".join(FileAccess.get_file_as_string(log_path).strip_edges().split("\n").slice(-5))
		_test.check(false, "%s (%s) exited at startup%s (its messages are in the test's output)" % [proxy_name, program, tail])
		return false
	return started


## Writes `content` (a String or a PackedByteArray) to the file at `path`, recording a failure if
## it cannot.
func _write(path: String, content: Variant) -> void:
	var file := FileAccess.open(path, FileAccess.WRITE)
	if file == null:
		_test.check(false, "cannot write %s: %s" % [path, error_string(FileAccess.get_open_error())])
		return
	if content is PackedByteArray:
		file.store_buffer(content)
	else:
		file.store_string(content)


## Kills the process `process_id` if it still runs (once only: Godot's OS.kill also reaps it, and
## asking about a reaped process afterwards is an engine error).
static func _kill(process_id: int) -> void:
	if process_id > 0 and OS.is_process_running(process_id):
		OS.kill(process_id)


## Removes the folder at `path` with everything in it (nothing for "" or a missing folder).
static func _remove_tree(path: String) -> void:
	if path.is_empty() or not DirAccess.dir_exists_absolute(path):
		return
	for sub in DirAccess.get_directories_at(path):
		_remove_tree(path.path_join(sub))
	for file in DirAccess.get_files_at(path):
		DirAccess.remove_absolute(path.path_join(file))
	DirAccess.remove_absolute(path)
