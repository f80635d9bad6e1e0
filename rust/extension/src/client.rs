//! `WebSocketClient`: the Godot face of `websocket_rs_core::Client`.

use godot::classes::multiplayer_peer::ConnectionStatus;
use godot::global::Error as GodotError;
use godot::prelude::*;
use websocket_rs_core::{Client, ClientEvent, ConnectionConfig, Error, Packet, SERVER_PEER_ID};

use crate::connection::WebSocketConnection;
use crate::errors;
use crate::multiplayer_peer::{websocket_multiplayer_peer, Endpoint};
use crate::settings::{CloseRequest, OptionalTls};

websocket_multiplayer_peer! {
    /// A WebSocket client. `connect_to_url()`, then `poll()` every frame; talk to the server through
    /// `get_peer(1)`.
    class WebSocketClient {
        /// The engine-free client: the socket and the server's peer handle.
        core: Client,
        /// Whether a wss:// server's certificate is checked (true). False accepts any certificate:
        /// for testing only.
        #[var]
        #[init(val = true)]
        verify_tls: bool,
        /// The only certificate accepted from a wss:// server (with its name checked); null uses the
        /// public certificate authorities.
        #[var]
        trusted_tls_certificate: Option<Gd<godot::classes::X509Certificate>>,
        /// The connection object for the server (peer 1), made on first `get_peer(1)`.
        connection: Option<Gd<WebSocketConnection>>,
    }
    signals {
        /// The handshake finished; `protocol` is the sub-protocol the server picked.
        fn connection_established(protocol: GString);
        /// The connection ended; `was_clean_close` when the close handshake completed.
        fn connection_closed(was_clean_close: bool);
        /// Connecting failed (the reason is in the error output).
        fn connection_error();
        /// A message from the server is waiting: `get_peer(1).get_packet()`.
        fn data_received();
        /// The server sent a close frame; keep polling until `connection_closed`.
        fn server_close_request(code: i64, reason: GString);
    }
    extra_virtuals {}
}

#[godot_api(secondary)]
impl WebSocketClient {
    /// Starts connecting to `url` (`ws://host:port/path`), offering `protocols` and sending the
    /// `custom_headers` (`"Name: value"`) with the handshake. `gd_mp_api` turns on Godot
    /// multiplayer mode.
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
    /// `multiplayer.multiplayer_peer`. For wss://, `TLSOptions.client(trusted_chain,
    /// common_name_override)` or `TLSOptions.client_unsafe()`; null uses `verify_tls` and
    /// `trusted_tls_certificate`.
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
        let config = self.connection_properties(multiplayer).to_config(protocols, headers).and_then(|config| Ok(ConnectionConfig { tls_client: tls?, ..config }));
        let config = match config {
            Ok(config) => config,
            Err(err) => return errors::report(context, &err),
        };
        let result = self.core.connect(&url.to_string(), config);
        if result.is_ok() {
            self.connection = None;
            self.multiplayer = multiplayer;
        }
        errors::to_godot(context, result)
    }

    /// Starts the close handshake with `code` and `reason`; keep polling until
    /// `connection_closed`. A code of -1 drops the connection at once.
    #[func]
    fn disconnect_from_host(&mut self, #[opt(default = 1000)] code: i64, #[opt(default = "")] reason: GString) {
        let result = CloseRequest::from_code(code).and_then(|request| match request {
            CloseRequest::Abort => self.core.abort(),
            CloseRequest::Frame(code) => self.core.disconnect(code, &reason.to_string()),
        });
        errors::to_godot("disconnect_from_host", result);
    }

    /// The connection to the server (`id` must be 1), or null (with an error) before any
    /// `connect_to_url`.
    #[func]
    fn get_peer(&mut self, id: i64) -> Option<Gd<WebSocketConnection>> {
        if id != i64::from(SERVER_PEER_ID) {
            let err = websocket_rs_core::Error::InvalidArgument(format!("a client's only peer is 1 (the server), not {id}"));
            errors::report("get_peer", &err);
            return None;
        }
        if let Some(connection) = &self.connection {
            return Some(connection.clone());
        }
        match self.core.peer() {
            Some(peer) => {
                let connection = WebSocketConnection::wrap(peer.clone());
                self.connection = Some(connection.clone());
                Some(connection)
            }
            None => {
                errors::report("get_peer", &websocket_rs_core::Error::NotActive);
                None
            }
        }
    }

    /// The server's IP address ("" before the connection is made).
    #[func]
    fn get_connected_host(&self) -> GString {
        let addr = self.core.peer().and_then(|p| p.remote_addr());
        addr.map(|a| GString::from(&a.ip().to_string())).unwrap_or_default()
    }

    /// The server's port (0 before the connection is made).
    #[func]
    fn get_connected_port(&self) -> i64 {
        self.core.peer().and_then(|p| p.remote_addr()).map_or(0, |a| i64::from(a.port()))
    }
}

impl Endpoint for WebSocketClient {
    type Event = ClientEvent;
    const IS_SERVER: bool = false;

    fn dispatch(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::ConnectionEstablished { protocol } => {
                self.signals().connection_established().emit(&GString::from(&protocol));
                self.signals().peer_connected().emit(i64::from(SERVER_PEER_ID));
            }
            // In multiplayer mode the packets are SceneMultiplayer's, taken through get_packet.
            ClientEvent::DataReceived if self.multiplayer => {}
            ClientEvent::DataReceived => self.signals().data_received().emit(),
            ClientEvent::CloseRequested { code, reason } => {
                self.signals().server_close_request().emit(i64::from(code), &GString::from(&reason));
            }
            ClientEvent::ConnectionClosed { was_clean, error } => {
                if let Some(error) = error {
                    godot_error!("WebSocketClient: connection to the server {error}");
                }
                self.signals().connection_closed().emit(was_clean);
                self.signals().peer_disconnected().emit(i64::from(SERVER_PEER_ID));
            }
            ClientEvent::ConnectionError { reason } => {
                let url = self.core.peer().map(|p| p.requested_url()).unwrap_or_default();
                godot_error!("WebSocketClient: connecting to {url} failed: {reason}");
                self.signals().connection_error().emit();
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

    /// CONNECTING until the handshake (and, in multiplayer mode, the id message) is done.
    fn connection_status(&self) -> ConnectionStatus {
        if !self.core.is_active() {
            ConnectionStatus::DISCONNECTED
        } else if self.core.is_established() {
            ConnectionStatus::CONNECTED
        } else {
            ConnectionStatus::CONNECTING
        }
    }

    /// Ends the connection at once: the server gets a 1001 close frame and the status is
    /// DISCONNECTED on return.
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
