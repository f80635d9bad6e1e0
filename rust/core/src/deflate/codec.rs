//! `PerMessageDeflate`: one connection's compressor and decompressor (RFC 7692 section 7.2),
//! for the framing layer. A message is compressed whole; a compressed message is inflated frame
//! by frame, never past the caller's size limit.
//!
//! Memory: each context (zlib-rs through flate2) is created on first use and, in a direction
//! without context takeover, handed back after each message to the thread's few spares ([`spare`]),
//! so an idle connection that keeps no context holds none. A compressor costs 4 × 2^bits bytes (window and chain) plus 243 KiB, 245
//! KiB (9-bit window) to 371 KiB (15 bits): zlib-rs's hash table has a fixed 64 Ki entries (128
//! KiB) and flate2 does not expose zlib's `memLevel` (112 KiB of symbol buffers at its 8). A
//! decompressor costs 46.5 KiB whatever the window: zlib-rs always allocates a 32 KiB one.

use std::fmt;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use super::{clamp_window_bits, DeflateConfig, DeflateParams, MAX_LEVEL};
use crate::connection::{ExtensionError, PerMessageExtension, Role};

/// The empty stored block a sync flush ends with; RFC 7692 7.2.1 removes it from each message
/// and 7.2.2 appends it again before inflating.
const SYNC_FLUSH_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The smallest window zlib deflates and flate2 inflates with (see the module `deflate`: a
/// 9-bit deflater never reaches further back than 250 bytes, so its output fits an 8-bit window).
const ZLIB_MIN_WINDOW_BITS: u8 = 9;
/// Bytes inflated per call into the output, at most.
const INFLATE_CHUNK: usize = 16 << 10;
/// Bytes that may follow a final DEFLATE block in a message: our appended tail and the `0x00`
/// the sender adds so that the tail makes an empty stored block (RFC 7692 7.2.3.4).
const MAX_AFTER_FINAL_BLOCK: usize = 1 + SYNC_FLUSH_TAIL.len();

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The message inflates to more than the size limit (close with 1009); the output stops at
    /// the limit.
    TooBig,
    /// The payload is not a valid DEFLATE stream for the agreed parameters (the text says what
    /// zlib found).
    Corrupt(String),
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InflateError::TooBig => write!(f, "the compressed message inflates beyond the size limit"),
            InflateError::Corrupt(what) => write!(f, "the compressed message is corrupt: {what}"),
        }
    }
}

/// The agreed settings of one direction of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Direction {
    /// The LZ77 window of that direction's sender, in bits (8..=15).
    window_bits: u8,
    /// The context is reset after each message.
    no_context_takeover: bool,
}

impl Direction {
    /// The window zlib works with for this direction (8 becomes 9, see the module `deflate`).
    fn zlib_window_bits(self) -> u8 {
        clamp_window_bits(self.window_bits).max(ZLIB_MIN_WINDOW_BITS)
    }
}

/// One connection's permessage-deflate state for its role: the compressor of what it sends and
/// the decompressor of what it receives, each created on first use.
pub(crate) struct PerMessageDeflate {
    /// Compression level (0 turns compression off: every message goes out as it is).
    level: u32,
    /// Messages shorter than this are sent uncompressed.
    threshold: usize,
    /// What we send: our role's window and takeover.
    sending: Direction,
    /// What we receive: the other role's.
    receiving: Direction,
    /// The compressor, while it holds a context worth keeping.
    compressor: Option<Compress>,
    /// The decompressor, while a message is being inflated or its context is kept.
    decompressor: Option<Decompress>,
    /// The current incoming message's DEFLATE stream ended with a final block (RFC 7692
    /// 7.2.3.4): the bytes of the message seen after it (at most [`MAX_AFTER_FINAL_BLOCK`]).
    after_final_block: Option<usize>,
}

impl PerMessageDeflate {
    /// The codec for our `role` after agreeing on `params`; level and threshold come from
    /// `config`. Allocates nothing until the first message.
    pub(crate) fn new(role: Role, params: DeflateParams, config: &DeflateConfig) -> Self {
        let server = Direction {
            window_bits: params.server_max_window_bits,
            no_context_takeover: params.server_no_context_takeover,
        };
        let client = Direction {
            window_bits: params.client_max_window_bits,
            no_context_takeover: params.client_no_context_takeover,
        };
        let (sending, receiving) = match role {
            Role::Server => (server, client),
            Role::Client => (client, server),
        };
        PerMessageDeflate {
            level: config.level.min(MAX_LEVEL),
            threshold: config.threshold,
            sending,
            receiving,
            compressor: None,
            decompressor: None,
            after_final_block: None,
        }
    }

    /// The payload to send for a whole message: `Some` compressed bytes without the trailing
    /// `00 00 ff ff` (send with RSV1 set on the first frame), or `None` to send `payload` as it
    /// is (RSV1 clear): shorter than the threshold, level 0, or not smaller once compressed.
    /// A threshold of 0 compresses every message, even one that grows (as browsers do).
    pub(crate) fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < self.threshold || self.level == 0 {
            return None;
        }
        let every_message = self.threshold == 0;
        if payload.is_empty() {
            // RFC 7692 7.2.3.6: an empty message is one empty stored block, tail removed.
            return Some(vec![0x00]);
        }
        let (level, bits) = (self.level, self.sending.zlib_window_bits());
        let mut compressor = self.compressor.take().unwrap_or_else(|| spare::take_compressor(level, bits));
        let compressed = deflate_sync(&mut compressor, payload, !every_message);
        let smaller = compressed.filter(|bytes| every_message || bytes.len() < payload.len());
        if self.sending.no_context_takeover {
            spare::give_compressor(level, bits, compressor);
        } else {
            if smaller.is_none() {
                // The compressor has seen the message but the peer will not: with context
                // takeover, a later message could refer to bytes the peer's window never got.
                compressor.reset();
            }
            self.compressor = Some(compressor);
        }
        smaller
    }

    /// Inflates one frame's `input` of a compressed message into `out`, which holds the message
    /// inflated so far (earlier frames); `fin` marks its last frame. Fails with
    /// [`InflateError::TooBig`] as soon as the message would exceed `max_size` bytes (`out`
    /// never grows past it), or [`InflateError::Corrupt`]. After an error the message is
    /// abandoned (the connection is to be failed).
    pub(crate) fn decompress(&mut self, input: &[u8], fin: bool, max_size: usize, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let result = self.inflate_frame(input, fin, max_size, out);
        if result.is_err() || fin {
            // A message ended (or failed): keep the context only when it is taken over and the
            // stream did not end with a final block; a context in a good state goes back to the
            // thread's spares, a failed one is dropped.
            if result.is_err() || self.receiving.no_context_takeover || self.after_final_block.is_some() {
                if let Some(decompressor) = self.decompressor.take() {
                    if result.is_ok() {
                        spare::give_decompressor(self.receiving.zlib_window_bits(), decompressor);
                    }
                }
            }
            self.after_final_block = None;
        }
        result
    }

    /// Bytes the live contexts hold, estimated from zlib-rs's allocation sizes (checked against
    /// a counting allocator in `measure.rs`).
    pub(crate) fn memory_estimate(&self) -> usize {
        let compressor = self.compressor.as_ref().map_or(0, |_| deflate_context_bytes(self.sending.zlib_window_bits()));
        let decompressor = self.decompressor.as_ref().map_or(0, |_| INFLATE_CONTEXT_BYTES);
        compressor + decompressor
    }

    /// Feeds `input`, then the tail when `fin`, to the decompressor.
    fn inflate_frame(&mut self, input: &[u8], fin: bool, max_size: usize, out: &mut Vec<u8>) -> Result<(), InflateError> {
        let window_bits = self.receiving.zlib_window_bits();
        let decompressor = self.decompressor.get_or_insert_with(|| spare::take_decompressor(window_bits));
        inflate_bounded(decompressor, input, max_size, out, &mut self.after_final_block)?;
        if fin {
            inflate_bounded(decompressor, &SYNC_FLUSH_TAIL, max_size, out, &mut self.after_final_block)?;
        }
        Ok(())
    }
}

impl PerMessageExtension for PerMessageDeflate {
    fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        PerMessageDeflate::compress(self, payload)
    }

    /// Without context takeover in our sending direction, a message compresses the same for
    /// every peer with the same level, window and threshold.
    fn share_key(&self) -> Option<u64> {
        let threshold = u64::try_from(self.threshold).unwrap_or(u64::MAX >> 16);
        self.sending.no_context_takeover.then(|| u64::from(self.level) | u64::from(self.sending.zlib_window_bits()) << 8 | threshold << 16)
    }

    fn decompress(
        &mut self,
        input: &[u8],
        fin: bool,
        max_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), ExtensionError> {
        PerMessageDeflate::decompress(self, input, fin, max_size, out).map_err(|err| match err {
            InflateError::TooBig => ExtensionError::TooBig,
            InflateError::Corrupt(why) => ExtensionError::Corrupt(why),
        })
    }
}

/// Contexts kept between messages for reuse by any connection this thread serves (the I/O
/// thread, or the game thread inline), in their initial state. Without context takeover a
/// direction needs a context only during a message: making one costs an allocation of 245 to
/// 371 KiB (deflate) or 46.5 KiB (inflate), resetting a spare one costs clearing its hash table.
/// At most [`spare::KEEP_COMPRESSORS`] and [`spare::KEEP_DECOMPRESSORS`] are kept per thread,
/// so a thread holds at most about 0.9 MiB of them, whatever the number of connections.
pub(crate) mod spare {
    use std::cell::RefCell;

    use flate2::{Compress, Compression, Decompress};

    /// Spare compressors kept per thread (one per level and window in use, usually one).
    pub(crate) const KEEP_COMPRESSORS: usize = 2;
    /// Spare decompressors kept per thread.
    pub(crate) const KEEP_DECOMPRESSORS: usize = 4;

    /// One thread's spare contexts.
    #[derive(Default)]
    struct Spares {
        /// Compressors by level and zlib window bits.
        compressors: Vec<(u32, u8, Compress)>,
        /// Decompressors by zlib window bits.
        decompressors: Vec<(u8, Decompress)>,
    }

    thread_local! {
        static SPARES: RefCell<Spares> = RefCell::new(Spares::default());
    }

    /// A compressor at `level` with a `bits` window: a spare one, else a new one.
    pub(crate) fn take_compressor(level: u32, bits: u8) -> Compress {
        let spare = SPARES
            .try_with(|spares| {
                let mut spares = spares.borrow_mut();
                let index = spares
                    .compressors
                    .iter()
                    .position(|(l, b, _)| *l == level && *b == bits)?;
                Some(spares.compressors.swap_remove(index).2)
            })
            .ok()
            .flatten();
        spare
            .unwrap_or_else(|| Compress::new_with_window_bits(Compression::new(level), false, bits))
    }

    /// Resets `compressor` and keeps it as a spare if there is room.
    pub(crate) fn give_compressor(level: u32, bits: u8, mut compressor: Compress) {
        compressor.reset();
        let _ = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.compressors.len() < KEEP_COMPRESSORS {
                spares.compressors.push((level, bits, compressor));
            }
        });
    }

    /// A raw decompressor with a `bits` window: a spare one, else a new one.
    pub(crate) fn take_decompressor(bits: u8) -> Decompress {
        let spare = SPARES
            .try_with(|spares| {
                let mut spares = spares.borrow_mut();
                let index = spares.decompressors.iter().position(|(b, _)| *b == bits)?;
                Some(spares.decompressors.swap_remove(index).1)
            })
            .ok()
            .flatten();
        spare.unwrap_or_else(|| Decompress::new_with_window_bits(false, bits))
    }

    /// Resets `decompressor` and keeps it as a spare if there is room.
    pub(crate) fn give_decompressor(bits: u8, mut decompressor: Decompress) {
        decompressor.reset(false);
        let _ = SPARES.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.decompressors.len() < KEEP_DECOMPRESSORS {
                spares.decompressors.push((bits, decompressor));
            }
        });
    }

    /// How many spares this thread holds: (compressors, decompressors).
    #[cfg(test)]
    pub(crate) fn count() -> (usize, usize) {
        SPARES.with(|spares| {
            let spares = spares.borrow();
            (spares.compressors.len(), spares.decompressors.len())
        })
    }

    /// Frees this thread's spares (tests measure what a connection holds apart from them).
    #[cfg(test)]
    pub(crate) fn clear() {
        SPARES.with(|spares| *spares.borrow_mut() = Spares::default());
    }
}

/// `payload` deflated and sync-flushed with the tail removed, or `None` when zlib fails or, with
/// `only_if_smaller`, when the result is not smaller than `payload` (given up as soon as that
/// is certain).
fn deflate_sync(compressor: &mut Compress, payload: &[u8], only_if_smaller: bool) -> Option<Vec<u8>> {
    // Worth sending only if shorter than the payload: allow that plus the tail, and a little
    // room so that zlib can finish its flush.
    let useful = payload.len() + SYNC_FLUSH_TAIL.len();
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    let start_in = compressor.total_in();
    loop {
        let consumed = usize::try_from(compressor.total_in() - start_in).ok()?;
        let rest = payload.get(consumed..)?;
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
        }
        compressor.compress_vec(rest, &mut out, FlushCompress::Sync).ok()?;
        let all_in = compressor.total_in() - start_in == payload.len() as u64;
        // zlib is done with a flush when it stopped with output room to spare.
        if all_in && out.len() < out.capacity() {
            break;
        }
        if only_if_smaller && out.len() >= useful {
            return None;
        }
    }
    if !out.ends_with(&SYNC_FLUSH_TAIL) {
        return None;
    }
    out.truncate(out.len() - SYNC_FLUSH_TAIL.len());
    Some(out)
}

/// Inflates all of `input` into `out` without letting `out` pass `max_size`: once it is full, a
/// one-byte probe tells whether more would come. Counts in `after_final_block` the bytes that
/// follow a final block, of which only [`MAX_AFTER_FINAL_BLOCK`] may.
fn inflate_bounded(
    decompressor: &mut Decompress,
    input: &[u8],
    max_size: usize,
    out: &mut Vec<u8>,
    after_final_block: &mut Option<usize>,
) -> Result<(), InflateError> {
    let mut pos = 0;
    loop {
        let rest = input.get(pos..).unwrap_or_default();
        if let Some(seen) = after_final_block {
            // RFC 7692 7.2.3.4: a final block may end the message; the sender's 0x00 and the
            // tail we append follow it, and nothing else may.
            *seen += rest.len();
            return if *seen <= MAX_AFTER_FINAL_BLOCK {
                Ok(())
            } else {
                Err(InflateError::Corrupt("data after the final DEFLATE block".into()))
            };
        }
        let room = max_size.saturating_sub(out.len());
        let before_in = decompressor.total_in();
        let before_out = decompressor.total_out();
        let status = if room == 0 {
            let mut probe = [0u8; 1];
            let status = decompressor.decompress(rest, &mut probe, FlushDecompress::None).map_err(corrupt)?;
            if decompressor.total_out() > before_out {
                return Err(InflateError::TooBig);
            }
            status
        } else {
            let take = room.min(INFLATE_CHUNK);
            let start = out.len();
            out.resize(start + take, 0);
            let result = decompressor.decompress(rest, &mut out[start..], FlushDecompress::None);
            let produced = usize::try_from(decompressor.total_out() - before_out).unwrap_or(take).min(take);
            out.truncate(start + produced);
            result.map_err(corrupt)?
        };
        let consumed = usize::try_from(decompressor.total_in() - before_in).unwrap_or(rest.len());
        let produced = decompressor.total_out() - before_out;
        pos += consumed;
        match status {
            Status::StreamEnd => *after_final_block = Some(0),
            // Done when all input is in and the output was not filled (nothing is pending).
            Status::Ok | Status::BufError => {
                if consumed == 0 && produced == 0 {
                    return Ok(());
                }
                if pos >= input.len() && (produced as usize) < room.min(INFLATE_CHUNK) {
                    return Ok(());
                }
            }
        }
    }
}

/// A zlib error as [`InflateError::Corrupt`].
fn corrupt(err: flate2::DecompressError) -> InflateError {
    InflateError::Corrupt(err.to_string())
}

/// zlib-rs's allocation for a raw deflater at `window_bits` with flate2's memLevel 8: window and
/// `prev` (2 × 2^bits bytes each), the 64 Ki-entry hash head (128 KiB), pending and symbol
/// buffers (7 × 16 KiB), the state and alignment.
fn deflate_context_bytes(window_bits: u8) -> usize {
    let window = 1usize << window_bits;
    4 * window + (128 << 10) + (112 << 10) + DEFLATE_STATE_BYTES
}

/// zlib-rs's deflate state and alignment padding, beyond the buffers (measured: 3.1 KiB).
const DEFLATE_STATE_BYTES: usize = 3_200;
/// zlib-rs's allocation for a raw inflater, whatever its window bits: its state (code tables)
/// and a 32 KiB window with padding (measured: 46.5 KiB).
const INFLATE_CONTEXT_BYTES: usize = 47_600;

#[cfg(test)]
mod tests;
