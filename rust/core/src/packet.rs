//! One WebSocket message as the game sends or receives it.

use tungstenite::Bytes;

/// One WebSocket message, text or binary, as received or as queued for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The payload (UTF-8 when `is_text`).
    pub data: Bytes,
    /// Whether it travels as a text frame (else binary).
    pub is_text: bool,
}
