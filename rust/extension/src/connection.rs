//! `WebSocketConnection`: one connected peer, a real `PacketPeer` (so `put_packet`, `get_packet`,
//! `put_var` and `get_var` work on it). Returned by `get_peer`; never created by scripts.

use godot::classes::{IPacketPeerExtension, PacketPeerExtension};
use godot::global::Error as GodotError;
use godot::meta::conv::RawPtr;
use godot::prelude::*;
use websocket_rs_core::{Bytes, Packet, PeerHandle};

use crate::errors;

/// One WebSocket connection: the server's view of a client, or a client's view of its server.
#[derive(GodotClass)]
#[class(tool, no_init, base = PacketPeerExtension)]
pub struct WebSocketConnection {
    peer: PeerHandle,
    /// The packet handed out by the last `get_packet`; Godot reads it until the next call.
    last_packet: Bytes,
    base: Base<PacketPeerExtension>,
}

impl WebSocketConnection {
    /// Wraps a core peer handle.
    pub(crate) fn wrap(peer: PeerHandle) -> Gd<Self> {
        Gd::from_init_fn(|base| WebSocketConnection { peer, last_packet: Bytes::new(), base })
    }
}

#[godot_api]
impl WebSocketConnection {
    /// Bytes queued by `put_packet` that have not reached the socket yet.
    #[func]
    fn get_current_outbound_buffered_amount(&self) -> i64 {
        i64::try_from(self.peer.outbound_buffered()).unwrap_or(i64::MAX)
    }
}

#[godot_api]
impl IPacketPeerExtension for WebSocketConnection {
    unsafe fn get_packet_rawptr(
        &mut self,
        r_buffer: RawPtr<*mut RawPtr<*const u8>>,
        r_buffer_size: RawPtr<*mut i32>,
    ) -> GodotError {
        let Some(packet) = self.peer.recv() else {
            return errors::report("get_packet", &websocket_rs_core::Error::InvalidArgument(
                "no packet is available; check get_available_packet_count() first".into(),
            ));
        };
        let Ok(size) = i32::try_from(packet.data.len()) else {
            return errors::report("get_packet", &websocket_rs_core::Error::InvalidArgument(
                format!("a packet of {} bytes is too large for Godot", packet.data.len()),
            ));
        };
        self.last_packet = packet.data;
        // SAFETY: Godot passes valid out-pointers; `last_packet` stays alive until the next call.
        unsafe {
            *r_buffer.ptr() = RawPtr::new(self.last_packet.as_ptr());
            *r_buffer_size.ptr() = size;
        }
        GodotError::OK
    }

    unsafe fn put_packet_rawptr(&mut self, p_buffer: RawPtr<*const u8>, p_buffer_size: i32) -> GodotError {
        let Ok(len) = usize::try_from(p_buffer_size) else {
            return errors::report("put_packet", &websocket_rs_core::Error::InvalidArgument(
                format!("negative packet size {p_buffer_size}"),
            ));
        };
        let data = if len == 0 || p_buffer.ptr().is_null() {
            Bytes::new()
        } else {
            // SAFETY: Godot guarantees `p_buffer` points at `p_buffer_size` readable bytes.
            Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(p_buffer.ptr(), len) })
        };
        errors::to_godot("put_packet", self.peer.send(Packet { data, is_text: false }))
    }

    fn get_available_packet_count(&self) -> i32 {
        i32::try_from(self.peer.available_packets()).unwrap_or(i32::MAX)
    }

    fn get_max_packet_size(&self) -> i32 {
        i32::MAX
    }
}
