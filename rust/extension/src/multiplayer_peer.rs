//! What `WebSocketServer` and `WebSocketClient` share: the connection properties and their
//! defaults, `set_buffers`, and the `MultiplayerPeerExtension` virtuals. The macro
//! [`websocket_multiplayer_peer!`] declares a class with all of these; what differs between the
//! two sides (the core object, the signals, who a packet goes to) is reached through the
//! [`Endpoint`] trait each class implements in its own file.

use godot::classes::multiplayer_peer::ConnectionStatus;
use websocket_rs_core::{Error, Packet};

/// The side-specific half of a server or client, which the shared virtuals call.
pub(crate) trait Endpoint {
    /// What the core object's `poll` reports.
    type Event;
    /// Whether this side is the server (MultiplayerPeer's `is_server`).
    const IS_SERVER: bool;

    /// Emits the signals for one event of the core object's `poll`. `data_received_listened`
    /// caches, for one poll, whether anything is connected to `data_received` (`None`: not
    /// asked yet): nobody listening (scripts that take packets in batches) means no signal per
    /// message.
    fn dispatch(&mut self, event: Self::Event, data_received_listened: &mut Option<bool>);
    /// Takes the next multiplayer packet for SceneMultiplayer.
    fn take_packet(&mut self) -> Option<Packet>;
    /// Sends a packet from SceneMultiplayer to the current target peer.
    fn send_packet(&mut self, packet: Packet) -> Result<(), Error>;
    /// Multiplayer packets waiting to be taken.
    fn available_packets(&self) -> usize;
    /// The peer that sent the next packet.
    fn packet_peer(&self) -> i32;
    /// This side's multiplayer peer id.
    fn unique_id(&self) -> i32;
    /// Disconnected, connecting or connected.
    fn connection_status(&self) -> ConnectionStatus;
    /// Ends everything at once (MultiplayerPeer's `close`).
    fn close_now(&mut self);
    /// MultiplayerPeer's `disconnect_peer`.
    fn disconnect(&mut self, peer: i32, force: bool);
}

/// The error for multiplayer packet calls on a server or client in raw mode.
pub(crate) fn raw_mode_error() -> Error {
    Error::Unsupported(
        "this peer is in raw mode: use get_peer(id).put_packet/get_packet, or start it with gd_mp_api = true (create_server / create_client) to use it as multiplayer_peer".into(),
    )
}

/// Declares a WebSocket `MultiplayerPeerExtension` class: the struct with the class's own fields
/// (given; the first is `core`, the engine-free server or client, whose `poll` fills a
/// `Vec<Endpoint::Event>`) and the shared ones, its primary `#[godot_api]` block with the class's signals (given)
/// and the shared `#[func]`s, and its `IMultiplayerPeerExtension` impl, which reaches the
/// class's [`Endpoint`] impl. `extra_virtuals` (optional) are virtuals only this class overrides. The
/// class's own `#[func]`s go in a `#[godot_api(secondary)]` block of its file.
///
/// Shared fields the class's code may use: `handshake_timeout`, `supported_protocols`,
/// `handshake_headers`, `inbound_buffer_size`, `outbound_buffer_size`, `inbound_max_packets`,
/// `outbound_max_packets`, `max_message_size`, `heartbeat_interval`, the `permessage_deflate` and
/// `deflate_*` settings, `multiplayer` (whether the
/// running server or client is in multiplayer mode) and `target_peer`; and
/// `connection_properties()`.
macro_rules! websocket_multiplayer_peer {
    (
        $(#[$($class_attr:tt)*])*
        class $class:ident {
            $(#[$($core_attr:tt)*])*
            core: $core:ty,
            $( $(#[$($field_attr:tt)*])* $field:ident : $field_ty:ty, )*
        }
        signals {
            $( $(#[$($signal_attr:tt)*])* fn $signal:ident ( $($signal_param:tt)* ); )*
        }
        $(extra_virtuals {
            $($extra_virtual:tt)*
        })?
    ) => {
        $(#[$($class_attr)*])*
        #[derive(::godot::register::GodotClass)]
        #[class(tool, init, base = MultiplayerPeerExtension)]
        pub(crate) struct $class {
            $(#[$($core_attr)*])*
            core: $core,
            $( $(#[$($field_attr)*])* $field: $field_ty, )*
            /// Seconds a connection may take to open before it fails. Default: 3.0.
            ///
            /// On a server, a client that has not finished its HTTP upgrade by then is dropped
            /// with a warning and no signal. On a client, the TCP connect and the handshake (and, in
            /// multiplayer mode, the server's id message) must be done by then, else
            /// `connection_error` is emitted. Read when the server starts listening or the client
            /// connects; a value that is not a positive number makes that call return
            /// `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = ::websocket_rs_core::ConnectionConfig::default().handshake_timeout.as_secs_f64())]
            handshake_timeout: f64,
            /// WebSocket sub-protocols, in order of preference. Default: empty (no
            /// `Sec-WebSocket-Protocol` header).
            ///
            /// Used when `listen` / `connect_to_url` is given none. A server picks the first one the
            /// client also offers and refuses a client that offers only others (HTTP 400); a client
            /// offers them all and learns the server's choice in `connection_established`. A name
            /// that is not a valid HTTP token makes `listen` / `connect_to_url` return
            /// `ERR_INVALID_PARAMETER`.
            /// ```gdscript
            /// peer.supported_protocols = ["chat.v2", "chat.v1"]
            /// ```
            #[var]
            supported_protocols: ::godot::builtin::PackedStringArray,
            /// Extra HTTP headers, one `"Name: value"` line each, added to every handshake: the
            /// server's responses, or the client's request (when `connect_to_url` is given no
            /// `custom_headers`). Default: empty.
            ///
            /// A line without `:` or with an invalid name or value makes `listen` /
            /// `connect_to_url` return `ERR_INVALID_PARAMETER`.
            /// ```gdscript
            /// peer.handshake_headers = ["X-Game-Version: 1.4"]
            /// ```
            #[var]
            handshake_headers: ::godot::builtin::PackedStringArray,
            /// Bytes of received messages that may wait in each connection's inbound queue.
            /// Default: 65535.
            ///
            /// When it is full, that socket is no longer read until the game takes packets: TCP
            /// flow control slows the sender and nothing is dropped. One message always fits an
            /// empty queue, whatever its size. Read when the server starts listening or the client
            /// connects; 0 or less makes that call return `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = $crate::settings::int(::websocket_rs_core::Limits::default().inbound_buffer_size))]
            inbound_buffer_size: i64,
            /// Bytes of messages that may wait to be sent in each connection's outbound queue.
            /// Default: 65535.
            ///
            /// Beyond it, `put_packet` / `send` return `ERR_OUT_OF_MEMORY` and queue nothing: poll
            /// and send again. One message always fits an empty queue. Read when the server
            /// starts listening or the client connects; 0 or less makes that call return
            /// `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = $crate::settings::int(::websocket_rs_core::Limits::default().outbound_buffer_size))]
            outbound_buffer_size: i64,
            /// Messages that may wait in each connection's queues, inbound and outbound. Default:
            /// 2048.
            ///
            /// A full inbound queue stops reading that socket; a full outbound queue makes
            /// `put_packet` return `ERR_OUT_OF_MEMORY`. `set_buffers` can set the two directions
            /// apart; this property then reads the larger. Read when the server starts listening
            /// or the client connects; 0 or less makes that call return `ERR_INVALID_PARAMETER`.
            #[var(get = get_max_queued_packets, set = set_max_queued_packets)]
            max_queued_packets: ::godot::register::property::PhantomVar<i64>,
            /// Received messages that may wait per connection.
            #[init(val = $crate::settings::int(::websocket_rs_core::Limits::default().inbound_max_packets))]
            inbound_max_packets: i64,
            /// Messages that may wait to be sent per connection.
            #[init(val = $crate::settings::int(::websocket_rs_core::Limits::default().outbound_max_packets))]
            outbound_max_packets: i64,
            /// Largest message, in bytes, accepted from the other side. Default: 67108864 (64 MiB).
            ///
            /// A larger message closes that connection with code 1009 ("message too big") and
            /// prints an error. Read when the server
            /// starts listening or the client connects; 0 or less makes that call return
            /// `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = $crate::settings::int(::websocket_rs_core::Limits::default().max_message_size))]
            max_message_size: i64,
            /// Seconds between pings on each connection; 0 (the default) sends none.
            ///
            /// A peer that has not answered one ping by the time of the next is closed with 1001
            /// and dropped: its disconnect signals follow and an error names it. Each connection starts with this value and can
            /// change its own with `WebSocketConnection.heartbeat_interval`. Read when the server
            /// starts listening or the client connects; a negative number makes that call return
            /// `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = $crate::settings::seconds_or_zero(::websocket_rs_core::ConnectionConfig::default().heartbeat_interval))]
            heartbeat_interval: f64,
            /// Whether a background I/O thread serves the sockets (`true`, the default) or
            /// `poll()` does, on the game thread (`false`).
            ///
            /// The I/O thread answers pings, finishes handshakes (TLS included) and sends queued
            /// messages while the game is busy, and keeps that work off the game thread. Without
            /// it nothing moves between two `poll()` calls, but nothing is handed from thread to
            /// thread either: choose `false` when the game loop never sleeps and exchanges many
            /// small messages (an uncapped dedicated server, `Engine.max_fps = 0`, on one or two
            /// cores), and keep `true` for a game that renders, loads or otherwise blocks its
            /// main thread. Without the thread, a client resolves the host name inside
            /// `connect_to_url`. Read when the server starts listening or the client connects.
            /// ```gdscript
            /// server.use_io_thread = false  # a headless server running flat out
            /// server.listen(9080)
            /// ```
            #[var]
            #[init(val = ::websocket_rs_core::ConnectionConfig::default().io_thread)]
            use_io_thread: bool,
            /// Whether to compress messages with permessage-deflate (RFC 7692) when the other side
            /// agrees. Default: `true`.
            ///
            /// A client offers it, a server accepts a client's offer. Browsers, Python
            /// `websockets`, Node `ws` and uWebSockets offer or accept it; Godot's built-in
            /// classes never do, so with them messages simply travel uncompressed. Messages
            /// shorter than `deflate_threshold` are never compressed. See
            /// `WebSocketConnection.get_permessage_deflate()` for what was agreed. Read when the
            /// server starts listening or the client connects.
            #[var]
            #[init(val = ::websocket_rs_core::DeflateConfig::default().enabled)]
            permessage_deflate: bool,
            /// zlib compression level of sent messages, 0 (nothing is compressed) to 9
            /// (smallest, slowest). Default: 6.
            ///
            /// Out of range makes `listen` / `connect_to_url` return `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = i64::from(::websocket_rs_core::DeflateConfig::default().level))]
            deflate_level: i64,
            /// Messages shorter than this many bytes are sent uncompressed. Default: 128.
            ///
            /// Compressing a few dozen bytes costs CPU and rarely saves a byte, and a message
            /// that does not get smaller is sent as it is. 0 compresses every message, even one
            /// that grows (as browsers do). A negative number makes `listen` / `connect_to_url`
            /// return `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = $crate::settings::int(::websocket_rs_core::DeflateConfig::default().threshold))]
            deflate_threshold: i64,
            /// Whether the server forgets its compression context after each message. Default:
            /// `true`.
            ///
            /// `true` keeps an idle connection free of compression memory (a kept deflate context
            /// costs 245 to 371 KiB per connection) at the price of a worse ratio for small,
            /// similar messages. A server always honours a client that asks for it; a client
            /// asks for it when this is `true`.
            #[var]
            #[init(val = ::websocket_rs_core::DeflateConfig::default().server_no_context_takeover)]
            deflate_server_no_context_takeover: bool,
            /// Whether the client forgets its compression context after each message. Default:
            /// `true`.
            ///
            /// A server with `true` imposes it on its clients (so it never keeps a 46.5 KiB
            /// inflate context per idle client); a client with `true` uses it and says so.
            #[var]
            #[init(val = ::websocket_rs_core::DeflateConfig::default().client_no_context_takeover)]
            deflate_client_no_context_takeover: bool,
            /// Largest LZ77 window, as a power of two (8 to 15), the server compresses with.
            /// Default: 15 (32 KiB).
            ///
            /// A server uses at most this; a client below 15 asks the server for it. Smaller
            /// windows use less memory while a context lives and compress less. Out of range makes
            /// `listen` / `connect_to_url` return `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = i64::from(::websocket_rs_core::DeflateConfig::default().server_max_window_bits))]
            deflate_server_max_window_bits: i64,
            /// Largest LZ77 window, as a power of two (8 to 15), the client compresses with.
            /// Default: 15.
            ///
            /// A server below 15 imposes it on clients that allow it (browsers do); a client uses
            /// at most this and tells the server. Out of range makes `listen` / `connect_to_url`
            /// return `ERR_INVALID_PARAMETER`.
            #[var]
            #[init(val = i64::from(::websocket_rs_core::DeflateConfig::default().client_max_window_bits))]
            deflate_client_max_window_bits: i64,
            /// Whether the running server or client is in Godot multiplayer mode (`gd_mp_api`,
            /// `create_server`, `create_client`).
            multiplayer: bool,
            /// The packet handed out by the last multiplayer `get_packet`; Godot reads it until
            /// the next.
            last_packet: ::websocket_rs_core::Bytes,
            /// MultiplayerPeer's `transfer_channel`: kept, not used (one ordered TCP stream).
            transfer_channel: i32,
            /// MultiplayerPeer's `transfer_mode`: kept, not used (every packet is reliable).
            #[init(val = ::godot::classes::multiplayer_peer::TransferMode::RELIABLE)]
            transfer_mode: ::godot::classes::multiplayer_peer::TransferMode,
            /// Where the next multiplayer `put_packet` goes (MultiplayerPeer's target peer).
            target_peer: i32,
            base: ::godot::obj::Base<::godot::classes::MultiplayerPeerExtension>,
        }

        #[::godot::register::godot_api]
        impl $class {
            $( $(#[$($signal_attr)*])* #[signal] fn $signal($($signal_param)*); )*

            /// Godot 3's buffer settings: sets `inbound_buffer_size` and `outbound_buffer_size`
            /// (given in KiB) and the inbound and outbound packet limits, for the connections of
            /// the next `listen` / `connect_to_url`.
            ///
            /// Returns `OK`, or `ERR_INVALID_PARAMETER` (and changes nothing) when a value is 0 or
            /// less.
            /// ```gdscript
            /// peer.set_buffers(256, 1024, 256, 1024)  # 256 KiB and 1024 messages each way
            /// ```
            #[func]
            fn set_buffers(
                &mut self,
                input_buffer_size_kb: i64,
                input_max_packets: i64,
                output_buffer_size_kb: i64,
                output_max_packets: i64,
            ) -> ::godot::global::Error {
                match $crate::settings::godot3_buffers(input_buffer_size_kb, input_max_packets, output_buffer_size_kb, output_max_packets) {
                    Ok((inbound, inbound_packets, outbound, outbound_packets)) => {
                        self.inbound_buffer_size = inbound;
                        self.inbound_max_packets = inbound_packets;
                        self.outbound_buffer_size = outbound;
                        self.outbound_max_packets = outbound_packets;
                        ::godot::global::Error::OK
                    }
                    Err(err) => $crate::errors::report("set_buffers", &err),
                }
            }

            /// Returns `max_queued_packets`: the larger of the inbound and outbound packet limits.
            #[func]
            fn get_max_queued_packets(&self) -> i64 {
                self.inbound_max_packets.max(self.outbound_max_packets)
            }

            /// Sets `max_queued_packets`: both the inbound and the outbound packet limit. The value
            /// is checked when the server starts listening or the client connects.
            #[func]
            fn set_max_queued_packets(&mut self, packets: i64) {
                self.inbound_max_packets = packets;
                self.outbound_max_packets = packets;
            }
        }

        impl $class {
            /// The connection properties, to be checked and turned into the core's config.
            fn connection_properties(&self, multiplayer: bool) -> $crate::settings::ConnectionProperties<'_> {
                $crate::settings::ConnectionProperties {
                    handshake_timeout: self.handshake_timeout,
                    supported_protocols: &self.supported_protocols,
                    handshake_headers: &self.handshake_headers,
                    inbound_buffer_size: self.inbound_buffer_size,
                    outbound_buffer_size: self.outbound_buffer_size,
                    inbound_max_packets: self.inbound_max_packets,
                    outbound_max_packets: self.outbound_max_packets,
                    max_message_size: self.max_message_size,
                    heartbeat_interval: self.heartbeat_interval,
                    io_thread: self.use_io_thread,
                    multiplayer,
                    deflate: $crate::settings::DeflateProperties {
                        enabled: self.permessage_deflate,
                        level: self.deflate_level,
                        threshold: self.deflate_threshold,
                        server_no_context_takeover: self.deflate_server_no_context_takeover,
                        client_no_context_takeover: self.deflate_client_no_context_takeover,
                        server_max_window_bits: self.deflate_server_max_window_bits,
                        client_max_window_bits: self.deflate_client_max_window_bits,
                    },
                }
            }
        }

        #[::godot::register::godot_api]
        impl ::godot::classes::IMultiplayerPeerExtension for $class {
            // Takes in network activity and emits the signals; scripts call it every frame.
            fn poll(&mut self) {
                let mut events = Vec::new();
                self.core.poll(&mut events);
                let mut data_received_listened = None;
                for event in events {
                    $crate::multiplayer_peer::Endpoint::dispatch(self, event, &mut data_received_listened);
                }
                // Without an I/O thread: what the signal handlers just sent leaves now, not at
                // the next poll.
                self.core.write_queued();
            }

            fn close(&mut self) {
                $crate::multiplayer_peer::Endpoint::close_now(self);
            }

            fn disconnect_peer(&mut self, peer: i32, force: bool) {
                $crate::multiplayer_peer::Endpoint::disconnect(self, peer, force);
            }

            unsafe fn get_packet_rawptr(
                &mut self,
                r_buffer: ::godot::meta::conv::RawPtr<*mut ::godot::meta::conv::RawPtr<*const u8>>,
                r_buffer_size: ::godot::meta::conv::RawPtr<*mut i32>,
            ) -> ::godot::global::Error {
                if !self.multiplayer {
                    return $crate::errors::report("get_packet", &$crate::multiplayer_peer::raw_mode_error());
                }
                let Some(packet) = $crate::multiplayer_peer::Endpoint::take_packet(self) else {
                    return $crate::errors::report(
                        "get_packet",
                        &::websocket_rs_core::Error::InvalidArgument("no packet is available".into()),
                    );
                };
                self.last_packet = packet.data;
                let size = i32::try_from(self.last_packet.len()).unwrap_or(i32::MAX);
                // SAFETY: Godot passes valid out-pointers; `last_packet` stays alive until the next call.
                unsafe {
                    *r_buffer.ptr() = ::godot::meta::conv::RawPtr::new(self.last_packet.as_ptr());
                    *r_buffer_size.ptr() = size;
                }
                ::godot::global::Error::OK
            }

            unsafe fn put_packet_rawptr(
                &mut self,
                p_buffer: ::godot::meta::conv::RawPtr<*const u8>,
                p_buffer_size: i32,
            ) -> ::godot::global::Error {
                if !self.multiplayer {
                    return $crate::errors::report("put_packet", &$crate::multiplayer_peer::raw_mode_error());
                }
                // SAFETY: Godot guarantees `p_buffer` points at `p_buffer_size` readable bytes.
                let data = match unsafe { $crate::connection::copy_packet(p_buffer, p_buffer_size) } {
                    Ok(data) => data,
                    Err(err) => return $crate::errors::report("put_packet", &err),
                };
                let packet = ::websocket_rs_core::Packet { data, is_text: false };
                $crate::errors::to_godot("put_packet", $crate::multiplayer_peer::Endpoint::send_packet(self, packet))
            }

            fn get_available_packet_count(&self) -> i32 {
                let count = $crate::multiplayer_peer::Endpoint::available_packets(self);
                if count == 0 {
                    // SceneMultiplayer asks last after handling every packet: without an I/O
                    // thread, the answers it queued meanwhile go out now, not a frame later.
                    self.core.write_queued();
                }
                i32::try_from(count).unwrap_or(i32::MAX)
            }

            fn get_max_packet_size(&self) -> i32 {
                i32::try_from(self.max_message_size).unwrap_or(i32::MAX)
            }

            // WebSocket runs over one TCP stream: everything arrives reliably, in order, on channel 0.
            fn get_packet_channel(&self) -> i32 {
                0
            }

            fn get_packet_mode(&self) -> ::godot::classes::multiplayer_peer::TransferMode {
                ::godot::classes::multiplayer_peer::TransferMode::RELIABLE
            }

            fn set_transfer_channel(&mut self, channel: i32) {
                self.transfer_channel = channel;
            }

            fn get_transfer_channel(&self) -> i32 {
                self.transfer_channel
            }

            fn set_transfer_mode(&mut self, mode: ::godot::classes::multiplayer_peer::TransferMode) {
                self.transfer_mode = mode;
            }

            fn get_transfer_mode(&self) -> ::godot::classes::multiplayer_peer::TransferMode {
                self.transfer_mode
            }

            fn set_target_peer(&mut self, peer: i32) {
                self.target_peer = peer;
            }

            fn get_packet_peer(&self) -> i32 {
                $crate::multiplayer_peer::Endpoint::packet_peer(self)
            }

            fn is_server_relay_supported(&self) -> bool {
                true
            }

            fn is_server(&self) -> bool {
                <Self as $crate::multiplayer_peer::Endpoint>::IS_SERVER
            }

            fn get_unique_id(&self) -> i32 {
                $crate::multiplayer_peer::Endpoint::unique_id(self)
            }

            fn get_connection_status(&self) -> ::godot::classes::multiplayer_peer::ConnectionStatus {
                $crate::multiplayer_peer::Endpoint::connection_status(self)
            }

            $($($extra_virtual)*)?
        }
    };
}

pub(crate) use websocket_multiplayer_peer;
