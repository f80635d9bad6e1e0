//! `WebSocketServer`: the Godot face of `websocket_rs_core::Server`.

use std::collections::HashMap;

use godot::classes::multiplayer_peer::ConnectionStatus;
use godot::global::Error as GodotError;
use godot::prelude::*;
use websocket_rs_core::{Bytes, ConnectionConfig, Error, Packet, PeerId, Server, ServerEvent};

use crate::connection::WebSocketConnection;
use crate::errors;
use crate::multiplayer_peer::{websocket_multiplayer_peer, Endpoint};
use crate::settings::{self, OptionalTls};

/// `bind_ip`'s default: every interface, IPv4 and IPv6.
const ALL_INTERFACES: &str = "*";

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
        /// Connection objects handed out by `get_peer`, so the same id gives the same object.
        connections: HashMap<PeerId, Gd<WebSocketConnection>>,
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
        let result = settings::bind_address(bind_ip, port).and_then(|addr| self.core.listen(addr, config));
        if result.is_ok() {
            self.multiplayer = multiplayer;
            self.connections.clear();
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

    /// Sends the same `message` to every client in `peer_ids`, or to every open client when
    /// `peer_ids` is empty (the default): one copy of the bytes for all of them, as binary
    /// (`WRITE_MODE_BINARY`, the default) or text (`WRITE_MODE_TEXT`).
    ///
    /// Every reachable client gets it. Returns `OK`, or the first error, printed: an unknown id
    /// (`ERR_DOES_NOT_EXIST`), a named client that is not open (`ERR_UNAVAILABLE`), a full
    /// outbound queue (`ERR_OUT_OF_MEMORY`); `ERR_INVALID_PARAMETER` (nothing sent) for another
    /// write mode or text that is not valid UTF-8. Raw mode only: in multiplayer mode
    /// `put_packet` with `target_peer` 0 broadcasts (this prints an error and returns
    /// `ERR_UNAVAILABLE`).
    /// ```gdscript
    /// server.broadcast(JSON.stringify(state).to_utf8_buffer(), [], WebSocketConnection.WRITE_MODE_TEXT)
    /// server.broadcast(snapshot, PackedInt32Array([2, 5]))
    /// ```
    #[func]
    fn broadcast(
        &mut self,
        message: PackedByteArray,
        #[opt(default = &PackedInt32Array::new())] peer_ids: PackedInt32Array,
        #[opt(default = 1)] write_mode: i64,
    ) -> GodotError {
        let result = crate::connection::write_mode_is_text(write_mode).and_then(|is_text| {
            let packet = Packet { data: Bytes::copy_from_slice(message.as_slice()), is_text };
            let ids = if peer_ids.is_empty() { None } else { Some(peer_ids.as_slice()) };
            self.core.broadcast(ids, packet)
        });
        errors::to_godot("broadcast", result)
    }

    /// The core peer for a GDScript id, or None after reporting why not.
    fn core_peer(&self, context: &str, id: i64) -> Option<&websocket_rs_core::PeerHandle> {
        let result = i32::try_from(id)
            .map_err(|_| websocket_rs_core::Error::InvalidArgument(format!("peer id {id} is out of range")))
            .and_then(|id| self.core.peer(id));
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
            ServerEvent::HandshakeFailed { remote, reason } => {
                godot_warn!("WebSocketServer: dropped a connection from {remote}: {reason}");
            }
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
