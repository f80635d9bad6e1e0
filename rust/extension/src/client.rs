//! `WebSocketClient`: the Godot face of `websocket_rs_core::Client`.

use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::classes::{IMultiplayerPeerExtension, MultiplayerPeerExtension};
use godot::global::Error as GodotError;
use godot::meta::conv::RawPtr;
use godot::prelude::*;
use websocket_rs_core::{Bytes, Client, ClientEvent, ConnectionConfig, Error, Packet, SERVER_PEER_ID};

use crate::connection::WebSocketConnection;
use crate::errors;
use crate::settings::{self, CloseRequest, ConnectionProperties, OptionalTls};

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
    /// Whether a wss:// server's certificate is checked (true). False accepts any certificate:
    /// for testing only.
    #[var]
    verify_tls: bool,
    /// The only certificate accepted from a wss:// server (with its name checked); null uses the
    /// public certificate authorities.
    #[var]
    trusted_tls_certificate: Option<Gd<godot::classes::X509Certificate>>,
    /// Seconds between pings to the server (0: none); a server that does not answer is dropped.
    #[var]
    heartbeat_interval: f64,
    /// The connection object for the server (peer 1), made on first `get_peer(1)`.
    connection: Option<Gd<WebSocketConnection>>,
    /// Whether the current connection is in Godot multiplayer mode (`gd_mp_api`, `create_client`).
    multiplayer: bool,
    /// The packet handed out by the last multiplayer `get_packet`; Godot reads it until the next.
    last_packet: Bytes,
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
        let mut properties = self.connection_properties();
        properties.multiplayer = multiplayer;
        let config = properties.to_config(protocols, headers).and_then(|config| Ok(ConnectionConfig { tls_client: tls?, ..config }));
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
            multiplayer: false,
        }
    }

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
            verify_tls: true,
            trusted_tls_certificate: None,
            connection: None,
            multiplayer: false,
            last_packet: Bytes::new(),
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

    /// Ends the connection at once (MultiplayerPeer's `close`): the server gets a 1001 close
    /// frame and the status is DISCONNECTED on return.
    fn close(&mut self) {
        self.core.close_now();
    }

    fn disconnect_peer(&mut self, peer: i32, force: bool) {
        if peer != SERVER_PEER_ID {
            errors::report("disconnect_peer", &websocket_rs_core::Error::UnknownPeer(peer));
            return;
        }
        let result = if force { self.core.abort() } else { self.core.disconnect(1000, "") };
        errors::to_godot("disconnect_peer", result);
    }

    unsafe fn get_packet_rawptr(
        &mut self,
        r_buffer: RawPtr<*mut RawPtr<*const u8>>,
        r_buffer_size: RawPtr<*mut i32>,
    ) -> GodotError {
        if !self.multiplayer {
            return errors::report("get_packet", &crate::server::raw_mode_error());
        }
        let Some(packet) = self.core.peer().and_then(|peer| peer.recv()) else {
            return errors::report("get_packet", &Error::InvalidArgument("no packet is available".into()));
        };
        self.last_packet = packet.data;
        let size = i32::try_from(self.last_packet.len()).unwrap_or(i32::MAX);
        // SAFETY: Godot passes valid out-pointers; `last_packet` stays alive until the next call.
        unsafe {
            *r_buffer.ptr() = RawPtr::new(self.last_packet.as_ptr());
            *r_buffer_size.ptr() = size;
        }
        GodotError::OK
    }

    unsafe fn put_packet_rawptr(&mut self, p_buffer: RawPtr<*const u8>, p_buffer_size: i32) -> GodotError {
        if !self.multiplayer {
            return errors::report("put_packet", &crate::server::raw_mode_error());
        }
        // SAFETY: Godot guarantees `p_buffer` points at `p_buffer_size` readable bytes.
        let data = match unsafe { crate::connection::copy_packet(p_buffer, p_buffer_size) } {
            Ok(data) => data,
            Err(err) => return errors::report("put_packet", &err),
        };
        let result = match self.core.peer() {
            Some(peer) if self.core.is_established() => peer.send(Packet { data, is_text: false }),
            _ => Err(Error::NotActive),
        };
        errors::to_godot("put_packet", result)
    }

    fn get_available_packet_count(&self) -> i32 {
        if !self.multiplayer {
            return 0;
        }
        self.core.peer().map_or(0, |peer| i32::try_from(peer.available_packets()).unwrap_or(i32::MAX))
    }

    fn get_max_packet_size(&self) -> i32 {
        i32::try_from(self.max_message_size).unwrap_or(i32::MAX)
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
        SERVER_PEER_ID
    }

    fn is_server_relay_supported(&self) -> bool {
        true
    }

    fn is_server(&self) -> bool {
        false
    }

    fn get_unique_id(&self) -> i32 {
        self.core.unique_id().unwrap_or(0)
    }

    /// CONNECTING until the handshake (and, in multiplayer mode, the id message) is done.
    fn get_connection_status(&self) -> ConnectionStatus {
        if !self.core.is_active() {
            ConnectionStatus::DISCONNECTED
        } else if self.core.is_established() {
            ConnectionStatus::CONNECTED
        } else {
            ConnectionStatus::CONNECTING
        }
    }
}
