//! WebSocket frames on the wire (RFC 6455 section 5.2): the header's parse and format, masking,
//! and the incremental UTF-8 check of text payloads.

/// The most bytes a frame header takes: 2, 8 for the longest length, 4 for the mask key.
pub(crate) const MAX_HEADER_LEN: usize = 14;

/// Frame opcodes (RFC 6455 section 5.2).
pub(crate) mod opcode {
    /// A continuation frame of a fragmented data message.
    pub(crate) const CONTINUATION: u8 = 0x0;
    /// The first frame of a text message.
    pub(crate) const TEXT: u8 = 0x1;
    /// The first frame of a binary message.
    pub(crate) const BINARY: u8 = 0x2;
    /// A close frame.
    pub(crate) const CLOSE: u8 = 0x8;
    /// A ping frame.
    pub(crate) const PING: u8 = 0x9;
    /// A pong frame.
    pub(crate) const PONG: u8 = 0xa;

    /// Whether `code` is a control frame's (close, ping, pong, or a reserved control opcode).
    pub(crate) fn is_control(code: u8) -> bool {
        code & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// FIN: the last frame of its message.
    pub(crate) fin: bool,
    /// RSV1: meaning given by an extension (permessage-deflate: compressed message).
    pub(crate) rsv1: bool,
    /// RSV2 or RSV3: no extension we know uses them.
    pub(crate) rsv2_or_rsv3: bool,
    /// The opcode (see [`opcode`]).
    pub(crate) opcode: u8,
    /// The mask key, when the frame is masked.
    pub(crate) mask: Option<[u8; 4]>,
    /// Payload length as sent (up to 2^64 - 1; checked against limits by the reader).
    pub(crate) payload_len: u64,
}

impl FrameHeader {
    /// Parses a header from the start of `bytes`: the header and how many bytes it took, or
    /// `None` when `bytes` does not hold all of it yet.
    pub(crate) fn parse(bytes: &[u8]) -> Option<(FrameHeader, usize)> {
        let (&first, rest) = bytes.split_first()?;
        let &second = rest.first()?;
        let masked = second & 0x80 != 0;
        let (payload_len, mut at) = match second & 0x7f {
            126 => {
                let b = bytes.get(2..4)?;
                (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
            }
            127 => {
                let b = bytes.get(2..10)?;
                (u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]), 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            let b = bytes.get(at..at + 4)?;
            at += 4;
            Some([b[0], b[1], b[2], b[3]])
        } else {
            None
        };
        let header = FrameHeader {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            rsv2_or_rsv3: first & 0x30 != 0,
            opcode: first & 0x0f,
            mask,
            payload_len,
        };
        Some((header, at))
    }
}

/// Appends a frame header to `out`: FIN set (we never fragment what we send), RSV1 as given,
/// the shortest length form, and the mask key when there is one.
pub(crate) fn write_header(out: &mut Vec<u8>, rsv1: bool, opcode: u8, payload_len: usize, mask: Option<[u8; 4]>) {
    let mut header = [0u8; MAX_HEADER_LEN];
    header[0] = 0x80 | if rsv1 { 0x40 } else { 0 } | (opcode & 0x0f);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut len = match payload_len {
        0..=125 => {
            // Fits seven bits: checked by the arm.
            header[1] = mask_bit | payload_len as u8;
            2
        }
        126..=0xffff => {
            header[1] = mask_bit | 126;
            header[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            header[1] = mask_bit | 127;
            header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    };
    if let Some(key) = mask {
        header[len..len + 4].copy_from_slice(&key);
        len += 4;
    }
    out.extend_from_slice(&header[..len]);
}

/// XORs `buf` with the mask `key`, `buf` starting `offset` bytes into the payload (RFC 6455
/// section 5.3). Eight bytes at a time; masking twice unmasks.
pub(crate) fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let rotated: [u8; 4] = std::array::from_fn(|i| key[(offset + i) % 4]);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2], rotated[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Chunks are a multiple of four long, so the rest starts at mask index 0 of `rotated`.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i % 4];
    }
}

/// Checks UTF-8 that arrives in pieces, failing as soon as the bytes so far can no longer start
/// valid text (RFC 6455 section 8.1: fail fast, even in the middle of a frame).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Utf8Validator {
    /// The start of a character cut off at the end of the last piece.
    pending: [u8; 4],
    /// How many bytes of `pending` are used (0 to 3).
    pending_len: u8,
}

impl Utf8Validator {
    /// Takes the next piece; false when the text can no longer be valid.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> bool {
        // First finish a character cut off by the last piece, a byte at a time.
        while self.pending_len > 0 {
            let Some((&byte, rest)) = bytes.split_first() else { return true };
            bytes = rest;
            self.pending[usize::from(self.pending_len)] = byte;
            self.pending_len += 1;
            match std::str::from_utf8(&self.pending[..usize::from(self.pending_len)]) {
                Ok(_) => self.pending_len = 0,
                Err(err) if err.error_len().is_some() => return false,
                // Still the valid start of a character.
                Err(_) => {}
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => true,
            // An invalid sequence: no continuation can make it valid.
            Err(err) if err.error_len().is_some() => false,
            // A character cut off at the end (at most 3 bytes): wait for the rest.
            Err(err) => {
                let tail = &bytes[err.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                // At most 3 bytes: a longer valid start would be a complete character.
                self.pending_len = tail.len() as u8;
                true
            }
        }
    }

    /// Whether the text fed so far ends on a whole character (to be asked at the message's end).
    pub(crate) fn is_complete(&self) -> bool {
        self.pending_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked_simply(bytes: &[u8], key: [u8; 4], offset: usize) -> Vec<u8> {
        bytes.iter().enumerate().map(|(i, b)| b ^ key[(offset + i) % 4]).collect()
    }

    #[test]
    fn masking_word_at_a_time_agrees_with_byte_at_a_time_at_every_offset_and_length() {
        let key = [0x6d, 0xb6, 0xb2, 0x80];
        let data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..data.len() {
            for offset in 0..8 {
                let mut fast = data[..len].to_vec();
                apply_mask(&mut fast, key, offset);
                assert_eq!(fast, masked_simply(&data[..len], key, offset), "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn headers_round_trip_in_every_length_form() {
        for (len, header_len) in [(0usize, 2usize), (125, 2), (126, 4), (65535, 4), (65536, 10), (1 << 33, 10)] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                write_header(&mut out, len == 126, opcode::BINARY, len, mask);
                let expected_len = header_len + if mask.is_some() { 4 } else { 0 };
                assert_eq!(out.len(), expected_len, "len {len}");
                let (header, used) = FrameHeader::parse(&out).expect("a whole header");
                assert_eq!(used, expected_len);
                assert_eq!(
                    header,
                    FrameHeader {
                        fin: true,
                        rsv1: len == 126,
                        rsv2_or_rsv3: false,
                        opcode: opcode::BINARY,
                        mask,
                        payload_len: len as u64
                    }
                );
                for cut in 0..out.len() {
                    assert_eq!(FrameHeader::parse(&out[..cut]), None, "a header cut at {cut} is incomplete");
                }
            }
        }
    }

    #[test]
    fn header_bits_are_read_as_sent() {
        let (header, used) = FrameHeader::parse(&[0x31, 0x00]).expect("two bytes make a header");
        assert_eq!(used, 2);
        assert!(!header.fin && !header.rsv1 && header.rsv2_or_rsv3);
        assert_eq!(header.opcode, opcode::TEXT);
        assert!(opcode::is_control(opcode::PING) && opcode::is_control(0xb) && !opcode::is_control(0x7));
    }

    /// How many bytes of `bytes`, fed one at a time, the validator accepts.
    fn accepted_one_byte_at_a_time(bytes: &[u8]) -> usize {
        let mut validator = Utf8Validator::default();
        bytes.iter().take_while(|b| validator.feed(std::slice::from_ref(b))).count()
    }

    #[test]
    fn utf8_fails_at_the_first_byte_no_text_can_have_there() {
        let samples: [(&[u8], usize); 8] = [
            ("héllo €𝄞".as_bytes(), 14),
            (b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80edited", 6),
            (b"\xf4\x90\x80\x80", 1),
            (b"\xc0\xaf", 0),
            (b"abc\xff", 3),
            (b"\xe0\x80\xaf", 1),
            (b"\xed\x9f\xbf", 3),
            (b"\xf0\x9f\x98\x80", 4),
        ];
        for (sample, accepted) in samples {
            assert_eq!(accepted_one_byte_at_a_time(sample), accepted, "{sample:?}");
            // In one piece the verdict agrees with std.
            let mut whole = Utf8Validator::default();
            let valid = whole.feed(sample) && whole.is_complete();
            assert_eq!(valid, std::str::from_utf8(sample).is_ok(), "{sample:?}");
        }
    }

    #[test]
    fn a_character_split_across_pieces_is_whole_only_when_its_last_byte_came() {
        let euro = "€".as_bytes();
        let mut validator = Utf8Validator::default();
        assert!(validator.feed(&euro[..1]) && !validator.is_complete());
        assert!(validator.feed(&euro[1..2]) && !validator.is_complete());
        assert!(validator.feed(&euro[2..]) && validator.is_complete());
    }
}
