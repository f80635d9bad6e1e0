//! `WebSocketConnection`: one connected peer, a real `PacketPeer` (so `put_packet`, `get_packet`,
//! `put_var` and `get_var` work on it). Returned by `get_peer`; never created by scripts.

use std::time::Duration;

use godot::classes::{IPacketPeerExtension, PacketPeerExtension};
use godot::global::Error as GodotError;
use godot::meta::conv::RawPtr;
use godot::prelude::*;
use websocket_rs_core::{Bytes, Error, Packet, PeerHandle, ReadyState};

use crate::errors;
use crate::settings::CloseRequest;

/// One WebSocket connection: the server's view of a client, or a client's view of its server.
///
/// Got from `WebSocketServer.get_peer(id)` or `WebSocketClient.get_peer(1)`; scripts cannot create
/// one. It is a real `PacketPeer`: `put_packet`, `get_packet`, `get_available_packet_count`,
/// `put_var` and `get_var` work on it, and each packet is one WebSocket message. Messages arrive
/// whole and in order; packets received before a close can still be read after it.
///
/// A full outbound queue makes `put_packet` / `send` return `ERR_OUT_OF_MEMORY` and print which
/// limit was reached; nothing was queued, so poll and send again. Sending on a connection that is
/// not open returns `ERR_UNAVAILABLE`.
/// ```gdscript
/// func _on_data(id: int) -> void:
///     var peer: WebSocketConnection = server.get_peer(id)
///     var message := peer.get_packet()
///     if peer.was_string_packet():
///         print("text: ", message.get_string_from_utf8())
///     peer.send_text("got it")
///     peer.put_var({"score": 10})      # binary, by default
/// ```
#[derive(GodotClass)]
#[class(tool, no_init, base = PacketPeerExtension)]
pub(crate) struct WebSocketConnection {
    peer: PeerHandle,
    /// The packet handed out by the last `get_packet`; Godot reads it until the next call.
    last_packet: Bytes,
    last_was_text: bool,
    write_mode: i64,
    /// Seconds between pings on this connection; 0 sends none. Default: the server's or client's
    /// `heartbeat_interval`.
    ///
    /// A peer that has not answered one ping by the time of the next is closed with 1001 and
    /// dropped. A negative number prints an error (`ERR_INVALID_PARAMETER`) and changes nothing.
    #[var(get = get_heartbeat_interval, set = set_heartbeat_interval)]
    heartbeat_interval: PhantomVar<f64>,
    base: Base<PacketPeerExtension>,
}

impl WebSocketConnection {
    /// Wraps a core peer handle.
    pub(crate) fn wrap(peer: PeerHandle) -> Gd<Self> {
        Gd::from_init_fn(|base| WebSocketConnection {
            peer,
            last_packet: Bytes::new(),
            last_was_text: false,
            write_mode: Self::WRITE_MODE_BINARY,
            heartbeat_interval: PhantomVar::default(),
            base,
        })
    }

    fn queue(&self, context: &str, data: Bytes, is_text: bool) -> GodotError {
        errors::to_godot(context, self.peer.send(Packet { data, is_text }))
    }
}

/// Whether a `write_mode` argument asks for text (`WRITE_MODE_TEXT`) or binary
/// (`WRITE_MODE_BINARY`) messages; any other value is an error.
pub(crate) fn write_mode_is_text(write_mode: i64) -> Result<bool, Error> {
    match write_mode {
        WebSocketConnection::WRITE_MODE_TEXT => Ok(true),
        WebSocketConnection::WRITE_MODE_BINARY => Ok(false),
        other => Err(Error::InvalidArgument(format!("write mode {other} is not WRITE_MODE_TEXT (0) or WRITE_MODE_BINARY (1)"))),
    }
}

/// Copies every element of a GDScript array of `PackedByteArray`s (typed or not) into packets;
/// an element of another type is an error that names its index.
pub(crate) fn packets_from_array(messages: &AnyArray, is_text: bool) -> Result<Vec<Packet>, Error> {
    let packet = |bytes: &PackedByteArray| Packet { data: Bytes::copy_from_slice(bytes.as_slice()), is_text };
    if let Ok(typed) = messages.clone().try_cast_array::<PackedByteArray>() {
        return Ok(typed.iter_shared().map(|bytes| packet(&bytes)).collect());
    }
    messages
        .iter_shared()
        .enumerate()
        .map(|(index, element)| match element.get_type() {
            // Checked first: `try_to` would also convert a String's bytes.
            VariantType::PACKED_BYTE_ARRAY => Ok(packet(&element.to::<PackedByteArray>())),
            other => Err(Error::InvalidArgument(format!(
                "element {index} is a {other:?}, not a PackedByteArray (use to_utf8_buffer() for strings)"
            ))),
        })
        .collect()
}

/// HTTP headers as a GDScript `Dictionary` from name (lower case) to value; the values of a
/// repeated header are joined with ", ".
pub(crate) fn headers_to_dictionary(headers: &[(String, String)]) -> VarDictionary {
    let mut joined: Vec<(&str, String)> = Vec::new();
    for (name, value) in headers {
        match joined.iter_mut().find(|(seen, _)| *seen == name.as_str()) {
            Some((_, values)) => {
                values.push_str(", ");
                values.push_str(value);
            }
            None => joined.push((name, value.clone())),
        }
    }
    let mut dictionary = VarDictionary::new();
    for (name, value) in joined {
        dictionary.set(&GString::from(name), &GString::from(&value));
    }
    dictionary
}

/// The packets as a GDScript `Array[PackedByteArray]` (one copy each).
pub(crate) fn packets_to_array(packets: &[Packet]) -> Array<PackedByteArray> {
    packets.iter().map(|packet| PackedByteArray::from(&packet.data[..])).collect()
}

#[godot_api]
impl WebSocketConnection {
    /// `put_packet` and `put_var` send text messages; the data must be valid UTF-8, else
    /// `put_packet` returns `ERR_INVALID_PARAMETER`.
    #[constant]
    const WRITE_MODE_TEXT: i64 = 0;
    /// `put_packet` and `put_var` send binary messages (the default).
    #[constant]
    const WRITE_MODE_BINARY: i64 = 1;
    /// `get_ready_state()`: the TCP connect or the HTTP upgrade is under way.
    #[constant]
    const STATE_CONNECTING: i64 = ReadyState::Connecting as i64;
    /// `get_ready_state()`: the connection is open; messages flow both ways.
    #[constant]
    const STATE_OPEN: i64 = ReadyState::Open as i64;
    /// `get_ready_state()`: the close handshake is under way; nothing more can be sent.
    #[constant]
    const STATE_CLOSING: i64 = ReadyState::Closing as i64;
    /// `get_ready_state()`: the connection is gone.
    #[constant]
    const STATE_CLOSED: i64 = ReadyState::Closed as i64;

    /// Sends `message` as one binary (`WRITE_MODE_BINARY`, the default) or text
    /// (`WRITE_MODE_TEXT`) message, whatever `get_write_mode()` says.
    ///
    /// Returns `OK`; `ERR_UNAVAILABLE` when the connection is not open; `ERR_OUT_OF_MEMORY` when
    /// the outbound queue is full (nothing queued: poll and send again);
    /// `ERR_INVALID_PARAMETER` for another write mode, or text that is not valid UTF-8.
    /// ```gdscript
    /// peer.send(PackedByteArray([1, 2, 3]))
    /// peer.send("hi".to_utf8_buffer(), WebSocketConnection.WRITE_MODE_TEXT)
    /// ```
    #[func]
    fn send(&mut self, message: PackedByteArray, #[opt(default = 1)] write_mode: i64) -> GodotError {
        match write_mode_is_text(write_mode) {
            Ok(is_text) => self.queue("send", Bytes::copy_from_slice(message.as_slice()), is_text),
            Err(err) => errors::report("send", &err),
        }
    }

    /// Sends every message of `messages` (an array of `PackedByteArray`), in order, as binary
    /// (`WRITE_MODE_BINARY`, the default) or text (`WRITE_MODE_TEXT`) messages: one call instead
    /// of one `send` per message, and cheaper per message.
    ///
    /// All or none: returns `OK` when every message was queued; otherwise nothing was queued and
    /// it returns what `send` would (`ERR_OUT_OF_MEMORY` when the outbound queue cannot take them
    /// all: poll and send them again; an empty queue always takes a whole batch).
    /// `ERR_INVALID_PARAMETER` for an element that is not a `PackedByteArray`, another write
    /// mode, or text that is not valid UTF-8.
    /// ```gdscript
    /// # Echo: everything that came, back in one call.
    /// peer.send_packets(peer.get_packets())
    /// ```
    #[func]
    fn send_packets(&mut self, messages: AnyArray, #[opt(default = 1)] write_mode: i64) -> GodotError {
        let result = write_mode_is_text(write_mode)
            .and_then(|is_text| packets_from_array(&messages, is_text))
            .and_then(|packets| self.peer.send_many(packets));
        errors::to_godot("send_packets", result)
    }

    /// Takes every waiting packet at once, oldest first: one call instead of
    /// `get_available_packet_count()` and `get_packet()` per message. Empty when none waits.
    ///
    /// Text messages come as their UTF-8 bytes; `was_string_packet()` then tells about the last
    /// one. Use `get_packet()` when the kind of each message matters. Taking them frees their
    /// room in the inbound queue, as `get_packet()` does.
    /// ```gdscript
    /// for message in peer.get_packets():
    ///     handle(message)
    /// ```
    #[func]
    fn get_packets(&mut self) -> Array<PackedByteArray> {
        let mut packets = Vec::new();
        self.peer.recv_all(&mut packets);
        if let Some(last) = packets.last() {
            self.last_was_text = last.is_text;
        }
        packets_to_array(&packets)
    }

    /// Sends `text` as one text message. Returns what `send` returns.
    /// ```gdscript
    /// peer.send_text(JSON.stringify({"type": "hello"}))
    /// ```
    #[func]
    fn send_text(&mut self, text: GString) -> GodotError {
        self.queue("send_text", Bytes::from(text.to_string()), true)
    }

    /// Whether the packet last taken by `get_packet` (or `get_var`) came as a text message;
    /// false before any.
    #[func]
    fn was_string_packet(&self) -> bool {
        self.last_was_text
    }

    /// Whether `put_packet` and `put_var` send text (`WRITE_MODE_TEXT`) or binary
    /// (`WRITE_MODE_BINARY`, the default) messages. Another value prints an error
    /// (`ERR_INVALID_PARAMETER`) and changes nothing.
    /// ```gdscript
    /// peer.set_write_mode(WebSocketConnection.WRITE_MODE_TEXT)
    /// peer.put_packet("hello".to_utf8_buffer())  # a text message
    /// ```
    #[func]
    fn set_write_mode(&mut self, mode: i64) {
        match write_mode_is_text(mode) {
            Ok(_) => self.write_mode = mode,
            Err(err) => {
                errors::report("set_write_mode", &err);
            }
        }
    }

    /// `WRITE_MODE_TEXT` or `WRITE_MODE_BINARY` (the default): see `set_write_mode`.
    #[func]
    fn get_write_mode(&self) -> i64 {
        self.write_mode
    }

    /// Starts the close handshake with `code` (default 1000, "normal closure") and `reason`;
    /// keep polling until the disconnect signal (`client_disconnected` or `connection_closed`).
    /// A code of -1 drops the connection at once. Does nothing on a connection already closing
    /// or closed.
    ///
    /// Returns `OK`, or `ERR_INVALID_PARAMETER` for a code other than 1000-1003, 1007-1011 or
    /// 3000-4999, or a reason over 123 bytes.
    /// ```gdscript
    /// peer.close(4000, "kicked")
    /// ```
    #[func]
    fn close(&mut self, #[opt(default = 1000)] code: i64, #[opt(default = "")] reason: GString) -> GodotError {
        let result = CloseRequest::from_code(code).and_then(|request| match request {
            CloseRequest::Abort => {
                self.peer.abort();
                Ok(())
            }
            CloseRequest::Frame(code) => self.peer.close(code, &reason.to_string()),
        });
        errors::to_godot("close", result)
    }

    /// The close code the other side sent; -1 while open, or when the connection was lost
    /// without one.
    #[func]
    fn get_close_code(&self) -> i64 {
        self.peer.close_code().map_or(-1, i64::from)
    }

    /// The close reason the other side sent; "" when none.
    #[func]
    fn get_close_reason(&self) -> GString {
        GString::from(&self.peer.close_reason())
    }

    /// Where the connection is: `STATE_CONNECTING`, `STATE_OPEN`, `STATE_CLOSING` or
    /// `STATE_CLOSED`.
    #[func]
    fn get_ready_state(&self) -> i64 {
        self.peer.ready_state() as i64
    }

    /// Whether the connection is open (`get_ready_state() == STATE_OPEN`).
    #[func]
    fn is_connected_to_host(&self) -> bool {
        self.peer.ready_state() == ReadyState::Open
    }

    /// The other side's IP address, e.g. `"127.0.0.1"`; "" before the TCP connection is made.
    #[func]
    fn get_connected_host(&self) -> GString {
        self.peer.remote_addr().map(|a| GString::from(&a.ip().to_string())).unwrap_or_default()
    }

    /// Server side: every header of the client's upgrade request, as a `Dictionary` from name
    /// (lower case) to value (a repeated header's values joined with ", "). Empty on the client
    /// side. Read tokens and cookies here, also in multiplayer mode.
    /// ```gdscript
    /// var token: String = server.get_peer(id).get_request_headers().get("authorization", "")
    /// ```
    #[func]
    fn get_request_headers(&self) -> VarDictionary {
        headers_to_dictionary(&self.peer.request_headers())
    }

    /// The other side's port; 0 before the TCP connection is made.
    #[func]
    fn get_connected_port(&self) -> i64 {
        self.peer.remote_addr().map_or(0, |a| i64::from(a.port()))
    }

    /// The sub-protocol agreed in the handshake; "" when none.
    #[func]
    fn get_selected_protocol(&self) -> GString {
        GString::from(&self.peer.protocol())
    }

    /// Whether permessage-deflate compression was agreed in the handshake (both sides had
    /// `permessage_deflate` on; browsers, Python `websockets` and Node `ws` offer it, Godot's
    /// built-in classes never do).
    #[func]
    fn has_permessage_deflate(&self) -> bool {
        self.peer.deflate().is_some()
    }

    /// The permessage-deflate parameters agreed in the handshake, or an empty dictionary when
    /// messages travel uncompressed. Keys: `server_no_context_takeover` and
    /// `client_no_context_takeover` (bool), `server_max_window_bits` and
    /// `client_max_window_bits` (int, 8 to 15), and `header` (the agreement
    /// written as a `Sec-WebSocket-Extensions` value, parameters in a fixed order).
    /// ```gdscript
    /// var deflate := peer.get_permessage_deflate()
    /// if deflate:
    ///     print("compressed, server window 2^%d" % deflate.server_max_window_bits)
    /// ```
    #[func]
    fn get_permessage_deflate(&self) -> VarDictionary {
        let mut dict = VarDictionary::new();
        if let Some(params) = self.peer.deflate() {
            dict.set(
                "server_no_context_takeover",
                params.server_no_context_takeover,
            );
            dict.set(
                "client_no_context_takeover",
                params.client_no_context_takeover,
            );
            dict.set(
                "server_max_window_bits",
                i64::from(params.server_max_window_bits),
            );
            dict.set(
                "client_max_window_bits",
                i64::from(params.client_max_window_bits),
            );
            dict.set("header", &GString::from(&params.to_header()));
        }
        dict
    }

    /// The URL the client connected to, as given to `connect_to_url`; "" on the server side.
    #[func]
    fn get_requested_url(&self) -> GString {
        GString::from(&self.peer.requested_url())
    }

    /// The path and query the client asked for, e.g. `"/chat?room=1"`, on the server side; "" on
    /// the client side.
    #[func]
    fn get_resource_name(&self) -> GString {
        GString::from(&self.peer.resource_name())
    }

    /// TCP_NODELAY for this connection: true (the default) sends each message at once; false lets
    /// the system gather small messages (Nagle's algorithm).
    #[func]
    fn set_no_delay(&mut self, enabled: bool) {
        self.peer.set_no_delay(enabled);
    }

    /// Bytes queued by `put_packet` / `send` that have not been written to the socket yet.
    #[func]
    fn get_current_outbound_buffered_amount(&self) -> i64 {
        i64::try_from(self.peer.outbound_buffered()).unwrap_or(i64::MAX)
    }

    /// The smoothed round-trip time to the other side in milliseconds, measured on the I/O
    /// thread from the pongs to the heartbeat's pings (so a slow frame does not inflate it):
    /// set `heartbeat_interval` for it to have a value. 0 before the first pong. With
    /// `use_io_thread = false` pongs are read in `poll()`, so a sample includes up to one frame.
    #[func]
    fn get_round_trip_time(&self) -> f64 {
        self.peer.round_trip_time_ms()
    }

    /// This connection's statistics now, read from counters the I/O thread keeps (no round trip
    /// to it, cheap enough for every frame). Keys:
    /// - `rtt_ms`, `rtt_last_ms`, `rtt_variance_ms`: round-trip time, smoothed (as
    ///   [method get_round_trip_time]), last sample, and how much samples vary; 0 before the
    ///   first pong (needs `heartbeat_interval`).
    /// - `messages_sent`, `messages_received`: whole messages written to the socket / received.
    /// - `bytes_sent`, `bytes_received`: their payload bytes (uncompressed).
    /// - `wire_bytes_sent`, `wire_bytes_received`: WebSocket frame bytes on the wire (headers,
    ///   masks, pings, close frames, after compression; not the HTTP upgrade nor TLS).
    /// - `queued_inbound_messages`, `queued_inbound_bytes`: received, not taken by the game yet.
    /// - `queued_outbound_messages`, `queued_outbound_bytes`: sent by the game, not written yet.
    /// - `connected_seconds`: since the handshake finished (frozen once closed).
    /// - `idle_seconds`: since anything (message, ping, pong) came from the other side.
    #[func]
    fn get_statistics(&self) -> VarDictionary {
        crate::statistics::peer_dictionary(&self.peer.statistics())
    }

    /// Sets `heartbeat_interval`: seconds between pings on this connection, 0 for none. A
    /// negative number prints an error and changes nothing.
    #[func]
    fn set_heartbeat_interval(&mut self, seconds: f64) {
        match crate::settings::seconds("heartbeat_interval", seconds, true) {
            Ok(interval) => self.peer.set_heartbeat(interval),
            Err(err) => {
                errors::report("set_heartbeat_interval", &err);
            }
        }
    }

    /// Returns `heartbeat_interval`: seconds between pings on this connection, 0 for none.
    #[func]
    fn get_heartbeat_interval(&self) -> f64 {
        self.peer.heartbeat().map_or(0.0, |d: Duration| d.as_secs_f64())
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
            return errors::report(
                "get_packet",
                &Error::InvalidArgument("no packet is available; check get_available_packet_count() first".into()),
            );
        };
        let Ok(size) = i32::try_from(packet.data.len()) else {
            return errors::report(
                "get_packet",
                &Error::InvalidArgument(format!("a packet of {} bytes is too large for Godot", packet.data.len())),
            );
        };
        self.last_was_text = packet.is_text;
        self.last_packet = packet.data;
        // SAFETY: Godot passes valid out-pointers; `last_packet` stays alive until the next call.
        unsafe {
            *r_buffer.ptr() = RawPtr::new(self.last_packet.as_ptr());
            *r_buffer_size.ptr() = size;
        }
        GodotError::OK
    }

    unsafe fn put_packet_rawptr(&mut self, p_buffer: RawPtr<*const u8>, p_buffer_size: i32) -> GodotError {
        // SAFETY: Godot guarantees `p_buffer` points at `p_buffer_size` readable bytes.
        match unsafe { copy_packet(p_buffer, p_buffer_size) } {
            Ok(data) => self.queue("put_packet", data, self.write_mode == Self::WRITE_MODE_TEXT),
            Err(err) => errors::report("put_packet", &err),
        }
    }

    fn get_available_packet_count(&self) -> i32 {
        i32::try_from(self.peer.available_packets()).unwrap_or(i32::MAX)
    }

    fn get_max_packet_size(&self) -> i32 {
        i32::MAX
    }
}

/// Copies the packet Godot hands to a `put_packet` virtual (the one copy on the way out: the
/// I/O thread owns it from here).
///
/// # Safety
/// `buffer` must point at `size` readable bytes (or `size` be 0).
pub(crate) unsafe fn copy_packet(buffer: RawPtr<*const u8>, size: i32) -> Result<Bytes, Error> {
    let len = usize::try_from(size).map_err(|_| Error::InvalidArgument(format!("negative packet size {size}")))?;
    if len == 0 || buffer.ptr().is_null() {
        return Ok(Bytes::new());
    }
    // SAFETY: the caller guarantees `len` readable bytes at `buffer`.
    Ok(Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(buffer.ptr(), len) }))
}
