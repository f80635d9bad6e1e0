//! `WebSocketClient`: the Godot face of `websocket_rs_core::Client`.

use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::classes::{IMultiplayerPeerExtension, MultiplayerPeerExtension};
use godot::global::Error as GodotError;
use godot::prelude::*;
use websocket_rs_core::{Client, ClientEvent, ReadyState, SERVER_PEER_ID};

use crate::connection::WebSocketConnection;
use crate::errors;
use crate::settings::{self, ConnectionProperties};

/// A WebSocket client. `connect_to_url()`, then `poll()` every frame; talk to the server through
/// `get_peer(1)`.
#[derive(GodotClass)]
#[class(tool, base = MultiplayerPeerExtension)]
pub(crate) struct WebSocketClient {
    core: Client,
    /// Seconds the TCP connect and handshake may take before `connection_error`.
    #[var]
    handshake_timeout: f64,
    /// Sub-protocols to offer (used when `connect_to_url` gets none).
    #[var]
    supported_protocols: PackedStringArray,
    /// Extra headers (`"Name: value"`) for the handshake request (used when `connect_to_url` gets none).
    #[var]
    handshake_headers: PackedStringArray,
    /// Bytes of received messages that may wait before the socket is no longer read.
    #[var]
    inbound_buffer_size: i64,
    /// Bytes that may wait to be sent before `put_packet` refuses.
    #[var]
    outbound_buffer_size: i64,
    /// Messages that may wait in each direction.
    #[var(get = get_max_queued_packets, set = set_max_queued_packets)]
    max_queued_packets: PhantomVar<i64>,
    inbound_max_packets: i64,
    outbound_max_packets: i64,
    /// Largest message accepted from the other side; a larger one closes the connection with 1009.
    #[var]
    max_message_size: i64,
    /// Seconds between pings to the server (0: none); a server that does not answer is dropped.
    #[var]
    heartbeat_interval: f64,
    /// The connection object for the server (peer 1), made on first `get_peer(1)`.
    connection: Option<Gd<WebSocketConnection>>,
    transfer_channel: i32,
    transfer_mode: TransferMode,
    target_peer: i32,
    base: Base<MultiplayerPeerExtension>,
}

#[godot_api]
impl WebSocketClient {
    /// The handshake finished; `protocol` is the sub-protocol the server picked.
    #[signal]
    fn connection_established(protocol: GString);
    /// The connection ended; `was_clean_close` when the close handshake completed.
    #[signal]
    fn connection_closed(was_clean_close: bool);
    /// Connecting failed (the reason is in the error output).
    #[signal]
    fn connection_error();
    /// A message from the server is waiting: `get_peer(1).get_packet()`.
    #[signal]
    fn data_received();
    /// The server sent a close frame; keep polling until `connection_closed`.
    #[signal]
    fn server_close_request(code: i64, reason: GString);

    /// Starts connecting to `url` (`ws://host:port/path`), offering `protocols` and sending the
    /// `custom_headers` (`"Name: value"`) with the handshake.
    #[func]
    fn connect_to_url(
        &mut self,
        url: GString,
        #[opt(default = &PackedStringArray::new())] protocols: PackedStringArray,
        #[opt(default = false)] gd_mp_api: bool,
        #[opt(default = &PackedStringArray::new())] custom_headers: PackedStringArray,
    ) -> GodotError {
        if gd_mp_api {
            return errors::report(
                "connect_to_url",
                &websocket_rs_core::Error::Unsupported("multiplayer mode (gd_mp_api = true) is not in this build yet".into()),
            );
        }
        let config = match self.connection_properties().to_config(&protocols, &custom_headers) {
            Ok(config) => config,
            Err(err) => return errors::report("connect_to_url", &err),
        };
        let result = self.core.connect(&url.to_string(), config);
        if result.is_ok() {
            self.connection = None;
        }
        errors::to_godot("connect_to_url", result)
    }

    /// Starts the close handshake with `code` and `reason`; keep polling until
    /// `connection_closed`. A code of -1 drops the connection at once.
    #[func]
    fn disconnect_from_host(&mut self, #[opt(default = 1000)] code: i64, #[opt(default = "")] reason: GString) {
        let code = i32::try_from(code).unwrap_or(i32::MAX);
        errors::to_godot("disconnect_from_host", self.core.disconnect(code, &reason.to_string()));
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

    /// Godot 3's buffer settings, for the next `connect_to_url`: sizes in KiB.
    #[func]
    fn set_buffers(
        &mut self,
        input_buffer_size_kb: i64,
        input_max_packets: i64,
        output_buffer_size_kb: i64,
        output_max_packets: i64,
    ) -> GodotError {
        match settings::godot3_buffers(input_buffer_size_kb, input_max_packets, output_buffer_size_kb, output_max_packets) {
            Ok((inbound, inbound_packets, outbound, outbound_packets)) => {
                self.inbound_buffer_size = inbound;
                self.inbound_max_packets = inbound_packets;
                self.outbound_buffer_size = outbound;
                self.outbound_max_packets = outbound_packets;
                GodotError::OK
            }
            Err(err) => errors::report("set_buffers", &err),
        }
    }

    /// Messages that may wait in each direction.
    #[func]
    fn get_max_queued_packets(&self) -> i64 {
        self.inbound_max_packets.max(self.outbound_max_packets)
    }

    /// Sets the inbound and outbound packet limits (checked at `connect_to_url`).
    #[func]
    fn set_max_queued_packets(&mut self, packets: i64) {
        self.inbound_max_packets = packets;
        self.outbound_max_packets = packets;
    }

    fn connection_properties(&self) -> ConnectionProperties<'_> {
        ConnectionProperties {
            handshake_timeout: self.handshake_timeout,
            supported_protocols: &self.supported_protocols,
            handshake_headers: &self.handshake_headers,
            inbound_buffer_size: self.inbound_buffer_size,
            outbound_buffer_size: self.outbound_buffer_size,
            inbound_max_packets: self.inbound_max_packets,
            outbound_max_packets: self.outbound_max_packets,
            max_message_size: self.max_message_size,
            heartbeat_interval: self.heartbeat_interval,
            no_delay: true,
        }
    }

    fn dispatch(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::ConnectionEstablished { protocol } => {
                self.signals().connection_established().emit(&GString::from(&protocol));
                self.signals().peer_connected().emit(i64::from(SERVER_PEER_ID));
            }
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
}

#[godot_api]
impl IMultiplayerPeerExtension for WebSocketClient {
    fn init(base: Base<MultiplayerPeerExtension>) -> Self {
        WebSocketClient {
            core: Client::new(),
            handshake_timeout: 3.0,
            supported_protocols: PackedStringArray::new(),
            handshake_headers: PackedStringArray::new(),
            inbound_buffer_size: 65535,
            outbound_buffer_size: 65535,
            max_queued_packets: PhantomVar::default(),
            inbound_max_packets: 2048,
            outbound_max_packets: 2048,
            max_message_size: 64 << 20,
            heartbeat_interval: 0.0,
            connection: None,
            transfer_channel: 0,
            transfer_mode: TransferMode::RELIABLE,
            target_peer: 0,
            base,
        }
    }

    /// Takes in network activity and emits the signals; call it every frame.
    fn poll(&mut self) {
        let mut events = Vec::new();
        self.core.poll(&mut events);
        for event in events {
            self.dispatch(event);
        }
    }

    fn close(&mut self) {
        if self.core.is_active() {
            errors::to_godot("close", self.core.disconnect(1000, ""));
        }
    }

    fn disconnect_peer(&mut self, peer: i32, force: bool) {
        if peer != SERVER_PEER_ID {
            errors::report("disconnect_peer", &websocket_rs_core::Error::UnknownPeer(peer));
            return;
        }
        let code = if force { -1 } else { 1000 };
        errors::to_godot("disconnect_peer", self.core.disconnect(code, ""));
    }

    // Raw mode: packets are read and written on `get_peer(1)`, not here.
    fn get_available_packet_count(&self) -> i32 {
        0
    }

    fn get_max_packet_size(&self) -> i32 {
        i32::MAX
    }

    fn get_packet_channel(&self) -> i32 {
        0
    }

    fn get_packet_mode(&self) -> TransferMode {
        TransferMode::RELIABLE
    }

    fn set_transfer_channel(&mut self, channel: i32) {
        self.transfer_channel = channel;
    }

    fn get_transfer_channel(&self) -> i32 {
        self.transfer_channel
    }

    fn set_transfer_mode(&mut self, mode: TransferMode) {
        self.transfer_mode = mode;
    }

    fn get_transfer_mode(&self) -> TransferMode {
        self.transfer_mode
    }

    fn set_target_peer(&mut self, peer: i32) {
        self.target_peer = peer;
    }

    fn get_packet_peer(&self) -> i32 {
        0
    }

    fn is_server(&self) -> bool {
        false
    }

    fn get_unique_id(&self) -> i32 {
        0
    }

    fn get_connection_status(&self) -> ConnectionStatus {
        match self.core.peer().map(|p| p.ready_state()) {
            Some(ReadyState::Connecting) if self.core.is_active() => ConnectionStatus::CONNECTING,
            Some(ReadyState::Open) | Some(ReadyState::Closing) if self.core.is_active() => ConnectionStatus::CONNECTED,
            _ => ConnectionStatus::DISCONNECTED,
        }
    }
}
