//! Fail-fast UTF-8 checking of incoming text messages. tungstenite checks a text message once it
//! is complete; RFC 6455 (section 8.1) and Autobahn's strict cases want the connection failed as
//! soon as the bytes can no longer be UTF-8, even in the middle of a frame. [`Utf8Guard`] sits
//! between the socket and tungstenite, follows the byte stream (the HTTP head, then frames),
//! unmasks text payloads and checks them incrementally. Bytes before the first invalid one are
//! passed on (so earlier messages are still delivered); the next read returns the error, which
//! the reactor turns into a 1007 close.

use std::io::{self, Read, Write};

/// The marker message of the error a guard returns; see [`is_invalid_utf8`].
const INVALID_UTF8: &str = "invalid UTF-8 in a text message";

/// Whether an I/O error is a guard's invalid-UTF-8 report.
pub(crate) fn is_invalid_utf8(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::InvalidData && err.to_string() == INVALID_UTF8
}

/// Where the guard is in the byte stream.
#[derive(Debug)]
enum Phase {
    /// Inside the HTTP head; counts the matched bytes of "\r\n\r\n".
    Head(u8),
    /// Reading a frame header of `need` bytes so far gathered in `buf`.
    Header { buf: [u8; 14], have: usize },
    /// Inside a payload: `left` bytes remain; text payloads are checked.
    Payload { left: u64, mask: Option<[u8; 4]>, offset: usize, text: bool },
    /// Lost track (a malformed frame tungstenite will refuse anyway): pass bytes through.
    Passthrough,
}

/// Checks text messages while bytes flow through `inner` (see the module documentation).
pub(crate) struct Utf8Guard<S> {
    inner: S,
    phase: Phase,
    /// Whether the current (possibly fragmented) data message is text.
    in_text_message: bool,
    utf8: Utf8State,
    /// Invalid bytes were found; the next read fails.
    poisoned: bool,
}

impl<S> Utf8Guard<S> {
    /// Wraps a stream whose first bytes are an HTTP upgrade request or response.
    pub(crate) fn new(inner: S) -> Self {
        Utf8Guard { inner, phase: Phase::Head(0), in_text_message: false, utf8: Utf8State::default(), poisoned: false }
    }

    /// Wraps a stream that is already past its HTTP head (frames come first).
    pub(crate) fn after_head(inner: S) -> Self {
        Utf8Guard { phase: Phase::Header { buf: [0; 14], have: 0 }, ..Self::new(inner) }
    }

    /// The wrapped stream.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Follows `data`; returns how many of its bytes are good to pass on (all, unless invalid
    /// UTF-8 starts inside it).
    fn follow(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() {
            match &mut self.phase {
                Phase::Passthrough => return data.len(),
                Phase::Head(matched) => {
                    let expected = b"\r\n\r\n"[usize::from(*matched)];
                    *matched = if data[i] == expected { *matched + 1 } else if data[i] == b'\r' { 1 } else { 0 };
                    i += 1;
                    if *matched == 4 {
                        self.phase = Phase::Header { buf: [0; 14], have: 0 };
                    }
                }
                Phase::Header { buf, have } => {
                    buf[*have] = data[i];
                    *have += 1;
                    i += 1;
                    if let Some(next) = self.header_complete() {
                        self.phase = next;
                    }
                }
                Phase::Payload { left, mask, offset, text } => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len() - i);
                    if *text {
                        for (k, byte) in data[i..i + take].iter().enumerate() {
                            let plain = match mask {
                                Some(m) => byte ^ m[(*offset + k) % 4],
                                None => *byte,
                            };
                            if !self.utf8.push(plain) {
                                return i + k;
                            }
                        }
                    }
                    *offset += take;
                    *left -= take as u64;
                    i += take;
                    if *left == 0 {
                        self.phase = Phase::Header { buf: [0; 14], have: 0 };
                    }
                }
            }
        }
        data.len()
    }

    /// When the header gathered so far is complete, the phase that follows it.
    fn header_complete(&mut self) -> Option<Phase> {
        let Phase::Header { buf, have } = &self.phase else { return None };
        let have = *have;
        if have < 2 {
            return None;
        }
        let fin = buf[0] & 0x80 != 0;
        let opcode = buf[0] & 0x0f;
        let masked = buf[1] & 0x80 != 0;
        let len_code = buf[1] & 0x7f;
        let len_bytes = match len_code {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let need = 2 + len_bytes + if masked { 4 } else { 0 };
        if have < need {
            return None;
        }
        let len = match len_bytes {
            0 => u64::from(len_code),
            2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            _ => u64::from_be_bytes([buf[2], buf[3], buf[4], buf[5], buf[6], buf[7], buf[8], buf[9]]),
        };
        let mask = masked.then(|| {
            let at = 2 + len_bytes;
            [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
        });
        let text = match opcode {
            1 => {
                self.in_text_message = true;
                self.utf8 = Utf8State::default();
                true
            }
            0 => self.in_text_message,
            2 => {
                self.in_text_message = false;
                false
            }
            8..=15 => false,
            // A reserved opcode: tungstenite fails the connection; nothing for us to follow.
            _ => return Some(Phase::Passthrough),
        };
        if text && fin && opcode != 8 {
            // The message ends with this frame; an incomplete character at its end is invalid,
            // which tungstenite reports when the message is complete.
            self.in_text_message = false;
        }
        Some(if len == 0 { Phase::Header { buf: [0; 14], have: 0 } } else { Phase::Payload { left: len, mask, offset: 0, text } })
    }
}

impl<S: Read> Read for Utf8Guard<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(io::Error::new(io::ErrorKind::InvalidData, INVALID_UTF8));
        }
        let n = self.inner.read(buf)?;
        let good = self.follow(&buf[..n]);
        if good < n {
            self.poisoned = true;
            if good == 0 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, INVALID_UTF8));
            }
        }
        Ok(good)
    }
}

impl<S: Write> Write for Utf8Guard<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An incremental UTF-8 validator (RFC 3629): rejects a byte as soon as no valid text can
/// continue with it.
#[derive(Debug, Default, Clone, Copy)]
struct Utf8State {
    /// Continuation bytes still expected.
    need: u8,
    /// Allowed range of the next continuation byte (narrower right after some lead bytes).
    low: u8,
    high: u8,
}

impl Utf8State {
    /// Takes one byte; false when the text can no longer be valid.
    fn push(&mut self, byte: u8) -> bool {
        if self.need == 0 {
            let (need, low, high) = match byte {
                0x00..=0x7f => return true,
                0xc2..=0xdf => (1, 0x80, 0xbf),
                0xe0 => (2, 0xa0, 0xbf),
                0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
                0xed => (2, 0x80, 0x9f),
                0xf0 => (3, 0x90, 0xbf),
                0xf1..=0xf3 => (3, 0x80, 0xbf),
                0xf4 => (3, 0x80, 0x8f),
                _ => return false,
            };
            *self = Utf8State { need, low, high };
            return true;
        }
        if byte < self.low || byte > self.high {
            return false;
        }
        self.need -= 1;
        self.low = 0x80;
        self.high = 0xbf;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_prefix(bytes: &[u8]) -> usize {
        let mut state = Utf8State::default();
        bytes.iter().take_while(|b| state.push(**b)).count()
    }

    #[test]
    fn incremental_validation_agrees_with_std() {
        let samples: [&[u8]; 8] = [
            "héllo €𝄞".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"abc\xff",
            b"\xe0\x80\xaf",
            b"\xed\x9f\xbf",
            b"\xf0\x9f\x98\x80",
        ];
        for sample in samples {
            let prefix = valid_prefix(sample);
            match std::str::from_utf8(sample) {
                Ok(_) => assert_eq!(prefix, sample.len(), "{sample:?}"),
                // Stops at the first byte no valid text can have there.
                Err(err) => assert_eq!(prefix, err.valid_up_to() + usize::from(sample[err.valid_up_to()] >= 0xc2 && sample[err.valid_up_to()] <= 0xf4), "{sample:?}"),
            }
        }
    }

    #[test]
    fn the_guard_passes_earlier_bytes_then_fails() {
        // Head, a masked text frame "ok", then a text frame with an invalid byte.
        let mut stream = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let mask = [1u8, 2, 3, 4];
        for payload in [&b"ok"[..], &b"a\xffb"[..]] {
            stream.push(0x81);
            stream.push(0x80 | payload.len() as u8);
            stream.extend_from_slice(&mask);
            stream.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        let mut guard = Utf8Guard::new(&stream[..]);
        let mut buf = vec![0; 1024];
        let n = guard.read(&mut buf).expect("the bytes before the invalid one");
        assert_eq!(n, stream.len() - 2, "stops right at the invalid byte");
        let err = guard.read(&mut buf).expect_err("then the error");
        assert!(is_invalid_utf8(&err));
    }
}
