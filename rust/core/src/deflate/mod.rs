//! permessage-deflate (RFC 7692): compression of each message's payload, negotiated in the
//! `Sec-WebSocket-Extensions` header, without I/O and without Godot.
//!
//! - [`DeflateConfig`]: the user's settings (GDScript properties `permessage_deflate`,
//!   `deflate_level`, ...), checked by [`DeflateConfig::validate`].
//! - `negotiation`: the client's offer, the server's answer (the first acceptable offer of every
//!   header value), the client's check of that answer; the result is a [`DeflateParams`].
//! - `codec`: `PerMessageDeflate`, one connection's compressor and decompressor for its role,
//!   called by the framing layer once per outgoing message and once per incoming frame of a
//!   compressed message (RSV1 set on its first frame).
//!
//! Window bits: RFC 7692 allows 8 to 15. zlib (and zlib-rs, our backend) cannot deflate with an
//! 8-bit window and use 9 instead; with 9 their longest match distance is 512 - 262 = 250 bytes,
//! so what they produce is a valid 8-bit-window stream (Node's `ws` relies on the same). We
//! therefore accept 8 for our sending direction and deflate with 9, and inflate a peer's 8-bit
//! stream with a 9-bit window (flate2 takes 9..=15), which reads every valid 8-bit stream.

mod codec;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(test)]
mod measure;
mod negotiation;

use std::fmt;

use crate::Error;

pub(crate) use codec::{InflateError, PerMessageDeflate};
pub(crate) use negotiation::{client_accept, client_offer, server_answer};

/// The registered extension token (compared without regard to ASCII case).
const EXTENSION_NAME: &str = "permessage-deflate";
/// The smallest LZ77 window RFC 7692 allows, as a power of two.
const MIN_WINDOW_BITS: u8 = 8;
/// The largest LZ77 window, and the one used when none was negotiated.
const MAX_WINDOW_BITS: u8 = 15;
/// The largest zlib compression level.
const MAX_LEVEL: u32 = 9;

/// The user's permessage-deflate settings for a server or a client, read at `listen`/`connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Whether to offer (client) or accept (server) compression at all.
    pub enabled: bool,
    /// zlib compression level, 0 (store only: nothing is compressed) to 9 (smallest, slowest).
    pub level: u32,
    /// Largest LZ77 window the server may compress with, as a power of two (8..=15). A server
    /// answers with it; a client asks for it when below 15. Also sizes the client's inflater.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window the client may compress with (8..=15). A server imposes it when the
    /// client offers `client_max_window_bits` (browsers do); a client offers it.
    pub client_max_window_bits: u8,
    /// Whether the server forgets its compression context after each message (less memory, a
    /// worse ratio for small similar messages). A server always agrees; a client asks for it.
    pub server_no_context_takeover: bool,
    /// Whether the client forgets its compression context after each message. A server imposes
    /// it; a client uses it (and says so) when set.
    pub client_no_context_takeover: bool,
    /// Messages smaller than this many bytes are sent uncompressed, and so is a message that
    /// does not get smaller; 0 compresses every message, even one that grows (as browsers do).
    pub threshold: usize,
}

impl Default for DeflateConfig {
    /// On, level 6, full windows, no context takeover either way, messages under 128 bytes sent
    /// as they are. Without takeover no context outlives a message, so an idle or between-messages
    /// connection holds 0 bytes for compression (with takeover: 245 to 371 KiB per compressor
    /// and 46.5 KiB per decompressor, see `measure.rs`); the price is the ratio of small messages
    /// (330-byte JSON: 0.65 of their size instead of 0.22) and the allocation of a context for
    /// each message.
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            level: 6,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            threshold: 128,
        }
    }
}

impl DeflateConfig {
    /// Checks that the level and window bits are within their ranges; the error names the
    /// GDScript property.
    pub fn validate(&self) -> Result<(), Error> {
        if self.level > MAX_LEVEL {
            return Err(Error::InvalidSetting {
                name: "deflate_level".into(),
                problem: format!("must be 0..9 (is {})", self.level),
            });
        }
        for (name, bits) in [
            ("deflate_server_max_window_bits", self.server_max_window_bits),
            ("deflate_client_max_window_bits", self.client_max_window_bits),
        ] {
            if !(MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
                return Err(Error::InvalidSetting { name: name.into(), problem: format!("must be 8..15 (is {bits})") });
            }
        }
        Ok(())
    }
}

/// The permessage-deflate parameters both ends agreed on, per direction (window bits are 15 when
/// the answer did not limit them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this LZ77 window (power of two, 8..=15).
    pub server_max_window_bits: u8,
    /// The client compresses with at most this LZ77 window (power of two, 8..=15).
    pub client_max_window_bits: u8,
}

impl DeflateParams {
    /// The agreement as a `Sec-WebSocket-Extensions` element, with the parameters that differ
    /// from RFC 7692's defaults, e.g. `permessage-deflate; server_no_context_takeover`.
    pub fn to_header(&self) -> String {
        let mut header = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            header.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            header.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < MAX_WINDOW_BITS {
            header.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        if self.client_max_window_bits < MAX_WINDOW_BITS {
            header.push_str(&format!("; client_max_window_bits={}", self.client_max_window_bits));
        }
        header
    }
}

impl fmt::Display for DeflateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header())
    }
}

/// `bits` within RFC 7692's 8..=15 (settings are validated at `listen`/`connect`; this keeps an
/// unvalidated value from reaching zlib).
fn clamp_window_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Out-of-range settings are refused with the GDScript property's name.
    #[test]
    fn validate_names_the_property() {
        assert!(DeflateConfig::default().validate().is_ok());
        let too_high = DeflateConfig { level: 10, ..DeflateConfig::default() };
        assert_eq!(too_high.validate().map_err(|e| e.to_string()), Err("deflate_level must be 0..9 (is 10)".into()));
        let small_window = DeflateConfig { client_max_window_bits: 7, ..DeflateConfig::default() };
        assert_eq!(
            small_window.validate().map_err(|e| e.to_string()),
            Err("deflate_client_max_window_bits must be 8..15 (is 7)".into())
        );
        let large_window = DeflateConfig { server_max_window_bits: 16, ..DeflateConfig::default() };
        assert!(large_window.validate().is_err());
        for bits in 8..=15 {
            let config = DeflateConfig { server_max_window_bits: bits, client_max_window_bits: bits, ..DeflateConfig::default() };
            assert!(config.validate().is_ok(), "{bits} bits are valid");
        }
    }

    /// The agreement's header form lists only what differs from the defaults.
    #[test]
    fn params_to_header() {
        let full = DeflateParams {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        assert_eq!(full.to_header(), "permessage-deflate");
        let small = DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 8,
        };
        assert_eq!(
            small.to_string(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=8"
        );
    }
}
