//! The WebSocket protocol of an open connection (RFC 6455 sections 5 to 7), our own framing so
//! that RSV1 can mean "compressed" (RFC 7692): frames in, messages out; messages in, frames out.
//!
//! [`Protocol`] keeps no stream: [`Protocol::read`] and [`Protocol::flush`] take the stream they
//! use, so it runs over TCP, TLS or bytes in memory alike. Reading parses frames in place in one
//! buffer; an unfragmented message's payload is handed out as a slice of that buffer (`Bytes`,
//! no copy). Text is checked for UTF-8 as its bytes arrive, mid-frame, so a connection fails as
//! soon as its text can no longer be valid (section 8.1). Writing formats each frame straight
//! into one outgoing buffer; one flush writes all of it. Pings are answered, close frames are
//! answered and checked, and a violation is reported as a [`Violation`] with its close code.

use std::fmt;
use std::io::{self, Read, Write};

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{apply_mask, opcode, write_header, FrameHeader, Utf8Validator};
use super::Role;
use crate::packet::{Packet, SharedMessage};

/// A read asks the stream for at least this many bytes (fewer buffered reads per message).
const MIN_READ: usize = 1024;
/// The read buffer's size when it is (re)made for small messages.
const READ_BUFFER_SIZE: usize = 4096;
/// The most bytes one read asks for (and zero-fills first).
const MAX_READ: usize = 64 * 1024;
/// An empty read buffer larger than this is freed between reads, so an idle connection stays small.
const KEEP_READ_CAPACITY: usize = 8 * 1024;
/// An empty write buffer larger than this is freed after a flush, for the same reason.
const KEEP_WRITE_CAPACITY: usize = 4 * 1024;
/// The longest close reason that fits a control frame with its two-byte code.
const MAX_CLOSE_REASON: usize = 123;

/// A per-message extension that uses RSV1 (permessage-deflate, RFC 7692): it transforms whole
/// messages on the way out and back on the way in. RSV1 set on a message's first frame means
/// its payload is transformed.
pub(crate) trait PerMessageExtension {
    /// The payload to send with RSV1 set instead of `payload`, or `None` to send `payload` as
    /// it is (RSV1 clear), e.g. because it is too small to be worth compressing.
    fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>>;

    /// Appends what `input`, the next frame's payload of a transformed message, turns back into
    /// to `out`; `fin` when it is the message's last frame. `out` must not grow past `max_size`
    /// bytes in all: the extension stops with [`ExtensionError::TooBig`] instead.
    fn decompress(&mut self, input: &[u8], fin: bool, max_size: usize, out: &mut Vec<u8>) -> Result<(), ExtensionError>;

    /// When what [`PerMessageExtension::compress`] makes of a payload depends on nothing but the
    /// payload and the extension's settings (no state carried from message to message): a key
    /// that names those settings, so that a message sent to many peers is transformed once for
    /// all peers with the same key. `None` (the default): transform it for each peer.
    fn share_key(&self) -> Option<u64> {
        None
    }
}

/// Why an extension could not turn a received payload back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ExtensionError {
    /// The message would be larger than the size allowed (close code 1009).
    TooBig,
    /// The payload is not a valid transformed stream; why (close code 1007: RFC 7692 section 8
    /// has such a message fail the connection, and its data is not what the message claims).
    Corrupt(String),
}

/// The limits on what the other side may send.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrameLimits {
    /// Largest message (after an extension's transform), in bytes.
    pub(crate) max_message_size: usize,
    /// Largest frame payload, in bytes, as it travels.
    pub(crate) max_frame_size: usize,
}

/// What one successful [`Protocol::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A complete data message.
    Message(Packet),
    /// A ping (its pong is queued while the connection is active).
    Ping,
    /// A pong, and its payload (the payload of the ping it answers).
    Pong(Bytes),
    /// A close frame: its code (1005 when it had none) and reason. A code that may not be sent
    /// is reported, and answered, as 1002 "Protocol violation".
    Close { code: u16, reason: String },
}

/// Why [`Protocol::read`] returned no message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The stream has nothing more now.
    WouldBlock,
    /// The connection is over after a close handshake (or was over already).
    Closed,
    /// The transport ended or failed without a close handshake.
    Lost,
    /// The other side broke the protocol or a limit: fail the connection with its close code.
    Violation(Violation),
}

/// Why [`Protocol::flush`] did not write everything.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FlushError {
    /// The stream takes no more now; the rest waits for the next flush.
    WouldBlock,
    /// Server: the close handshake is complete and its last frame is out; the connection is over.
    Closed,
    /// The transport failed.
    Lost,
}

/// A violation of the protocol or of a limit by the other side (RFC 6455 section 7.1.7: fail
/// the connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// RSV2 or RSV3 set, or RSV1 with no extension that gives it a meaning.
    ReservedBits,
    /// RSV1 on a continuation or control frame (it marks a whole message, on its first frame).
    Rsv1NotOnFirstFrame,
    /// An opcode RFC 6455 reserves.
    ReservedOpcode(u8),
    /// Server: a client frame that is not masked (section 5.1).
    UnmaskedFrameFromClient,
    /// Client: a server frame that is masked (section 5.1).
    MaskedFrameFromServer,
    /// A 64-bit payload length with its most significant bit set (section 5.2).
    LengthTooLarge,
    /// A control frame without FIN (section 5.5).
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (section 5.5).
    ControlFrameTooLong(u64),
    /// A continuation frame with no fragmented message under way (section 5.4).
    UnexpectedContinuation,
    /// A new data message while a fragmented one is under way (section 5.4).
    ExpectedContinuation,
    /// A close frame with a one-byte payload (section 5.5.1).
    CloseFrameOfOneByte,
    /// A frame after the other side's close frame.
    FrameAfterClose,
    /// Text (or a close reason) that is not UTF-8 (close code 1007).
    InvalidUtf8,
    /// A message or frame larger than the limit (close code 1009); `size` is how large it got
    /// known to be.
    TooBig { size: u64, max: usize },
    /// A transformed (compressed) message whose payload is not a valid stream (close code 1007).
    CorruptMessage(String),
}

impl Violation {
    /// The close code owed for this violation (RFC 6455 section 7.4.1).
    pub(crate) fn close_code(&self) -> u16 {
        match self {
            Violation::InvalidUtf8 | Violation::CorruptMessage(_) => 1007,
            Violation::TooBig { .. } => 1009,
            _ => 1002,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::ReservedBits => write!(f, "a frame with reserved bits set that no extension uses"),
            Violation::Rsv1NotOnFirstFrame => write!(f, "RSV1 set on a continuation or control frame"),
            Violation::ReservedOpcode(code) => write!(f, "a frame with the reserved opcode {code:#x}"),
            Violation::UnmaskedFrameFromClient => write!(f, "an unmasked frame from a client"),
            Violation::MaskedFrameFromServer => write!(f, "a masked frame from a server"),
            Violation::LengthTooLarge => write!(f, "a frame length with its most significant bit set"),
            Violation::FragmentedControlFrame => write!(f, "a fragmented control frame"),
            Violation::ControlFrameTooLong(len) => write!(f, "a control frame of {len} bytes (at most 125)"),
            Violation::UnexpectedContinuation => write!(f, "a continuation frame with no message to continue"),
            Violation::ExpectedContinuation => write!(f, "a new message before the fragmented one ended"),
            Violation::CloseFrameOfOneByte => write!(f, "a close frame with a one-byte payload"),
            Violation::FrameAfterClose => write!(f, "a frame after the close frame"),
            Violation::InvalidUtf8 => write!(f, "invalid UTF-8 in a text message or close reason"),
            Violation::TooBig { size, max } => {
                write!(f, "a message of at least {size} bytes, over max_message_size ({max})")
            }
            Violation::CorruptMessage(why) => write!(f, "a compressed message that does not decompress: {why}"),
        }
    }
}

/// How far the close handshake is (RFC 6455 section 7), as seen by the framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CloseProgress {
    /// No close frame either way.
    Active,
    /// We sent a close frame; theirs may come, data before it is still read.
    ClosedByUs,
    /// They sent a close frame first; our answer is queued.
    ClosedByPeer,
    /// We closed first and their answer came.
    Acknowledged,
    /// The connection is over.
    Terminated,
}

impl CloseProgress {
    /// Whether frames may still come (no close frame received).
    fn can_read(self) -> bool {
        matches!(self, CloseProgress::Active | CloseProgress::ClosedByUs)
    }

    /// Whether close frames crossed both ways.
    fn exchanged(self) -> bool {
        matches!(self, CloseProgress::ClosedByPeer | CloseProgress::Acknowledged)
    }
}

/// The frame whose payload is being read.
#[derive(Debug)]
struct FrameInProgress {
    /// Its header, checked.
    header: FrameHeader,
    /// Its payload length.
    len: usize,
    /// Payload bytes at the front of the read buffer already unmasked (and checked when text).
    checked: usize,
    /// Whether its bytes are text to check as they arrive (text, not transformed).
    check_utf8: bool,
}

/// A fragmented message being put together.
#[derive(Debug)]
struct MessageInProgress {
    /// Whether it is text (else binary).
    is_text: bool,
    /// Whether its first frame had RSV1 (the extension turns its frames back).
    transformed: bool,
    /// Its payload so far (after the extension's transform).
    data: Vec<u8>,
}

/// The protocol state of one open connection (see the module documentation).
pub(crate) struct Protocol {
    /// Server (reads masked frames, writes unmasked ones) or client (the other way round).
    role: Role,
    /// What the other side may send.
    limits: FrameLimits,
    /// How far the close handshake is.
    close: CloseProgress,
    /// Bytes read and not yet consumed: the unread part of the frame in progress, then more.
    read_buf: BytesMut,
    /// The frame whose header was read and whose payload is not all there yet.
    frame: Option<FrameInProgress>,
    /// The fragmented message under way.
    message: Option<MessageInProgress>,
    /// UTF-8 state of the text message being received.
    utf8: Utf8Validator,
    /// Frames formatted and not yet written to the stream.
    out: Vec<u8>,
    /// The RSV1 extension agreed on for this connection, if any.
    extension: Option<Box<dyn PerMessageExtension>>,
    /// Bytes read from the stream (including those handed over with the upgrade) and written
    /// to it: the statistics' wire bytes.
    wire_bytes: (u64, u64),
}

impl Protocol {
    /// The protocol of a connection just upgraded; `already_read` are bytes that came after
    /// the HTTP head, `extension` the RSV1 extension agreed on, if any.
    pub(crate) fn new(
        role: Role,
        limits: FrameLimits,
        already_read: Vec<u8>,
        extension: Option<Box<dyn PerMessageExtension>>,
    ) -> Self {
        Protocol {
            role,
            limits,
            close: CloseProgress::Active,
            wire_bytes: (already_read.len() as u64, 0),
            read_buf: BytesMut::from(Bytes::from(already_read)),
            frame: None,
            message: None,
            utf8: Utf8Validator::default(),
            out: Vec::new(),
            extension,
        }
    }

    /// Whether messages may still be sent (no close frame sent or received).
    pub(crate) fn is_active(&self) -> bool {
        self.close == CloseProgress::Active
    }

    /// Reads the next message or control frame, reading `stream` when the buffer holds no whole
    /// one. Queues the answer to a ping or a close frame (written by [`Protocol::flush`]).
    /// A server whose close handshake is done writes what is queued and reports `Closed`.
    pub(crate) fn read<S: Read + Write>(&mut self, stream: &mut S) -> Result<Incoming, ReadError> {
        if self.close == CloseProgress::Terminated {
            return Err(ReadError::Closed);
        }
        // RFC 6455 section 7.1.1: the server closes TCP first, once both close frames crossed.
        if self.role == Role::Server && self.close.exchanged() {
            match self.write_out(stream) {
                Ok(()) => {
                    self.close = CloseProgress::Terminated;
                    return Err(ReadError::Closed);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Err(ReadError::Lost),
            }
        }
        loop {
            if let Some(incoming) = self.next_buffered().map_err(ReadError::Violation)? {
                return Ok(incoming);
            }
            self.fill(stream)?;
        }
    }

    /// Queues a data message; false (nothing queued) once a close frame was sent or received.
    pub(crate) fn send_message(&mut self, data: &[u8], is_text: bool) -> bool {
        if !self.is_active() {
            return false;
        }
        let code = if is_text { opcode::TEXT } else { opcode::BINARY };
        match self.extension.as_mut().and_then(|extension| extension.compress(data)) {
            Some(transformed) => self.queue_frame(code, true, &transformed),
            None => self.queue_frame(code, false, data),
        }
        true
    }

    /// [`Protocol::send_message`] for a message queued for several peers: an extension with a
    /// `share_key` transforms it once for all of them.
    pub(crate) fn send_shared(&mut self, shared: &SharedMessage) -> bool {
        if !self.is_active() {
            return false;
        }
        let packet = &shared.packet;
        let code = if packet.is_text { opcode::TEXT } else { opcode::BINARY };
        let transformed = match self.extension.as_mut() {
            None => None,
            Some(extension) => match extension.share_key() {
                Some(key) => shared.transformed(key, |payload| extension.compress(payload)),
                None => extension.compress(&packet.data).map(Bytes::from),
            },
        };
        match transformed {
            Some(transformed) => self.queue_frame(code, true, &transformed),
            None => self.queue_frame(code, false, &packet.data),
        }
        true
    }

    /// Queues a ping with `payload` (at most 125 bytes); false (nothing queued) once closing.
    pub(crate) fn send_ping(&mut self, payload: &[u8]) -> bool {
        if !self.is_active() {
            return false;
        }
        debug_assert!(payload.len() <= 125);
        self.queue_frame(opcode::PING, false, payload);
        true
    }

    /// Bytes read from and written to the stream so far.
    pub(crate) fn wire_bytes(&self) -> (u64, u64) {
        self.wire_bytes
    }

    /// Queues our close frame with `code` and `reason` (cut to fit a control frame), unless a
    /// close frame was sent or received already.
    pub(crate) fn close(&mut self, code: u16, reason: &str) {
        if self.is_active() {
            self.close = CloseProgress::ClosedByUs;
            self.queue_close(Some((code, reason)));
        }
    }

    /// Writes every queued frame to `stream`. A server whose close handshake is done reports
    /// `Closed` once its last frame is out.
    pub(crate) fn flush<S: Write>(&mut self, stream: &mut S) -> Result<(), FlushError> {
        match self.write_out(stream) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Err(FlushError::WouldBlock),
            Err(_) => return Err(FlushError::Lost),
        }
        if self.role == Role::Server && !self.close.can_read() {
            self.close = CloseProgress::Terminated;
            return Err(FlushError::Closed);
        }
        Ok(())
    }

    /// Parses what the buffer holds: the next message or control frame, or `None` when more
    /// bytes are needed.
    fn next_buffered(&mut self) -> Result<Option<Incoming>, Violation> {
        loop {
            let frame = match &mut self.frame {
                Some(frame) => frame,
                None => {
                    let Some((header, used)) = FrameHeader::parse(&self.read_buf) else { return Ok(None) };
                    let frame = self.accept_header(header)?;
                    self.read_buf.advance(used);
                    self.frame.insert(frame)
                }
            };
            let available = frame.len.min(self.read_buf.len());
            if available > frame.checked {
                let fresh = &mut self.read_buf[frame.checked..available];
                if let Some(key) = frame.header.mask {
                    apply_mask(fresh, key, frame.checked);
                }
                // RFC 6455 section 8.1: fail as soon as the text can no longer be valid.
                if frame.check_utf8 && !self.utf8.feed(fresh) {
                    return Err(Violation::InvalidUtf8);
                }
                frame.checked = available;
            }
            if available < frame.len {
                return Ok(None);
            }
            let (header, len) = (frame.header, frame.len);
            self.frame = None;
            let payload = self.read_buf.split_to(len);
            if let Some(incoming) = self.complete_frame(header, payload)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// Checks a frame header before its payload comes (RFC 6455 section 5); the frame to read.
    fn accept_header(&mut self, header: FrameHeader) -> Result<FrameInProgress, Violation> {
        if !self.close.can_read() {
            return Err(Violation::FrameAfterClose);
        }
        // RFC 6455 section 5.2: "MUST be 0 unless an extension is negotiated that defines
        // meanings for non-zero values"; RFC 7692 section 6: RSV1 marks a message's first frame.
        if header.rsv2_or_rsv3 || (header.rsv1 && self.extension.is_none()) {
            return Err(Violation::ReservedBits);
        }
        let code = header.opcode;
        if !matches!(code, opcode::CONTINUATION | opcode::TEXT | opcode::BINARY | opcode::CLOSE | opcode::PING | opcode::PONG)
        {
            return Err(Violation::ReservedOpcode(code));
        }
        if header.rsv1 && !matches!(code, opcode::TEXT | opcode::BINARY) {
            return Err(Violation::Rsv1NotOnFirstFrame);
        }
        // RFC 6455 section 5.1: a client masks every frame, a server none.
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(Violation::UnmaskedFrameFromClient),
            (Role::Client, true) => return Err(Violation::MaskedFrameFromServer),
            _ => {}
        }
        if header.payload_len >> 63 != 0 {
            return Err(Violation::LengthTooLarge);
        }
        let too_big = |size: u64, max: usize| Violation::TooBig { size, max };
        let mut check_utf8 = false;
        if opcode::is_control(code) {
            // RFC 6455 section 5.5: "All control frames MUST have a payload length of 125
            // bytes or less and MUST NOT be fragmented."
            if !header.fin {
                return Err(Violation::FragmentedControlFrame);
            }
            if header.payload_len > 125 {
                return Err(Violation::ControlFrameTooLong(header.payload_len));
            }
        } else {
            match (code, &self.message) {
                (opcode::CONTINUATION, None) => return Err(Violation::UnexpectedContinuation),
                (opcode::TEXT | opcode::BINARY, Some(_)) => return Err(Violation::ExpectedContinuation),
                _ => {}
            }
            if header.payload_len > self.limits.max_frame_size as u64 {
                return Err(too_big(header.payload_len, self.limits.max_frame_size));
            }
            match &self.message {
                // A transformed message is measured as the extension turns it back.
                Some(message) if message.transformed => {}
                Some(message) => {
                    let size = message.data.len() as u64 + header.payload_len;
                    if size > self.limits.max_message_size as u64 {
                        return Err(too_big(size, self.limits.max_message_size));
                    }
                    check_utf8 = message.is_text;
                }
                None => {
                    if !header.rsv1 && header.payload_len > self.limits.max_message_size as u64 {
                        return Err(too_big(header.payload_len, self.limits.max_message_size));
                    }
                    if code == opcode::TEXT {
                        self.utf8 = Utf8Validator::default();
                        check_utf8 = !header.rsv1;
                    }
                }
            }
        }
        let len = usize::try_from(header.payload_len).map_err(|_| too_big(header.payload_len, usize::MAX))?;
        Ok(FrameInProgress { header, len, checked: 0, check_utf8 })
    }

    /// Acts on a whole frame (unmasked, its raw text checked): a message when it completes one.
    fn complete_frame(&mut self, header: FrameHeader, payload: BytesMut) -> Result<Option<Incoming>, Violation> {
        match header.opcode {
            opcode::CLOSE => self.on_close(&payload).map(Some),
            opcode::PING => {
                // RFC 6455 section 5.5.2: answer with a pong of the same payload, unless closing.
                if self.is_active() {
                    self.queue_frame(opcode::PONG, false, &payload);
                }
                Ok(Some(Incoming::Ping))
            }
            opcode::PONG => Ok(Some(Incoming::Pong(payload.freeze()))),
            opcode::TEXT | opcode::BINARY => {
                let is_text = header.opcode == opcode::TEXT;
                if header.rsv1 {
                    let mut message = MessageInProgress { is_text, transformed: true, data: Vec::new() };
                    self.turn_back(&mut message, &payload, header.fin)?;
                    return Ok(self.finish_or_keep(message, header.fin));
                }
                if !header.fin {
                    self.message = Some(MessageInProgress { is_text, transformed: false, data: payload.to_vec() });
                    return Ok(None);
                }
                if is_text && !self.utf8.is_complete() {
                    return Err(Violation::InvalidUtf8);
                }
                // The payload is a slice of the read buffer: no copy.
                Ok(Some(Incoming::Message(Packet { data: payload.freeze(), is_text })))
            }
            opcode::CONTINUATION => {
                let Some(mut message) = self.message.take() else { return Err(Violation::UnexpectedContinuation) };
                if message.transformed {
                    self.turn_back(&mut message, &payload, header.fin)?;
                } else {
                    message.data.extend_from_slice(&payload);
                    if header.fin && message.is_text && !self.utf8.is_complete() {
                        return Err(Violation::InvalidUtf8);
                    }
                }
                Ok(self.finish_or_keep(message, header.fin))
            }
            other => Err(Violation::ReservedOpcode(other)),
        }
    }

    /// The message when `fin`, else keeps it for the next frames.
    fn finish_or_keep(&mut self, message: MessageInProgress, fin: bool) -> Option<Incoming> {
        if fin {
            return Some(Incoming::Message(Packet { data: Bytes::from(message.data), is_text: message.is_text }));
        }
        self.message = Some(message);
        None
    }

    /// Has the extension turn a transformed frame's payload back into `message`, checking the
    /// size limit and, for text, UTF-8 of what came out.
    fn turn_back(&mut self, message: &mut MessageInProgress, input: &[u8], fin: bool) -> Result<(), Violation> {
        let max = self.limits.max_message_size;
        let Some(extension) = self.extension.as_mut() else { return Err(Violation::ReservedBits) };
        let before = message.data.len();
        match extension.decompress(input, fin, max, &mut message.data) {
            Ok(()) => {}
            Err(ExtensionError::TooBig) => {
                return Err(Violation::TooBig { size: message.data.len().max(max.saturating_add(1)) as u64, max })
            }
            Err(ExtensionError::Corrupt(why)) => return Err(Violation::CorruptMessage(why)),
        }
        if message.data.len() > max {
            return Err(Violation::TooBig { size: message.data.len() as u64, max });
        }
        if message.is_text && (!self.utf8.feed(&message.data[before..]) || (fin && !self.utf8.is_complete())) {
            return Err(Violation::InvalidUtf8);
        }
        Ok(())
    }

    /// A close frame arrived (RFC 6455 section 5.5.1): checks it, answers it when they closed
    /// first, and reports it.
    fn on_close(&mut self, payload: &[u8]) -> Result<Incoming, Violation> {
        let frame = match payload {
            [] => None,
            [_] => return Err(Violation::CloseFrameOfOneByte),
            [high, low, reason @ ..] => {
                let reason = std::str::from_utf8(reason).map_err(|_| Violation::InvalidUtf8)?;
                Some((u16::from_be_bytes([*high, *low]), reason.to_string()))
            }
        };
        match self.close {
            CloseProgress::Active => {
                self.close = CloseProgress::ClosedByPeer;
                // A code that may not be sent is answered and reported as a protocol error.
                let frame = frame.map(|(code, reason)| {
                    if close_code_may_be_sent(code) {
                        (code, reason)
                    } else {
                        (1002, "Protocol violation".to_string())
                    }
                });
                // Section 5.5.1: the answer echoes the status code received.
                self.queue_close(frame.as_ref().map(|(code, reason)| (*code, reason.as_str())));
                let (code, reason) = frame.unwrap_or((1005, String::new()));
                Ok(Incoming::Close { code, reason })
            }
            CloseProgress::ClosedByUs => {
                self.close = CloseProgress::Acknowledged;
                let (code, reason) = frame.unwrap_or((1005, String::new()));
                Ok(Incoming::Close { code, reason })
            }
            _ => Err(Violation::FrameAfterClose),
        }
    }

    /// Formats a close frame into the outgoing buffer (`None`: no code, empty payload).
    fn queue_close(&mut self, frame: Option<(u16, &str)>) {
        let Some((code, reason)) = frame else { return self.queue_frame(opcode::CLOSE, false, &[]) };
        let mut cut = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut payload = [0u8; 2 + MAX_CLOSE_REASON];
        payload[..2].copy_from_slice(&code.to_be_bytes());
        payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
        self.queue_frame(opcode::CLOSE, false, &payload[..2 + cut]);
    }

    /// Formats one final frame straight into the outgoing buffer; a client masks it with a
    /// fresh random key (RFC 6455 section 5.3).
    fn queue_frame(&mut self, code: u8, rsv1: bool, payload: &[u8]) {
        let mask = (self.role == Role::Client).then(|| fastrand::u32(..).to_ne_bytes());
        self.out.reserve(super::frame::MAX_HEADER_LEN + payload.len());
        write_header(&mut self.out, rsv1, code, payload.len(), mask);
        let start = self.out.len();
        self.out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut self.out[start..], key, 0);
        }
    }

    /// Writes the outgoing buffer to `stream`; what the stream does not take stays queued.
    fn write_out<S: Write>(&mut self, stream: &mut S) -> io::Result<()> {
        let mut written = 0;
        let result = loop {
            if written == self.out.len() {
                break stream.flush();
            }
            match stream.write(&self.out[written..]) {
                Ok(0) => break Err(io::Error::new(io::ErrorKind::WriteZero, "the stream took no bytes")),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => break Err(err),
            }
        };
        self.wire_bytes.1 += written as u64;
        if written == self.out.len() {
            self.out.clear();
            if self.out.capacity() > KEEP_WRITE_CAPACITY {
                self.out = Vec::new();
            }
        } else {
            self.out.drain(..written);
        }
        result
    }

    /// The transport ended: cleanly only after the close frames crossed.
    fn transport_ended(&mut self) -> Result<(), ReadError> {
        let clean = self.close.exchanged();
        self.close = CloseProgress::Terminated;
        Err(if clean { ReadError::Closed } else { ReadError::Lost })
    }

    /// Reads more bytes from `stream` into the read buffer: Ok when some came.
    fn fill<S: Read>(&mut self, stream: &mut S) -> Result<(), ReadError> {
        // The frame in progress tells how much is still to come; ask for that much at once.
        let still_to_come = self.frame.as_ref().map_or(0, |frame| frame.len.saturating_sub(self.read_buf.len()));
        let wanted = still_to_come.clamp(MIN_READ, MAX_READ);
        if self.read_buf.capacity() - self.read_buf.len() < wanted {
            self.read_buf.reserve(wanted.max(READ_BUFFER_SIZE));
        }
        let start = self.read_buf.len();
        let size = (self.read_buf.capacity() - start).min(MAX_READ);
        self.read_buf.resize(start + size, 0);
        let result = loop {
            match stream.read(&mut self.read_buf[start..]) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let read = result.as_ref().map_or(0, |n| *n);
        self.read_buf.truncate(start + read);
        self.wire_bytes.0 += read as u64;
        match result {
            Ok(0) => self.transport_ended(),
            // TLS: the other side closed TCP without close_notify (as servers commonly do after
            // the close handshake); the transport ended all the same.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => self.transport_ended(),
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if self.read_buf.is_empty() && self.read_buf.capacity() > KEEP_READ_CAPACITY {
                    self.read_buf = BytesMut::new();
                }
                Err(ReadError::WouldBlock)
            }
            // A reset after their close frame ends the connection as a close would.
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset && !self.close.can_read() => Err(ReadError::Closed),
            Err(_) => Err(ReadError::Lost),
        }
    }

    /// Bytes held by the read and write buffers (allocated, used or not).
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.read_buf.capacity() + self.out.capacity()
    }
}

/// Whether a close code may be sent in a close frame (RFC 6455 section 7.4): 1000-1003,
/// 1007-1013 and 3000-4999; 1004-1006 and 1015 are reserved or only reported locally.
fn close_code_may_be_sent(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

#[cfg(test)]
mod tests;
