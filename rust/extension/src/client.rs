//! `WebSocketClient`: the Godot face of `websocket_rs_core::Client`.

use godot::classes::multiplayer_peer::ConnectionStatus;
use godot::global::Error as GodotError;
use godot::prelude::*;
use websocket_rs_core::{Client, ClientEvent, ConnectionConfig, Error, Packet, SERVER_PEER_ID};

use crate::connection::WebSocketConnection;
use crate::errors;
use crate::multiplayer_peer::{websocket_multiplayer_peer, Endpoint};
use crate::settings::{CloseRequest, OptionalTls, ReconnectProperties};

websocket_multiplayer_peer! {
    /// A WebSocket client: connects to any RFC 6455 server, `ws://` or `wss://`.
    ///
    /// Call `connect_to_url(url)`, then `poll()` every frame: it returns at once, and the outcome
    /// comes as a signal (`connection_established` or `connection_error`). Talk to the server
    /// through `get_peer(1)`, a `WebSocketConnection` (a `PacketPeer`: `put_packet`,
    /// `get_packet`, `put_var`, `get_var`). Every failing call returns an `Error` and prints what
    /// was wrong.
    ///
    /// Keep the client in a member variable, as below: a lambda that captures a client held only
    /// in a local variable and is connected to one of its signals keeps it alive forever.
    /// ```gdscript
    /// extends Node
    ///
    /// var client := WebSocketClient.new()
    ///
    /// func _ready() -> void:
    ///     client.connection_established.connect(func(_protocol): client.get_peer(1).send_text("hello"))
    ///     client.data_received.connect(func(): print(client.get_peer(1).get_packet().get_string_from_utf8()))
    ///     client.connection_closed.connect(func(was_clean): print("closed, clean: ", was_clean))
    ///     client.connection_error.connect(func(): print("could not connect"))
    ///     client.connect_to_url("ws://127.0.0.1:9080/")
    ///
    /// func _process(_delta: float) -> void:
    ///     client.poll()
    /// ```
    /// It is also a `MultiplayerPeer`: after `create_client(url)` (or `connect_to_url(url, [],
    /// true)`), set it as `multiplayer.multiplayer_peer`; it joins our `WebSocketServer` or
    /// Godot's own `WebSocketMultiplayerPeer`. A wss:// server's certificate is checked against
    /// the public authorities unless `trusted_tls_certificate` or `verify_tls` says otherwise.
    ///
    /// With `auto_reconnect`, a connection that was open and is lost is made again, with the
    /// same URL, sub-protocols, headers and settings (see `reconnecting`).
    class WebSocketClient {
        /// The engine-free client: the socket and the server's peer handle.
        core: Client,
        /// Whether a wss:// server's certificate is checked. Default: true.
        ///
        /// False accepts any certificate: for testing only. Read by `connect_to_url` (and by
        /// `create_client` without `TLSOptions`).
        #[var]
        #[init(val = true)]
        verify_tls: bool,
        /// The certificate to trust for wss://. Default: null (the public certificate authorities
        /// of `webpki-roots`).
        ///
        /// When set, a server is accepted when it presents exactly this certificate, or a chain
        /// that leads to it, for the host name connected to; a self-signed certificate from
        /// `Crypto.generate_self_signed_certificate` works. An empty certificate makes
        /// `connect_to_url` return `ERR_INVALID_PARAMETER`.
        /// ```gdscript
        /// client.trusted_tls_certificate = load("res://certs/server.crt")
        /// client.connect_to_url("wss://game.example.com:9443/")
        /// ```
        #[var]
        trusted_tls_certificate: Option<Gd<godot::classes::X509Certificate>>,
        /// Whether a connection that was open and is then lost is made again. Default: false.
        ///
        /// Lost means ended without a close handshake (the server's process died, the network
        /// went away, the heartbeat got no answer), or closed by the server when
        /// `reconnect_after_clean_close` is set; never a close the game asked for
        /// (`disconnect_from_host`, `close`), nor a first connect that fails. The client waits
        /// (`reconnect_delay`, doubling up to `reconnect_max_delay`), then connects again with the
        /// same URL, sub-protocols, headers and settings, up to `reconnect_max_attempts` times.
        /// Signals: `reconnecting` instead of `connection_closed`, then `connection_established`
        /// and `reconnected`, or `reconnect_failed` and `connection_closed`. Meanwhile
        /// `get_connection_status()` is CONNECTION_CONNECTING and `get_peer(1)` is
        /// STATE_CONNECTING and refuses to send (`ERR_UNAVAILABLE`, nothing is queued). Read by
        /// `connect_to_url` / `create_client`.
        /// ```gdscript
        /// client.auto_reconnect = true
        /// client.reconnected.connect(func(): client.get_peer(1).send_text("I am back"))
        /// client.connect_to_url("ws://127.0.0.1:9080/")
        /// ```
        #[var]
        #[init(val = ::websocket_rs_core::ReconnectPolicy::default().enabled)]
        auto_reconnect: bool,
        /// Seconds before the first reconnect attempt, before jitter. Default: 1.0.
        ///
        /// Attempt n waits `min(reconnect_max_delay, reconnect_delay * 2^(n-1))` times a random
        /// factor between 0.5 and 1.0 (the jitter, so that many clients of one server do not all
        /// come back at the same moment). A value that is not a positive number makes
        /// `connect_to_url` return `ERR_INVALID_PARAMETER`.
        #[var]
        #[init(val = ::websocket_rs_core::ReconnectPolicy::default().initial_delay.as_secs_f64())]
        reconnect_delay: f64,
        /// Longest wait between two reconnect attempts, in seconds, before jitter. Default: 30.0.
        ///
        /// Less than `reconnect_delay`, or not a positive number, makes `connect_to_url` return
        /// `ERR_INVALID_PARAMETER`.
        #[var]
        #[init(val = ::websocket_rs_core::ReconnectPolicy::default().max_delay.as_secs_f64())]
        reconnect_max_delay: f64,
        /// Reconnect attempts after one loss before the client gives up (`reconnect_failed`).
        /// Default: 10; 0 tries for ever.
        ///
        /// A negative number makes `connect_to_url` return `ERR_INVALID_PARAMETER`.
        #[var]
        #[init(val = i64::from(::websocket_rs_core::ReconnectPolicy::default().max_attempts))]
        reconnect_max_attempts: i64,
        /// Whether a clean close by the server (it sent a close frame first, e.g. 1001 "going
        /// away" when it stops) also starts a reconnect. Default: false (a server that says
        /// goodbye is believed). Only with `auto_reconnect`.
        #[var]
        #[init(val = ::websocket_rs_core::ReconnectPolicy::default().after_clean_close)]
        reconnect_after_clean_close: bool,
        /// The connection object for the server (peer 1), made on first `get_peer(1)`.
        connection: Option<Gd<WebSocketConnection>>,
        /// The core's `peer_generation` that `connection` wraps.
        connection_generation: u64,
        /// Whether `peer_connected(1)` was emitted and `peer_disconnected(1)` not yet.
        server_peer_announced: bool,
    }
    signals {
        /// The connection is open: `protocol` is the sub-protocol the server chose ("" when none).
        /// In multiplayer mode it comes once the server's id message has arrived.
        /// `peer_connected(1)` follows.
        fn connection_established(protocol: GString);
        /// The connection ended: `was_clean_close` is true when the close handshake completed,
        /// false when the connection was lost or dropped. `peer_disconnected(1)` follows; packets
        /// that arrived before can still be read from `get_peer(1)`.
        fn connection_closed(was_clean_close: bool);
        /// Connecting failed: refused, timed out (`handshake_timeout`), a TLS or handshake
        /// failure. The cause is printed as an error.
        fn connection_error();
        /// A message from the server is waiting: read it with `get_peer(1).get_packet()`. Emitted
        /// once per message, in raw mode only (in multiplayer mode SceneMultiplayer takes the
        /// packets).
        fn data_received();
        /// The server sent a close frame with `code` and `reason`. The reply is sent for you; keep
        /// polling until `connection_closed`.
        fn server_close_request(code: i64, reason: GString);
        /// `auto_reconnect`: the connection was lost (`attempt` 1; `peer_disconnected(1)` follows)
        /// or the previous attempt failed, and attempt `attempt` starts in `delay` seconds (keep
        /// polling). Comes instead of `connection_closed` and `connection_error`. Order of a
        /// reconnect: `reconnecting(1, d)`, `peer_disconnected(1)`, `reconnecting(2, d)`, ...,
        /// then `connection_established(protocol)`, `peer_connected(1)`, `reconnected()`; or, after
        /// `reconnect_max_attempts` failures, `reconnect_failed()` and `connection_closed(false)`.
        fn reconnecting(attempt: i64, delay: f64);
        /// `auto_reconnect`: the connection is open again (after its `connection_established` and
        /// `peer_connected(1)`). Take `get_peer(1)` again (it is a new `WebSocketConnection`; what
        /// the old one had not read was moved to it) and send what the server must know. In
        /// multiplayer mode the server gave this client a new unique id.
        fn reconnected();
        /// `auto_reconnect`: the last of `reconnect_max_attempts` attempts failed too; the reason
        /// is printed as a warning and `connection_closed(false)` follows.
        fn reconnect_failed();
    }
}

#[godot_api(secondary)]
impl WebSocketClient {
    /// Starts connecting to `url` (`ws://host[:port][/path][?query]`, or `wss://`) and returns at
    /// once; the outcome is `connection_established` or `connection_error`.
    ///
    /// `protocols` are the sub-protocols offered (empty: `supported_protocols`), `custom_headers`
    /// extra `"Name: value"` request headers (empty: `handshake_headers`). `gd_mp_api` = true is
    /// multiplayer mode, for use as `multiplayer.multiplayer_peer`. The properties are read now.
    ///
    /// Returns `OK`; `ERR_ALREADY_IN_USE` while connecting or connected (call
    /// `disconnect_from_host()` and wait for `connection_closed` first); `ERR_INVALID_PARAMETER`
    /// for a malformed URL, an invalid header or sub-protocol, or an invalid property.
    /// ```gdscript
    /// client.connect_to_url("ws://127.0.0.1:9080/chat", ["chat"], false, ["Authorization: Bearer abc"])
    /// ```
    #[func]
    fn connect_to_url(
        &mut self,
        url: GString,
        #[opt(default = &PackedStringArray::new())] protocols: PackedStringArray,
        #[opt(default = false)] gd_mp_api: bool,
        #[opt(default = &PackedStringArray::new())] custom_headers: PackedStringArray,
    ) -> GodotError {
        let tls = crate::tls::client_from_properties(self.verify_tls, self.trusted_tls_certificate.as_ref());
        self.start("connect_to_url", &url, &protocols, &custom_headers, gd_mp_api, tls)
    }

    /// Godot 4's entry point: connects to `url` in multiplayer mode, for use as
    /// `multiplayer.multiplayer_peer`.
    ///
    /// For wss://, `TLSOptions.client(trusted_chain, common_name_override)` or
    /// `TLSOptions.client_unsafe()` (testing only); null uses `verify_tls` and
    /// `trusted_tls_certificate`. Returns what `connect_to_url` returns, or
    /// `ERR_INVALID_PARAMETER` for server `TLSOptions`.
    /// ```gdscript
    /// var peer := WebSocketClient.new()
    /// peer.create_client("ws://127.0.0.1:9090")
    /// multiplayer.multiplayer_peer = peer
    /// ```
    #[func]
    fn create_client(&mut self, url: GString, #[opt(default = OptionalTls(None))] tls_client_options: OptionalTls) -> GodotError {
        let tls = match &tls_client_options.0 {
            Some(options) => crate::tls::client_from_options(options),
            None => crate::tls::client_from_properties(self.verify_tls, self.trusted_tls_certificate.as_ref()),
        };
        self.start("create_client", &url, &PackedStringArray::new(), &PackedStringArray::new(), true, tls)
    }

    fn start(
        &mut self,
        context: &str,
        url: &GString,
        protocols: &PackedStringArray,
        headers: &PackedStringArray,
        multiplayer: bool,
        tls: Result<websocket_rs_core::TlsClientSettings, Error>,
    ) -> GodotError {
        let reconnect = ReconnectProperties {
            enabled: self.auto_reconnect,
            delay: self.reconnect_delay,
            max_delay: self.reconnect_max_delay,
            max_attempts: self.reconnect_max_attempts,
            after_clean_close: self.reconnect_after_clean_close,
        };
        let config = self
            .connection_properties(multiplayer)
            .to_config(protocols, headers)
            .and_then(|config| Ok(ConnectionConfig { tls_client: tls?, reconnect: reconnect.to_policy()?, ..config }));
        let config = match config {
            Ok(config) => config,
            Err(err) => return errors::report(context, &err),
        };
        let result = self.core.connect(&url.to_string(), config);
        if result.is_ok() {
            self.connection = None;
            self.server_peer_announced = false;
            self.multiplayer = multiplayer;
        }
        errors::to_godot(context, result)
    }

    /// Starts the close handshake with `code` (default 1000, "normal closure") and `reason`; keep
    /// polling until `connection_closed`. A code of -1 drops the connection at once. While
    /// reconnecting, stops it: `connection_closed(false)` comes at the next `poll()`.
    ///
    /// Codes 1000-1003, 1007-1011 and 3000-4999 can be sent, with a reason of up to 123 bytes;
    /// others print an error (`ERR_INVALID_PARAMETER`) and close nothing. Before any
    /// `connect_to_url`, prints an error.
    #[func]
    fn disconnect_from_host(&mut self, #[opt(default = 1000)] code: i64, #[opt(default = "")] reason: GString) {
        let result = CloseRequest::from_code(code).and_then(|request| match request {
            CloseRequest::Abort => self.core.abort(),
            CloseRequest::Frame(code) => self.core.disconnect(code, &reason.to_string()),
        });
        errors::to_godot("disconnect_from_host", result);
    }

    /// The connection to the server: `id` must be 1. The same `WebSocketConnection` until the
    /// next `connect_to_url` (or, with `auto_reconnect`, until the connection is lost: then a new
    /// one per connection), readable after the close too. Prints an error and returns null for
    /// another id or before any `connect_to_url`.
    /// ```gdscript
    /// client.get_peer(1).send_text("hello")
    /// ```
    #[func]
    fn get_peer(&mut self, id: i64) -> Option<Gd<WebSocketConnection>> {
        if id != i64::from(SERVER_PEER_ID) {
            let err = websocket_rs_core::Error::InvalidArgument(format!("a client's only peer is 1 (the server), not {id}"));
            errors::report("get_peer", &err);
            return None;
        }
        if let Some(connection) = &self.connection {
            if self.connection_generation == self.core.peer_generation() {
                return Some(connection.clone());
            }
        }
        match self.core.peer() {
            Some(peer) => {
                let connection = WebSocketConnection::wrap(peer.clone());
                self.connection = Some(connection.clone());
                self.connection_generation = self.core.peer_generation();
                Some(connection)
            }
            None => {
                errors::report("get_peer", &websocket_rs_core::Error::NotActive);
                None
            }
        }
    }

    /// The server's IP address, e.g. `"127.0.0.1"`; "" before the TCP connection is made.
    #[func]
    fn get_connected_host(&self) -> GString {
        let addr = self.core.peer().and_then(|p| p.remote_addr());
        addr.map(|a| GString::from(&a.ip().to_string())).unwrap_or_default()
    }

    /// The server's port; 0 before the TCP connection is made.
    #[func]
    fn get_connected_port(&self) -> i64 {
        self.core.peer().and_then(|p| p.remote_addr()).map_or(0, |a| i64::from(a.port()))
    }

    /// The smoothed round-trip time to the server in milliseconds (see
    /// [method WebSocketConnection.get_round_trip_time]; needs `heartbeat_interval`). 0 before
    /// the first pong and before connecting.
    #[func]
    fn get_round_trip_time(&self) -> f64 {
        self.core.peer().map_or(0.0, |p| p.round_trip_time_ms())
    }

    /// The statistics of the connection to the server (the keys of
    /// [method WebSocketConnection.get_statistics]); those of the last connection after it
    /// closed, all zero before the first `connect_to_url`.
    #[func]
    fn get_statistics(&self) -> VarDictionary {
        let stats = self.core.peer().map(|p| p.statistics()).unwrap_or_default();
        crate::statistics::peer_dictionary(&stats)
    }
}

impl WebSocketClient {
    /// Emits `peer_disconnected(1)` once after `peer_connected(1)` (a reconnect ends with
    /// `connection_closed` after `reconnecting` already said it).
    fn announce_server_gone(&mut self) {
        if std::mem::take(&mut self.server_peer_announced) {
            self.signals().peer_disconnected().emit(i64::from(SERVER_PEER_ID));
        }
    }
}

impl Endpoint for WebSocketClient {
    type Event = ClientEvent;
    const IS_SERVER: bool = false;

    fn dispatch(&mut self, event: ClientEvent, data_received_listened: &mut Option<bool>) {
        match event {
            ClientEvent::ConnectionEstablished { protocol } => {
                self.server_peer_announced = true;
                self.signals().connection_established().emit(&GString::from(&protocol));
                self.signals().peer_connected().emit(i64::from(SERVER_PEER_ID));
            }
            // In multiplayer mode the packets are SceneMultiplayer's, taken through get_packet.
            ClientEvent::DataReceived if self.multiplayer => {}
            ClientEvent::DataReceived => {
                if *data_received_listened.get_or_insert_with(|| self.base().has_connections("data_received")) {
                    self.signals().data_received().emit();
                }
            }
            ClientEvent::CloseRequested { code, reason } => {
                self.signals().server_close_request().emit(i64::from(code), &GString::from(&reason));
            }
            ClientEvent::ConnectionClosed { was_clean, error } => {
                if let Some(error) = error {
                    godot_error!("WebSocketClient: connection to the server {error}");
                }
                self.signals().connection_closed().emit(was_clean);
                self.announce_server_gone();
            }
            ClientEvent::ConnectionError { reason } => {
                let url = self.core.peer().map(|p| p.requested_url()).unwrap_or_default();
                godot_error!("WebSocketClient: connecting to {url} failed: {reason}");
                self.signals().connection_error().emit();
            }
            ClientEvent::Reconnecting { attempt, delay, error, attempt_failure } => {
                if let Some(error) = error {
                    godot_error!("WebSocketClient: connection to the server {error}");
                }
                if let Some(failure) = attempt_failure {
                    if godot::classes::Os::singleton().is_stdout_verbose() {
                        godot_print!("WebSocketClient: reconnect attempt {} failed: {failure}", attempt - 1);
                    }
                }
                self.signals().reconnecting().emit(i64::from(attempt), delay.as_secs_f64());
                self.announce_server_gone();
            }
            ClientEvent::Reconnected => self.signals().reconnected().emit(),
            ClientEvent::ReconnectFailed { attempts, reason } => {
                let url = self.core.peer().map(|p| p.requested_url()).unwrap_or_default();
                godot_warn!("WebSocketClient: gave up reconnecting to {url} after {attempts} attempts; the last failed: {reason}");
                self.signals().reconnect_failed().emit();
            }
        }
    }

    fn take_packet(&mut self) -> Option<Packet> {
        self.core.peer().and_then(|peer| peer.recv())
    }

    fn send_packet(&mut self, packet: Packet) -> Result<(), Error> {
        match self.core.peer() {
            Some(peer) if self.core.is_established() => peer.send(packet),
            _ => Err(Error::NotActive),
        }
    }

    fn available_packets(&self) -> usize {
        if !self.multiplayer {
            return 0;
        }
        self.core.peer().map_or(0, |peer| peer.available_packets())
    }

    fn packet_peer(&self) -> i32 {
        SERVER_PEER_ID
    }

    fn unique_id(&self) -> i32 {
        self.core.unique_id().unwrap_or(0)
    }

    /// CONNECTING until the handshake (and, in multiplayer mode, the id message) is done, and
    /// while reconnecting. In multiplayer mode, CONNECTED once more until the next poll after
    /// giving up reconnecting: SceneMultiplayer then reports `server_disconnected` (as for a
    /// connection that ended), not `connection_failed`.
    fn connection_status(&self) -> ConnectionStatus {
        if self.multiplayer && self.core.gave_up_in_last_poll() {
            ConnectionStatus::CONNECTED
        } else if !self.core.is_active() {
            ConnectionStatus::DISCONNECTED
        } else if self.core.is_established() {
            ConnectionStatus::CONNECTED
        } else {
            ConnectionStatus::CONNECTING
        }
    }

    /// Ends the connection at once (and any reconnect): the server gets a 1001 close frame and
    /// the status is DISCONNECTED on return.
    fn close_now(&mut self) {
        self.core.close_now();
    }

    /// The only peer is the server: closes with 1000, or with `force` drops the connection at once.
    fn disconnect(&mut self, peer: i32, force: bool) {
        if peer != SERVER_PEER_ID {
            errors::report("disconnect_peer", &websocket_rs_core::Error::UnknownPeer(peer));
            return;
        }
        let result = if force { self.core.abort() } else { self.core.disconnect(1000, "") };
        errors::to_godot("disconnect_peer", result);
    }
}
