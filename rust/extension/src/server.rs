//! `WebSocketServer`: the Godot face of `websocket_rs_core::Server`.

use std::collections::HashMap;
use std::time::Instant;

use godot::classes::multiplayer_peer::ConnectionStatus;
use godot::global::Error as GodotError;
use godot::prelude::*;
use websocket_rs_core::{Bytes, ConnectionConfig, Error, Packet, PeerId, Recipients, Report, ReportLimiter, Server, ServerEvent};

use crate::connection::WebSocketConnection;
use crate::errors;
use crate::multiplayer_peer::{websocket_multiplayer_peer, Endpoint};
use crate::settings::{self, OptionalTls};

/// `bind_ip`'s default: every interface, IPv4 and IPv6.
const ALL_INTERFACES: &str = "*";

/// Failed handshakes printed as warnings in any one second; the rest are counted only
/// (`get_statistics()`: `failed_handshakes`, `refused`).
const HANDSHAKE_WARNINGS_PER_SECOND: u32 = 10;

websocket_multiplayer_peer! {
    /// A WebSocket server: accepts clients and emits a signal for each connect, message and
    /// disconnect.
    ///
    /// Call `listen(port)`, then `poll()` every frame: `poll()` takes in what the background I/O
    /// thread did and emits the signals. Reach a client with `get_peer(id)`, a
    /// `WebSocketConnection` (a `PacketPeer`: `put_packet`, `get_packet`, `put_var`, `get_var`).
    /// Client ids are random, from 2 to 2^31 - 1. Every failing call returns an `Error` and
    /// prints what was wrong.
    ///
    /// Keep the server in a member variable, as below: a lambda that captures a server held only
    /// in a local variable and is connected to one of its signals keeps it alive forever.
    /// ```gdscript
    /// extends Node
    ///
    /// var server := WebSocketServer.new()
    ///
    /// func _ready() -> void:
    ///     server.client_connected.connect(func(id, protocol, path): print("client %d joined on %s" % [id, path]))
    ///     server.client_disconnected.connect(func(id, was_clean): print("client %d left" % id))
    ///     server.data_received.connect(_on_data)
    ///     var err := server.listen(9080)
    ///     assert(err == OK)
    ///
    /// func _process(_delta: float) -> void:
    ///     server.poll()
    ///
    /// func _on_data(id: int) -> void:
    ///     var peer := server.get_peer(id)
    ///     peer.put_packet(peer.get_packet())  # echo it back
    /// ```
    /// It is also a `MultiplayerPeer`: after `create_server(port)` (or `listen(port, [], true)`),
    /// set it as `multiplayer.multiplayer_peer` and `@rpc`, `MultiplayerSpawner` and
    /// `MultiplayerSynchronizer` work over it, with the wire format of Godot's own
    /// `WebSocketMultiplayerPeer`. Every packet is delivered reliably and in order, whatever the
    /// transfer mode. Set `private_key` and `ssl_certificate` to serve wss://.
    class WebSocketServer {
        /// The engine-free server: sockets, peers and their queues.
        core: Server,
        /// The address `listen` binds: `"*"` (the default) for every interface, IPv4 and IPv6,
        /// or one IP address such as `"127.0.0.1"` (loopback only).
        ///
        /// Anything else makes `listen` return `ERR_INVALID_PARAMETER`.
        #[var]
        #[init(val = GString::from(ALL_INTERFACES))]
        bind_ip: GString,
        /// Most connections at once, open or still handshaking; 0 (the default) is no limit.
        ///
        /// A connection beyond it is answered HTTP 503 and closed. Read by `listen`; a negative
        /// number makes it return `ERR_INVALID_PARAMETER`.
        #[var]
        #[init(val = ConnectionConfig::default().max_connections.map_or(0, settings::int))]
        max_connections: i64,
        /// Origins a browser may connect from. Default: empty (any).
        ///
        /// When not empty, a browser whose `Origin` header is not in this list is answered
        /// HTTP 403. Clients that send no `Origin` (native games, servers) are not affected.
        /// Read by `listen`.
        /// ```gdscript
        /// server.allowed_origins = ["https://mygame.example"]
        /// ```
        #[var]
        allowed_origins: PackedStringArray,
        /// The private key for wss:// (TLS). Default: null (plain ws://).
        ///
        /// Set it together with `ssl_certificate`; `listen` returns `ERR_INVALID_PARAMETER`
        /// when only one of them is set or one is empty.
        /// ```gdscript
        /// server.private_key = load("res://certs/privkey.key")
        /// server.ssl_certificate = load("res://certs/fullchain.crt")
        /// server.listen(9443)
        /// ```
        #[var]
        private_key: Option<Gd<godot::classes::CryptoKey>>,
        /// The certificate (with its chain, if the file holds one) served for wss://, with
        /// `private_key`. Default: null (plain ws://).
        #[var]
        ssl_certificate: Option<Gd<godot::classes::X509Certificate>>,
        /// Intermediate certificates sent after `ssl_certificate`. Default: null (none).
        #[var]
        ca_chain: Option<Gd<godot::classes::X509Certificate>>,
        /// When true, every upgrade request waits for your verdict: `handshake_requested` gives
        /// its path, headers and address, and you answer with `accept_handshake(id)` or
        /// `reject_handshake(id, status)`, now or frames later (the game does not block). A
        /// request not answered within `handshake_timeout` is refused with HTTP 503. Default:
        /// false (every valid upgrade is accepted). Read by `listen`; in multiplayer mode too,
        /// where `peer_connected` comes only after an accept.
        /// ```gdscript
        /// server.verify_handshakes = true
        /// server.handshake_requested.connect(func(id, path, headers, address):
        ///     if headers.get("authorization", "") == "Bearer " + token:
        ///         server.accept_handshake(id, ["X-Session: %d" % id])
        ///     else:
        ///         server.reject_handshake(id, 401, "bad token"))
        /// ```
        #[var]
        verify_handshakes: bool,
        /// Addresses and CIDR ranges of your reverse proxies (nginx, HAProxy, a load balancer),
        /// e.g. `["127.0.0.1", "10.0.0.0/8", "fd00::/8"]`. Default: empty.
        ///
        /// For a connection from one of them, the client's address is taken from the
        /// `Forwarded` or `X-Forwarded-For` header (or the PROXY protocol header with
        /// `proxy_protocol`), so `get_peer_address` and `get_connected_host` give the real
        /// client. Everyone else's forwarding headers are ignored. Read by `listen`; a malformed
        /// entry makes it return `ERR_INVALID_PARAMETER`.
        #[var]
        trusted_proxies: PackedStringArray,
        /// When true, a connection from an address in `trusted_proxies` must start with a PROXY
        /// protocol header (v1 or v2, as HAProxy's `send-proxy` or an AWS NLB send); it gives the
        /// client's address and port. A connection from a trusted proxy without a valid one is
        /// closed (only that one). Default: false. Read by `listen`.
        #[var]
        proxy_protocol: bool,
        /// A path answered as a health check, e.g. `"/healthz"`: a plain HTTP GET (or HEAD) of it
        /// on the listening port gets 200, or 503 while draining (and at `max_connections`). Other
        /// plain requests are closed without an answer, as before. Default: "" (off). Read by
        /// `listen`.
        /// ```gdscript
        /// server.health_check_path = "/healthz"   # curl http://host:9080/healthz -> ok
        /// ```
        #[var]
        health_check_path: GString,
        /// Connection objects handed out by `get_peer`, so the same id gives the same object.
        connections: HashMap<PeerId, Gd<WebSocketConnection>>,
        /// Keeps a flood of failed handshakes (slow or half-open connections timing out
        /// together) from flooding the output: a few warnings a second, and how many were not
        /// printed.
        #[init(val = ReportLimiter::new(HANDSHAKE_WARNINGS_PER_SECOND))]
        handshake_warnings: ReportLimiter,
    }
    signals {
        /// A client finished its handshake and can now send and receive.
        ///
        /// `protocol` is the sub-protocol chosen ("" when none), `resource_name` the path and
        /// query the client asked for (e.g. `"/chat?room=1"`). `peer_connected(id)` follows.
        fn client_connected(id: i64, protocol: GString, resource_name: GString);
        /// A client is gone: `was_clean_close` is true when the close handshake completed, false
        /// when the connection was lost or dropped. `peer_disconnected(id)` follows; the id is
        /// unknown after this, though packets it sent before can still be read from the
        /// `WebSocketConnection` got earlier.
        fn client_disconnected(id: i64, was_clean_close: bool);
        /// A client sent a close frame with `code` and `reason`. The reply is sent for you; keep
        /// polling until `client_disconnected`.
        fn client_close_request(id: i64, code: i64, reason: GString);
        /// A message from this client is waiting: read it with `get_peer(id).get_packet()`. Emitted
        /// once per message, in raw mode only (in multiplayer mode SceneMultiplayer takes the
        /// packets).
        fn data_received(id: i64);
        /// With `verify_handshakes`: a client asks to connect. `resource_name` is the path and
        /// query (e.g. `"/play?room=2"`), `headers` every request header (names in lower case;
        /// a repeated header's values joined with ", "), `address` the client's IP address
        /// (after `trusted_proxies`). Answer with `accept_handshake(id)` or
        /// `reject_handshake(id, status)`, within `handshake_timeout`.
        fn handshake_requested(id: i64, resource_name: GString, headers: VarDictionary, address: GString);
        /// After `drain()`: the last client has left. The server still answers 503 until `stop()`.
        fn drained();
    }
    extra_virtuals {
        fn set_refuse_new_connections(&mut self, enable: bool) {
            self.core.set_refuse_new_connections(enable);
        }

        fn is_refusing_new_connections(&self) -> bool {
            self.core.is_refusing_new_connections()
        }
    }
}

#[godot_api(secondary)]
impl WebSocketServer {
    /// Starts listening on `port` at `bind_ip`; 0 picks a free port (see `get_local_port`).
    ///
    /// `protocols` are the sub-protocols offered (empty: `supported_protocols`). `gd_mp_api` =
    /// true is multiplayer mode, for use as `multiplayer.multiplayer_peer`. The properties are read
    /// now, for the connections of this run; wss:// when `private_key` and `ssl_certificate` are
    /// set.
    ///
    /// Returns `OK`; `ERR_ALREADY_IN_USE` when already listening (call `stop()` first) or when
    /// the port is taken; `ERR_INVALID_PARAMETER` for a port outside 0-65535, a bad `bind_ip` or
    /// an invalid property; `ERR_CANT_CREATE` when the socket cannot be opened.
    /// ```gdscript
    /// server.listen(9080, ["chat"])
    /// ```
    #[func]
    fn listen(
        &mut self,
        port: i64,
        #[opt(default = &PackedStringArray::new())] protocols: PackedStringArray,
        #[opt(default = false)] gd_mp_api: bool,
    ) -> GodotError {
        let bind_ip = self.bind_ip.to_string();
        let tls = match crate::tls::server_from_properties(self.private_key.as_ref(), self.ssl_certificate.as_ref(), self.ca_chain.as_ref()) {
            Ok(tls) => tls,
            Err(err) => return errors::report("listen", &err),
        };
        self.start("listen", port, &bind_ip, &protocols, gd_mp_api, tls)
    }

    /// Godot 4's entry point: listens on `port` at `bind_address` in multiplayer mode, for use as
    /// `multiplayer.multiplayer_peer`.
    ///
    /// `TLSOptions.server(key, certificate)` serves wss://; null uses the `private_key` /
    /// `ssl_certificate` properties (plain ws:// when they are unset). Returns what `listen`
    /// returns, or `ERR_INVALID_PARAMETER` for client `TLSOptions`.
    /// ```gdscript
    /// var peer := WebSocketServer.new()
    /// peer.create_server(9090)
    /// multiplayer.multiplayer_peer = peer
    /// ```
    #[func]
    fn create_server(
        &mut self,
        port: i64,
        #[opt(default = ALL_INTERFACES)] bind_address: GString,
        #[opt(default = OptionalTls(None))] tls_server_options: OptionalTls,
    ) -> GodotError {
        let tls = match &tls_server_options.0 {
            Some(options) => crate::tls::server_from_options(options).map(Some),
            None => crate::tls::server_from_properties(self.private_key.as_ref(), self.ssl_certificate.as_ref(), self.ca_chain.as_ref()),
        };
        let tls = match tls {
            Ok(tls) => tls,
            Err(err) => return errors::report("create_server", &err),
        };
        self.start("create_server", port, &bind_address.to_string(), &PackedStringArray::new(), true, tls)
    }

    fn start(
        &mut self,
        context: &str,
        port: i64,
        bind_ip: &str,
        protocols: &PackedStringArray,
        multiplayer: bool,
        tls: Option<websocket_rs_core::TlsServerSettings>,
    ) -> GodotError {
        let mut config = match self.connection_properties(multiplayer).to_config(protocols, &PackedStringArray::new()) {
            Ok(config) => config,
            Err(err) => return errors::report(context, &err),
        };
        config.tls_server = tls;
        config.max_connections = match self.max_connections {
            0 => None,
            n if n > 0 => usize::try_from(n).ok(),
            n => {
                return errors::report(context, &Error::InvalidArgument(format!("max_connections must be 0 (no limit) or positive, not {n}")));
            }
        };
        config.allowed_origins = self.allowed_origins.as_slice().iter().map(GString::to_string).collect();
        config.verify_handshakes = self.verify_handshakes;
        config.trusted_proxies = self.trusted_proxies.as_slice().iter().map(GString::to_string).collect();
        config.proxy_protocol = self.proxy_protocol;
        config.health_check_path = self.health_check_path.to_string();
        let result = settings::bind_address(bind_ip, port).and_then(|addr| self.core.listen(addr, config));
        if result.is_ok() {
            self.multiplayer = multiplayer;
            self.connections.clear();
            if self.verify_handshakes && !self.base().has_connections("handshake_requested") {
                godot_warn!(
                    "WebSocketServer.{context}: verify_handshakes is on but nothing is connected to handshake_requested yet; unanswered clients are refused with 503 at handshake_timeout"
                );
            }
        }
        errors::to_godot(context, result)
    }

    /// Sets `handshake_headers`: extra `"Name: value"` lines in every handshake response, from the
    /// next `listen` on. Godot 3's name for it.
    #[func]
    fn set_extra_headers(&mut self, #[opt(default = &PackedStringArray::new())] headers: PackedStringArray) {
        self.handshake_headers = headers;
    }

    /// Debug builds only: panics, to prove that a panic inside the extension is caught and
    /// reported instead of taking the engine down (used by the hostile-call tests).
    #[cfg(debug_assertions)]
    #[func]
    fn debug_force_panic(&self) -> GodotError {
        #[allow(clippy::panic)]
        {
            panic!("forced panic for the tests");
        }
    }

    /// The IP address of the client with this id, e.g. `"127.0.0.1"`. An unknown id prints an
    /// error and returns "".
    #[func]
    fn get_peer_address(&self, id: i64) -> GString {
        match self.core_peer("get_peer_address", id) {
            Some(peer) => peer.remote_addr().map(|a| GString::from(&a.ip().to_string())).unwrap_or_default(),
            None => GString::new(),
        }
    }

    /// The port the client with this id connects from. An unknown id prints an error and
    /// returns 0.
    #[func]
    fn get_peer_port(&self, id: i64) -> i64 {
        match self.core_peer("get_peer_port", id) {
            Some(peer) => peer.remote_addr().map_or(0, |a| i64::from(a.port())),
            None => 0,
        }
    }

    /// Stops the server: every client is sent close code 1001 ("going away") and forgotten at
    /// once, and the port is freed. `listen` may be called again.
    #[func]
    fn stop(&mut self) {
        self.core.stop();
        self.connections.clear();
    }

    /// Whether the server is listening (between a successful `listen` and `stop`).
    #[func]
    fn is_listening(&self) -> bool {
        self.core.is_listening()
    }

    /// The port the server is bound to, useful after `listen(0)`; 0 when not listening.
    #[func]
    fn get_local_port(&self) -> i64 {
        self.core.local_addr().map_or(0, |a| i64::from(a.port()))
    }

    /// Whether a client with this id is connected (from `client_connected` to
    /// `client_disconnected`).
    #[func]
    fn has_peer(&self, id: i64) -> bool {
        i32::try_from(id).is_ok_and(|id| self.core.has_peer(id))
    }

    /// The connection of the client with this id: the same `WebSocketConnection` each time for
    /// the same id. An unknown id prints an error and returns null.
    /// ```gdscript
    /// server.get_peer(id).send_text("welcome")
    /// ```
    #[func]
    fn get_peer(&mut self, id: i64) -> Option<Gd<WebSocketConnection>> {
        if let Some(existing) = i32::try_from(id).ok().and_then(|id| self.connections.get(&id)) {
            return Some(existing.clone());
        }
        let peer = self.core_peer("get_peer", id)?.clone();
        let connection = WebSocketConnection::wrap(peer.clone());
        self.connections.insert(peer.id(), connection.clone());
        Some(connection)
    }

    /// Raw mode: takes every waiting packet of every client at once, as a `Dictionary` from
    /// client id to its packets (an `Array[PackedByteArray]`, oldest first). Clients with nothing
    /// waiting are left out; empty when nothing waits.
    ///
    /// One call instead of `data_received` and `get_packet()` per message: a server that takes
    /// packets this way need not connect `data_received` (with nothing connected, `poll()` emits
    /// no signal per message). Text messages come as their UTF-8 bytes. Costs in proportion to
    /// the clients that sent something, not to the connected ones. Not in multiplayer mode
    /// (prints an error, `ERR_UNAVAILABLE`, and returns an empty dictionary).
    /// ```gdscript
    /// func _process(_delta):
    ///     server.poll()
    ///     var packets := server.get_all_packets()
    ///     for id in packets:
    ///         server.get_peer(id).send_packets(packets[id])   # echo
    /// ```
    #[func]
    fn get_all_packets(&mut self) -> VarDictionary {
        let mut taken = Vec::new();
        let mut packets = VarDictionary::new();
        if let Err(err) = self.core.take_all_packets(&mut taken) {
            errors::report("get_all_packets", &err);
            return packets;
        }
        for (id, batch) in &taken {
            packets.set(i64::from(*id), &crate::connection::packets_to_array(batch));
        }
        packets
    }

    /// The ids of every connected client (open or closing), in no particular order.
    /// ```gdscript
    /// for id in server.get_peer_ids():
    ///     server.get_peer(id).send_text("round over")
    /// ```
    #[func]
    fn get_peer_ids(&self) -> PackedInt32Array {
        self.core.peer_ids().collect()
    }

    /// Sends one `message` to every open client but those in `exclude`: as binary
    /// (`WebSocketConnection.WRITE_MODE_BINARY`, the default) or text (`WRITE_MODE_TEXT`). The
    /// bytes are copied once and shared by every client's queue.
    ///
    /// A client whose outbound queue is full does not stop the others: it is named in the error
    /// printed, and the first refusal's code is returned (`ERR_OUT_OF_MEMORY` for a full
    /// queue). `ERR_INVALID_PARAMETER` (nothing sent) for another write mode or text that is
    /// not UTF-8. Raw mode only: in multiplayer mode `put_packet` with `target_peer` 0
    /// broadcasts (this prints an error and returns `ERR_UNAVAILABLE`).
    /// ```gdscript
    /// server.broadcast(JSON.stringify(state).to_utf8_buffer(), WebSocketConnection.WRITE_MODE_TEXT)
    /// server.broadcast(chat_line, WebSocketConnection.WRITE_MODE_TEXT, [sender_id])   # all but the sender
    /// ```
    #[func]
    fn broadcast(
        &mut self,
        message: PackedByteArray,
        #[opt(default = 1)] write_mode: i64,
        #[opt(default = &PackedInt32Array::new())] exclude: PackedInt32Array,
    ) -> GodotError {
        let recipients = if exclude.is_empty() { Recipients::All } else { Recipients::AllBut(exclude.as_slice()) };
        self.send_to_many("broadcast", recipients, &message, write_mode)
    }

    /// Sends one `message` to the clients in `ids` (binary or text, as `broadcast`), sharing the
    /// bytes between them. Every id must be an open client: an unknown id
    /// (`ERR_DOES_NOT_EXIST`), one not open (`ERR_UNAVAILABLE`) or a full queue does not stop
    /// the others; each is named in the error printed and the first one's code is returned.
    /// ```gdscript
    /// server.send_to_peers(team_red, snapshot)
    /// ```
    #[func]
    fn send_to_peers(&mut self, ids: PackedInt32Array, message: PackedByteArray, #[opt(default = 1)] write_mode: i64) -> GodotError {
        self.send_to_many("send_to_peers", Recipients::Only(ids.as_slice()), &message, write_mode)
    }

    fn send_to_many(&mut self, context: &str, recipients: Recipients<'_>, message: &PackedByteArray, write_mode: i64) -> GodotError {
        let result = crate::connection::write_mode_is_text(write_mode).and_then(|is_text| {
            let packet = Packet { data: Bytes::copy_from_slice(message.as_slice()), is_text };
            self.core.broadcast(recipients, packet)
        });
        errors::to_godot(context, result)
    }

    /// With `verify_handshakes`: lets the client of `handshake_requested` in. `response_headers`
    /// (`"Name: value"` lines) join the handshake response. `client_connected` follows at a later
    /// `poll()`.
    ///
    /// Returns `OK`; `ERR_DOES_NOT_EXIST` when no request of this id waits (answered already,
    /// refused at `handshake_timeout`, or the client left); `ERR_INVALID_PARAMETER` for a
    /// malformed header line or one the handshake sets itself (`Upgrade`, `Connection`,
    /// `Sec-WebSocket-*`).
    #[func]
    fn accept_handshake(&mut self, id: i64, #[opt(default = &PackedStringArray::new())] response_headers: PackedStringArray) -> GodotError {
        let lines: Vec<String> = response_headers.as_slice().iter().map(GString::to_string).collect();
        let result = settings::peer_id(id)
            .and_then(|id| websocket_rs_core::parse_header_lines(&lines).map(|headers| (id, headers)))
            .and_then(|(id, headers)| self.core.accept_handshake(id, headers));
        errors::to_godot("accept_handshake", result)
    }

    /// With `verify_handshakes`: refuses the client of `handshake_requested` with the HTTP
    /// `status` (400-599, e.g. 401, 403, 429, 503) and `body` as plain text, then closes its
    /// connection. Returns `OK`, `ERR_DOES_NOT_EXIST` when no request of this id waits, or
    /// `ERR_INVALID_PARAMETER` for a status outside 400-599.
    #[func]
    fn reject_handshake(&mut self, id: i64, status: i64, #[opt(default = "")] body: GString) -> GodotError {
        let result = settings::peer_id(id).and_then(|id| {
            let status = u16::try_from(status)
                .map_err(|_| Error::InvalidArgument(format!("HTTP status {status} does not refuse: use 400-599")))?;
            self.core.reject_handshake(id, status, body.to_string())
        });
        errors::to_godot("reject_handshake", result)
    }

    /// Starts a graceful shutdown: new connections (and the health check) are answered with HTTP
    /// 503 from now on; after `grace_seconds` every client is closed with 1001 ("going away");
    /// `drained` is emitted once the last one has left (at once when none is connected). Keep
    /// polling until then, then `stop()` or quit. Calling it again can only shorten the grace.
    ///
    /// Returns `OK`, `ERR_UNCONFIGURED` when not listening, or `ERR_INVALID_PARAMETER` for a
    /// negative or non-finite `grace_seconds`.
    /// ```gdscript
    /// server.drained.connect(get_tree().quit)
    /// server.drain(30.0)   # players get 30 s to finish their match
    /// ```
    #[func]
    fn drain(&mut self, #[opt(default = 0.0)] grace_seconds: f64) -> GodotError {
        let grace = if grace_seconds == 0.0 { Ok(None) } else { settings::seconds("grace_seconds", grace_seconds, false) };
        let result = grace.and_then(|grace| self.core.drain(grace.unwrap_or_default()));
        errors::to_godot("drain", result)
    }

    /// Whether `drain()` was called since `listen`.
    #[func]
    fn is_draining(&self) -> bool {
        self.core.is_draining()
    }

    /// The server's totals now. Keys:
    /// - `open`, `handshaking`: connections open, and in their handshake.
    /// - `accepted`, `opened`: since `listen`, TCP connections taken into a handshake, and
    ///   handshakes that finished.
    /// - `refused`: a `Dictionary` from reason to count since `listen`: `full`
    ///   (`max_connections`), `not_accepting` (`set_refuse_new_connections`), `draining`,
    ///   `origin` (`allowed_origins`), `bad_request` (HTTP 400, 426, 431), `rejected`
    ///   ([method reject_handshake]), `no_verdict` (`verify_handshakes` without an answer in
    ///   time), `not_websocket` (a plain HTTP request).
    /// - `failed_handshakes`: timeouts, broken requests or TLS, clients leaving mid-handshake.
    /// - `health_checks`: answered on `health_check_path`.
    /// - `out_of_descriptors`: times accepting stopped because the process had no file descriptor
    ///   left (pushed as an error once each time); the connections waiting meanwhile stay in the
    ///   backlog and are admitted as descriptors free up.
    /// - `messages_sent`, `messages_received`, `bytes_sent`, `bytes_received`, `wire_bytes_sent`,
    ///   `wire_bytes_received`: totals since `listen`, as in [method WebSocketConnection.get_statistics].
    /// - `messages_sent_per_second`, `messages_received_per_second`, `bytes_sent_per_second`,
    ///   `bytes_received_per_second`: over the last window of at least one second (wire bytes).
    /// - `mean_rtt_ms`: mean smoothed round-trip time of the peers that have one.
    /// - `queued_inbound_messages`, `queued_inbound_bytes`, `queued_outbound_messages`,
    ///   `queued_outbound_bytes`: summed over the open peers.
    ///
    /// Costs in proportion to the open peers (their queues); all zero before `listen`, the last
    /// run's totals after `stop`.
    #[func]
    fn get_statistics(&mut self) -> VarDictionary {
        crate::statistics::server_dictionary(&self.core.statistics())
    }

    /// The statistics of client `id` (the keys of [method WebSocketConnection.get_statistics]).
    /// An unknown id prints an error and returns an empty `Dictionary`.
    #[func]
    fn get_peer_statistics(&self, id: i64) -> VarDictionary {
        match self.core_peer("get_peer_statistics", id) {
            Some(peer) => crate::statistics::peer_dictionary(&peer.statistics()),
            None => VarDictionary::new(),
        }
    }

    /// Replaces the TLS key and certificate of a listening wss:// server: new connections get
    /// them, connections already made keep theirs (no player is disconnected). Use it when a
    /// certificate is renewed (e.g. Let's Encrypt, every 60-90 days).
    ///
    /// Returns `OK`; `ERR_UNCONFIGURED` when not listening; `ERR_UNAVAILABLE` for a plain ws://
    /// server; `ERR_INVALID_PARAMETER` (nothing changes) when the key or certificate is null or
    /// does not load.
    /// ```gdscript
    /// server.reload_tls(load("user://privkey.key"), load("user://fullchain.crt"))
    /// ```
    #[func]
    fn reload_tls(&mut self, private_key: Option<Gd<godot::classes::CryptoKey>>, certificate: Option<Gd<godot::classes::X509Certificate>>) -> GodotError {
        let result = match (&private_key, &certificate) {
            (Some(_), Some(_)) => crate::tls::server_from_properties(private_key.as_ref(), certificate.as_ref(), None)
                .and_then(|tls| tls.ok_or_else(|| Error::InvalidArgument("no private key and certificate given".into())))
                .and_then(|tls| self.core.reload_tls(tls)),
            _ => Err(Error::InvalidArgument("reload_tls needs both a private key and a certificate (one is null)".into())),
        };
        if result.is_ok() {
            self.private_key = private_key;
            self.ssl_certificate = certificate;
        }
        errors::to_godot("reload_tls", result)
    }

    /// The core peer for a GDScript id, or None after reporting why not.
    fn core_peer(&self, context: &str, id: i64) -> Option<&websocket_rs_core::PeerHandle> {
        let result = settings::peer_id(id).and_then(|id| self.core.peer(id));
        match result {
            Ok(peer) => Some(peer),
            Err(err) => {
                errors::report(context, &err);
                None
            }
        }
    }
}

impl Endpoint for WebSocketServer {
    type Event = ServerEvent;
    const IS_SERVER: bool = true;

    fn dispatch(&mut self, event: ServerEvent, data_received_listened: &mut Option<bool>) {
        match event {
            ServerEvent::ClientConnected { id, protocol, resource_name } => {
                self.signals().client_connected().emit(i64::from(id), &GString::from(&protocol), &GString::from(&resource_name));
                self.signals().peer_connected().emit(i64::from(id));
            }
            // Only raw mode reports messages this way; multiplayer packets go to SceneMultiplayer.
            ServerEvent::DataReceived { id } => {
                if *data_received_listened.get_or_insert_with(|| self.base().has_connections("data_received")) {
                    self.signals().data_received().emit(i64::from(id));
                }
            }
            ServerEvent::CloseRequested { id, code, reason } => {
                self.signals().client_close_request().emit(i64::from(id), i64::from(code), &GString::from(&reason));
            }
            ServerEvent::ClientDisconnected { id, was_clean, error } => {
                if let Some(error) = error {
                    godot_error!("WebSocketServer: peer {id} {error}");
                }
                self.signals().client_disconnected().emit(i64::from(id), was_clean);
                self.signals().peer_disconnected().emit(i64::from(id));
                self.connections.remove(&id);
            }
            ServerEvent::HandshakeFailed { remote, reason } => match self.handshake_warnings.admit(Instant::now()) {
                Report::Print { held_back: 0 } => godot_warn!("WebSocketServer: dropped a connection from {remote}: {reason}"),
                Report::Print { held_back } => godot_warn!(
                    "WebSocketServer: dropped a connection from {remote}: {reason} ({held_back} more failed handshakes were not printed)"
                ),
                Report::PrintLast => godot_warn!(
                    "WebSocketServer: dropped a connection from {remote}: {reason} (more than {HANDSHAKE_WARNINGS_PER_SECOND} failed handshakes this second: the next are not printed; get_statistics() counts them all)"
                ),
                Report::Hold => {}
            },
            ServerEvent::OutOfDescriptors { reason } => {
                godot_error!(
                    "WebSocketServer: out of file descriptors, {reason}; raise the process's limit (ulimit -n) or set max_connections below it"
                );
            }
            ServerEvent::HandshakeRequested { id, request } => {
                let headers = crate::connection::headers_to_dictionary(&request.headers);
                let address = GString::from(&request.remote.ip().to_canonical().to_string());
                self.signals().handshake_requested().emit(i64::from(id), &GString::from(&request.resource_name), &headers, &address);
            }
            ServerEvent::Drained => self.signals().drained().emit(),
        }
    }

    fn take_packet(&mut self) -> Option<Packet> {
        self.core.take_packet().map(|(_, packet)| packet)
    }

    fn send_packet(&mut self, packet: Packet) -> Result<(), Error> {
        self.core.send_to(self.target_peer, packet)
    }

    fn available_packets(&self) -> usize {
        self.core.queued_packets()
    }

    fn packet_peer(&self) -> i32 {
        self.core.next_packet_peer().unwrap_or(0)
    }

    fn unique_id(&self) -> i32 {
        1
    }

    fn connection_status(&self) -> ConnectionStatus {
        if self.core.is_listening() {
            ConnectionStatus::CONNECTED
        } else {
            ConnectionStatus::DISCONNECTED
        }
    }

    /// Stops the server.
    fn close_now(&mut self) {
        self.stop();
    }

    /// Closes the peer with 1000 (its disconnect signals follow), or with `force` drops it at once
    /// and emits no signal for it, as MultiplayerPeer documents.
    fn disconnect(&mut self, peer: i32, force: bool) {
        if force {
            errors::to_godot("disconnect_peer", self.core.drop_peer(peer));
            self.connections.remove(&peer);
        } else if let Some(handle) = self.core_peer("disconnect_peer", i64::from(peer)) {
            errors::to_godot("disconnect_peer", handle.close(1000, ""));
        }
    }
}
