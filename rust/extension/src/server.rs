//! `WebSocketServer`: the Godot face of `websocket_rs_core::Server`.

use std::collections::HashMap;

use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::classes::{IMultiplayerPeerExtension, MultiplayerPeerExtension};
use godot::global::Error as GodotError;
use godot::meta::conv::RawPtr;
use godot::prelude::*;
use websocket_rs_core::{Bytes, Error, Packet, PeerId, Server, ServerEvent};

use crate::connection::WebSocketConnection;
use crate::errors;
use crate::settings::{self, ConnectionProperties, OptionalTls};

/// A WebSocket server. `listen()`, then `poll()` every frame; clients arrive through signals and
/// are reached with `get_peer(id)`.
#[derive(GodotClass)]
#[class(tool, base = MultiplayerPeerExtension)]
pub(crate) struct WebSocketServer {
    core: Server,
    /// Address to listen on: `"*"` for every interface, or one IP such as `"127.0.0.1"`.
    #[var]
    bind_ip: GString,
    /// Seconds a client may take to finish its handshake before it is dropped.
    #[var]
    handshake_timeout: f64,
    /// Sub-protocols the server supports, in order of preference (used when `listen` gets none).
    #[var]
    supported_protocols: PackedStringArray,
    /// Extra headers (`"Name: value"`) sent in every handshake response.
    #[var]
    handshake_headers: PackedStringArray,
    /// Bytes of received messages that may wait per client before its socket is no longer read.
    #[var]
    inbound_buffer_size: i64,
    /// Bytes that may wait to be sent per client before `put_packet` refuses.
    #[var]
    outbound_buffer_size: i64,
    /// Messages that may wait per client in each direction.
    #[var(get = get_max_queued_packets, set = set_max_queued_packets)]
    max_queued_packets: PhantomVar<i64>,
    inbound_max_packets: i64,
    outbound_max_packets: i64,
    /// Largest message accepted from the other side; a larger one closes the connection with 1009.
    #[var]
    max_message_size: i64,
    /// Seconds between pings to each client (0: none); a client that does not answer is dropped.
    #[var]
    heartbeat_interval: f64,
    /// Connections (open or handshaking) beyond this many are refused with HTTP 503 (0: no limit).
    #[var]
    max_connections: i64,
    /// When not empty, browsers whose `Origin` header is not in this list (e.g.
    /// `"https://mygame.example"`) are refused with HTTP 403. Clients that send no `Origin`
    /// (native games, servers) are not affected.
    #[var]
    allowed_origins: PackedStringArray,
    /// With `ssl_certificate`: serve wss:// (TLS) with this key.
    #[var]
    private_key: Option<Gd<godot::classes::CryptoKey>>,
    /// With `private_key`: the certificate served for wss://.
    #[var]
    ssl_certificate: Option<Gd<godot::classes::X509Certificate>>,
    /// Intermediate certificates sent after `ssl_certificate`.
    #[var]
    ca_chain: Option<Gd<godot::classes::X509Certificate>>,
    /// Connection objects handed out by `get_peer`, so the same id gives the same object.
    connections: HashMap<PeerId, Gd<WebSocketConnection>>,
    /// Whether the running server is in Godot multiplayer mode (`gd_mp_api` or `create_server`).
    multiplayer: bool,
    /// The packet handed out by the last multiplayer `get_packet`; Godot reads it until the next.
    last_packet: Bytes,
    transfer_channel: i32,
    transfer_mode: TransferMode,
    target_peer: i32,
    base: Base<MultiplayerPeerExtension>,
}

#[godot_api]
impl WebSocketServer {
    /// A client finished its handshake.
    #[signal]
    fn client_connected(id: i64, protocol: GString, resource_name: GString);
    /// A client is gone; `was_clean_close` when the close handshake completed.
    #[signal]
    fn client_disconnected(id: i64, was_clean_close: bool);
    /// A client sent a close frame; keep polling until `client_disconnected`.
    #[signal]
    fn client_close_request(id: i64, code: i64, reason: GString);
    /// A message from this client is waiting: `get_peer(id).get_packet()`.
    #[signal]
    fn data_received(id: i64);

    /// Starts listening on `port` (on `bind_ip`). `protocols` are the supported sub-protocols
    /// (else `supported_protocols`); `gd_mp_api` turns on Godot multiplayer mode.
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

    /// Godot 4's entry point: listens on `port` and `bind_address` in multiplayer mode, for use as
    /// `multiplayer.multiplayer_peer`. `TLSOptions.server(key, certificate)` serves wss://; null
    /// uses the `private_key` / `ssl_certificate` properties (plain ws:// when unset).
    #[func]
    fn create_server(
        &mut self,
        port: i64,
        #[opt(default = "*")] bind_address: GString,
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
        let mut properties = self.connection_properties();
        properties.multiplayer = multiplayer;
        let mut config = match properties.to_config(protocols, &PackedStringArray::new()) {
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

    /// Extra headers (`"Name: value"`) for every handshake response (same as `handshake_headers`).
    #[func]
    fn set_extra_headers(&mut self, #[opt(default = &PackedStringArray::new())] headers: PackedStringArray) {
        self.handshake_headers = headers;
    }

    /// Godot 3's buffer settings, for connections made after the next `listen`: sizes in KiB.
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

    /// Messages that may wait per client in each direction.
    #[func]
    fn get_max_queued_packets(&self) -> i64 {
        self.inbound_max_packets.max(self.outbound_max_packets)
    }

    /// Sets the inbound and outbound packet limits (checked at `listen`).
    #[func]
    fn set_max_queued_packets(&mut self, packets: i64) {
        self.inbound_max_packets = packets;
        self.outbound_max_packets = packets;
    }

    /// The IP address of the client with this id ("" and an error if there is none).
    #[func]
    fn get_peer_address(&self, id: i64) -> GString {
        match self.core_peer("get_peer_address", id) {
            Some(peer) => peer.remote_addr().map(|a| GString::from(&a.ip().to_string())).unwrap_or_default(),
            None => GString::new(),
        }
    }

    /// The remote port of the client with this id (0 and an error if there is none).
    #[func]
    fn get_peer_port(&self, id: i64) -> i64 {
        match self.core_peer("get_peer_port", id) {
            Some(peer) => peer.remote_addr().map_or(0, |a| i64::from(a.port())),
            None => 0,
        }
    }

    /// Stops the server: every client is closed with 1001 and forgotten.
    #[func]
    fn stop(&mut self) {
        self.core.stop();
        self.connections.clear();
    }

    /// Whether the server is listening.
    #[func]
    fn is_listening(&self) -> bool {
        self.core.is_listening()
    }

    /// The port actually bound (useful after `listen(0)`), or 0 when not listening.
    #[func]
    fn get_local_port(&self) -> i64 {
        self.core.local_addr().map_or(0, |a| i64::from(a.port()))
    }

    /// Whether a client with this id is connected.
    #[func]
    fn has_peer(&self, id: i64) -> bool {
        i32::try_from(id).is_ok_and(|id| self.core.has_peer(id))
    }

    /// The connection of the client with this id, or null (with an error) if there is none.
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

    fn dispatch(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::ClientConnected { id, protocol, resource_name } => {
                self.signals().client_connected().emit(i64::from(id), &GString::from(&protocol), &GString::from(&resource_name));
                self.signals().peer_connected().emit(i64::from(id));
            }
            // Only raw mode reports messages this way; multiplayer packets go to SceneMultiplayer.
            ServerEvent::DataReceived { id } => self.signals().data_received().emit(i64::from(id)),
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
}

#[godot_api]
impl IMultiplayerPeerExtension for WebSocketServer {
    fn init(base: Base<MultiplayerPeerExtension>) -> Self {
        WebSocketServer {
            core: Server::new(),
            bind_ip: GString::from("*"),
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
            max_connections: 0,
            allowed_origins: PackedStringArray::new(),
            private_key: None,
            ssl_certificate: None,
            ca_chain: None,
            connections: HashMap::new(),
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

    fn close(&mut self) {
        self.stop();
    }

    /// Closes the peer with 1000 (its disconnect signals follow), or with `force` drops it at once
    /// and emits no signal for it, as MultiplayerPeer documents.
    fn disconnect_peer(&mut self, peer: i32, force: bool) {
        if force {
            errors::to_godot("disconnect_peer", self.core.drop_peer(peer));
            self.connections.remove(&peer);
        } else if let Some(handle) = self.core_peer("disconnect_peer", i64::from(peer)) {
            errors::to_godot("disconnect_peer", handle.close(1000, ""));
        }
    }

    unsafe fn get_packet_rawptr(
        &mut self,
        r_buffer: RawPtr<*mut RawPtr<*const u8>>,
        r_buffer_size: RawPtr<*mut i32>,
    ) -> GodotError {
        if !self.multiplayer {
            return errors::report("get_packet", &raw_mode_error());
        }
        let Some((_, packet)) = self.core.take_packet() else {
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
            return errors::report("put_packet", &raw_mode_error());
        }
        // SAFETY: Godot guarantees `p_buffer` points at `p_buffer_size` readable bytes.
        let data = match unsafe { crate::connection::copy_packet(p_buffer, p_buffer_size) } {
            Ok(data) => data,
            Err(err) => return errors::report("put_packet", &err),
        };
        errors::to_godot("put_packet", self.core.send_to(self.target_peer, Packet { data, is_text: false }))
    }

    fn get_available_packet_count(&self) -> i32 {
        i32::try_from(self.core.queued_packets()).unwrap_or(i32::MAX)
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
        self.core.next_packet_peer().unwrap_or(0)
    }

    fn is_server_relay_supported(&self) -> bool {
        true
    }

    fn is_server(&self) -> bool {
        true
    }

    fn get_unique_id(&self) -> i32 {
        1
    }

    fn set_refuse_new_connections(&mut self, enable: bool) {
        self.core.set_refuse_new_connections(enable);
    }

    fn is_refusing_new_connections(&self) -> bool {
        self.core.is_refusing_new_connections()
    }

    fn get_connection_status(&self) -> ConnectionStatus {
        if self.core.is_listening() {
            ConnectionStatus::CONNECTED
        } else {
            ConnectionStatus::DISCONNECTED
        }
    }
}

/// The error for multiplayer packet calls on a server or client in raw mode.
pub(crate) fn raw_mode_error() -> Error {
    Error::Unsupported(
        "this peer is in raw mode: use get_peer(id).put_packet/get_packet, or start it with gd_mp_api = true (create_server / create_client) to use it as multiplayer_peer".into(),
    )
}
