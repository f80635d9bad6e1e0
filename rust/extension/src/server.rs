//! `WebSocketServer`: the Godot face of `websocket_rs_core::Server`.

use std::collections::HashMap;

use godot::classes::multiplayer_peer::{ConnectionStatus, TransferMode};
use godot::classes::{IMultiplayerPeerExtension, MultiplayerPeerExtension};
use godot::global::Error as GodotError;
use godot::prelude::*;
use websocket_rs_core::{ConnectionConfig, PeerId, Server, ServerEvent};

use crate::connection::WebSocketConnection;
use crate::errors;

/// A WebSocket server. `listen()`, then `poll()` every frame; clients arrive through signals and
/// are reached with `get_peer(id)`.
#[derive(GodotClass)]
#[class(tool, base = MultiplayerPeerExtension)]
pub struct WebSocketServer {
    core: Server,
    config: ConnectionConfig,
    /// Connection objects handed out by `get_peer`, so the same id gives the same object.
    connections: HashMap<PeerId, Gd<WebSocketConnection>>,
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

    /// Starts listening on `port` on every interface. `protocols` are the supported
    /// sub-protocols.
    #[func]
    fn listen(
        &mut self,
        port: i64,
        #[opt(default = &PackedStringArray::new())] protocols: PackedStringArray,
        #[opt(default = false)] gd_mp_api: bool,
    ) -> GodotError {
        if gd_mp_api {
            return errors::report(
                "listen",
                &websocket_rs_core::Error::Unsupported("multiplayer mode (gd_mp_api = true) is not in this build yet".into()),
            );
        }
        let mut config = self.config.clone();
        config.protocols = protocols.as_slice().iter().map(GString::to_string).collect();
        errors::to_godot("listen", self.core.listen("*", port, config))
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
        let Ok(id) = i32::try_from(id) else {
            errors::report("get_peer", &websocket_rs_core::Error::InvalidArgument(format!("peer id {id} is out of range")));
            return None;
        };
        if let Some(existing) = self.connections.get(&id) {
            return Some(existing.clone());
        }
        match self.core.peer(id) {
            Ok(peer) => {
                let connection = WebSocketConnection::wrap(peer.clone());
                self.connections.insert(id, connection.clone());
                Some(connection)
            }
            Err(err) => {
                errors::report("get_peer", &err);
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
            ServerEvent::DataReceived { id } => self.signals().data_received().emit(i64::from(id)),
            ServerEvent::CloseRequested { id, code, reason } => {
                self.signals().client_close_request().emit(i64::from(id), i64::from(code), &GString::from(&reason));
            }
            ServerEvent::ClientDisconnected { id, was_clean } => {
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
            config: ConnectionConfig::default(),
            connections: HashMap::new(),
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

    fn disconnect_peer(&mut self, peer: i32, force: bool) {
        match self.core.peer(peer) {
            Ok(handle) => {
                let result = if force { handle.close(-1, "") } else { handle.close(1000, "") };
                errors::to_godot("disconnect_peer", result);
            }
            Err(err) => {
                errors::report("disconnect_peer", &err);
            }
        }
    }

    // Raw mode: packets are read and written on the connections from `get_peer`, not here.
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
