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

/// One message queued for several peers at once ([`crate::Server::broadcast`]): the bytes once,
/// shared by every peer's queue, and the payload as each compression setting turns it, made by
/// the first connection that sends it (the others send those same bytes).
#[derive(Debug)]
pub(crate) struct SharedMessage {
    pub(crate) packet: Packet,
    /// Per compression setting (the extension's `share_key`): the payload to send with RSV1 set,
    /// or `None` to send it as it is. A few entries at most (one per setting in use).
    transformed: std::sync::Mutex<Vec<(u64, Option<Bytes>)>>,
}

impl SharedMessage {
    /// `packet`, to be queued for several peers.
    pub(crate) fn new(packet: Packet) -> std::sync::Arc<Self> {
        std::sync::Arc::new(SharedMessage { packet, transformed: std::sync::Mutex::default() })
    }

    /// The payload as the setting `key` turns it: made with `transform` by the first caller,
    /// the same bytes for every later one.
    pub(crate) fn transformed(&self, key: u64, transform: impl FnOnce(&[u8]) -> Option<Vec<u8>>) -> Option<Bytes> {
        let mut made = self.transformed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, payload)) = made.iter().find(|(k, _)| *k == key) {
            return payload.clone();
        }
        let payload = transform(&self.packet.data).map(Bytes::from);
        made.push((key, payload.clone()));
        payload
    }
}
