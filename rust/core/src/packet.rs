//! One WebSocket message as the game sends or receives it.

use tungstenite::Bytes;

use crate::Error;

/// One WebSocket message, text or binary, as received or as queued for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The payload (UTF-8 when `is_text`).
    pub data: Bytes,
    /// Whether it travels as a text frame (else binary).
    pub is_text: bool,
}

impl Packet {
    /// Refuses a text packet that is not valid UTF-8 (what every send path checks before it
    /// queues anything).
    pub(crate) fn check_text(&self) -> Result<(), Error> {
        if self.is_text && std::str::from_utf8(&self.data).is_err() {
            return Err(Error::TextNotUtf8);
        }
        Ok(())
    }
}
