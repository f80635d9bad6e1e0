//! The framing on its own: bytes in over an in-memory stream, messages and frames out.

use super::*;
use crate::memory::{self, MemoryStream};

const LIMITS: FrameLimits = FrameLimits { max_message_size: 1 << 20, max_frame_size: 1 << 20 };
const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// A test-only RSV1 extension: a reversible byte transform (XOR 0x5a). It declines payloads
/// holding 0xa5 (which would become 0xff), and a 0xff in what it receives is corrupt.
struct XorExtension;

impl PerMessageExtension for XorExtension {
    fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.contains(&0xa5) {
            return None;
        }
        Some(payload.iter().map(|b| b ^ 0x5a).collect())
    }

    fn decompress(&mut self, input: &[u8], _fin: bool, max_size: usize, out: &mut Vec<u8>) -> Result<(), ExtensionError> {
        if input.contains(&0xff) {
            return Err(ExtensionError::Corrupt("0xff in the stream".into()));
        }
        if out.len() + input.len() > max_size {
            return Err(ExtensionError::TooBig);
        }
        out.extend(input.iter().map(|b| b ^ 0x5a));
        Ok(())
    }
}

fn xor(payload: &[u8]) -> Vec<u8> {
    payload.iter().map(|b| b ^ 0x5a).collect()
}

/// A frame as a client sends it (masked with `KEY`); `first` is the first byte (FIN, RSV, opcode).
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&KEY);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    out
}

/// A server protocol and the client's end of its stream.
fn server(extension: Option<Box<dyn PerMessageExtension>>) -> (Protocol, MemoryStream, MemoryStream) {
    let (local, remote) = memory::pair();
    (Protocol::new(Role::Server, LIMITS, Vec::new(), extension), local, remote)
}

fn with_xor() -> Option<Box<dyn PerMessageExtension>> {
    Some(Box::new(XorExtension))
}

fn message(data: &[u8], is_text: bool) -> Incoming {
    Incoming::Message(Packet { data: Bytes::copy_from_slice(data), is_text })
}

/// Everything `protocol` reads until the stream would block or an error.
fn read_all(protocol: &mut Protocol, stream: &mut MemoryStream) -> (Vec<Incoming>, ReadError) {
    let mut incoming = Vec::new();
    loop {
        match protocol.read(stream) {
            Ok(item) => incoming.push(item),
            Err(err) => return (incoming, err),
        }
    }
}

/// The close code of the violation `bytes` make a server report, with the extension or not.
fn violation_code(bytes: &[u8], extension: Option<Box<dyn PerMessageExtension>>) -> Option<u16> {
    let (mut protocol, mut local, remote) = server(extension);
    remote.send(bytes);
    match read_all(&mut protocol, &mut local).1 {
        ReadError::Violation(violation) => Some(violation.close_code()),
        _ => None,
    }
}

#[test]
fn a_message_fed_in_any_two_pieces_reads_the_same() {
    let bytes = client_frame(0x81, "héllo, wörld".as_bytes());
    for cut in 0..=bytes.len() {
        let (mut protocol, mut local, remote) = server(None);
        remote.send(&bytes[..cut]);
        let (first, err) = read_all(&mut protocol, &mut local);
        assert_eq!(err, ReadError::WouldBlock);
        remote.send(&bytes[cut..]);
        let (second, _) = read_all(&mut protocol, &mut local);
        let all: Vec<Incoming> = first.into_iter().chain(second).collect();
        assert_eq!(all, vec![message("héllo, wörld".as_bytes(), true)], "cut at {cut}");
    }
}

#[test]
fn messages_of_every_length_form_travel_from_client_to_server() {
    let (client_end, server_end) = memory::pair();
    let (mut client_stream, mut server_stream) = (client_end, server_end);
    let mut client = Protocol::new(Role::Client, LIMITS, Vec::new(), None);
    let mut server = Protocol::new(Role::Server, LIMITS, Vec::new(), None);
    for len in [0usize, 1, 125, 126, 65535, 65536, 200_000] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert!(client.send_message(&data, false));
        assert_eq!(client.flush(&mut client_stream), Ok(()));
        let (got, _) = read_all(&mut server, &mut server_stream);
        assert_eq!(got, vec![message(&data, false)], "length {len}");
    }
}

#[test]
fn a_client_masks_with_a_fresh_key_and_a_server_does_not_mask() {
    let (mut local, remote) = memory::pair();
    let mut client = Protocol::new(Role::Client, LIMITS, Vec::new(), None);
    for _ in 0..2 {
        client.send_message(b"same", true);
    }
    client.flush(&mut local).expect("written");
    let wire = remote.take_received();
    assert_eq!(wire.len(), 2 * (2 + 4 + 4));
    assert_eq!(&wire[..2], &[0x81, 0x84], "FIN, text, masked, 4 bytes");
    assert_ne!(wire[2..6], wire[12..16], "each frame gets its own key");
    let (mut local, remote) = memory::pair();
    let mut server = Protocol::new(Role::Server, LIMITS, Vec::new(), None);
    server.send_message(b"hi", false);
    server.flush(&mut local).expect("written");
    assert_eq!(remote.take_received(), b"\x82\x02hi");
}

#[test]
fn unfragmented_payloads_are_slices_of_the_read_buffer_not_copies() {
    let (mut protocol, mut local, remote) = server(None);
    let mut bytes = client_frame(0x82, b"first");
    bytes.extend(client_frame(0x82, b"second"));
    remote.send(&bytes);
    let (got, _) = read_all(&mut protocol, &mut local);
    let [Incoming::Message(first), Incoming::Message(second)] = got.as_slice() else { panic!("two messages: {got:?}") };
    // The second payload starts right after the first and its own 6-byte header.
    assert_eq!(second.data.as_ptr() as usize, first.data.as_ptr() as usize + first.data.len() + 6);
}

#[test]
fn bytes_that_came_behind_the_http_head_are_read_first() {
    let (mut local, remote) = memory::pair();
    let mut protocol = Protocol::new(Role::Server, LIMITS, client_frame(0x82, b"early"), None);
    remote.send(&client_frame(0x82, b"later"));
    let (got, _) = read_all(&mut protocol, &mut local);
    assert_eq!(got, vec![message(b"early", false), message(b"later", false)]);
}

#[test]
fn fragments_are_put_together_around_an_interleaved_ping_which_gets_its_pong() {
    let (mut protocol, mut local, remote) = server(None);
    let mut bytes = client_frame(0x01, b"frag");
    bytes.extend(client_frame(0x89, b"are you there"));
    bytes.extend(client_frame(0x00, b"men"));
    bytes.extend(client_frame(0x80, b"ted"));
    remote.send(&bytes);
    let (got, err) = read_all(&mut protocol, &mut local);
    assert_eq!(err, ReadError::WouldBlock);
    assert_eq!(got, vec![Incoming::Ping, message(b"fragmented", true)]);
    protocol.flush(&mut local).expect("the pong goes out");
    assert_eq!(remote.take_received(), b"\x8a\x0dare you there");
}

#[test]
fn violations_get_their_close_codes() {
    let long_ping = client_frame(0x89, &[0u8; 126]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("RSV1 without an extension", client_frame(0xc1, b"x"), 1002),
        ("RSV2", client_frame(0xa1, b"x"), 1002),
        ("RSV3", client_frame(0x91, b"x"), 1002),
        ("a reserved data opcode", client_frame(0x83, b"x"), 1002),
        ("a reserved control opcode", client_frame(0x8b, b""), 1002),
        ("an unmasked frame", b"\x81\x01x".to_vec(), 1002),
        ("a fragmented ping", client_frame(0x09, b""), 1002),
        ("a ping of 126 bytes", long_ping, 1002),
        ("a continuation with nothing to continue", client_frame(0x80, b"x"), 1002),
        ("a new message inside a fragmented one", [client_frame(0x01, b"a"), client_frame(0x81, b"b")].concat(), 1002),
        ("a close frame of one byte", client_frame(0x88, b"\x03"), 1002),
        ("a close reason that is not UTF-8", client_frame(0x88, b"\x03\xe8\xff"), 1007),
        ("invalid UTF-8 text", client_frame(0x81, b"ok\xc0\xaf"), 1007),
        ("text ending inside a character", client_frame(0x81, "€".as_bytes().split_last().expect("3 bytes").1), 1007),
        ("fragmented text that is not UTF-8", [client_frame(0x01, b"\xce"), client_frame(0x80, b"a")].concat(), 1007),
        ("a frame over the limit", client_frame(0x82, &vec![0u8; (1 << 20) + 1]), 1009),
        ("a fragmented message over the limit", [client_frame(0x02, &vec![0u8; 1 << 19]), client_frame(0x80, &vec![0u8; (1 << 19) + 1])].concat(), 1009),
        ("a 64-bit length with its top bit set", b"\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00".to_vec(), 1002),
    ];
    for (what, bytes, code) in cases {
        assert_eq!(violation_code(&bytes, None), Some(code), "{what}");
    }
}

#[test]
fn a_client_fails_on_a_frame_after_the_servers_close_frame() {
    let (mut local, remote) = memory::pair();
    let mut client = Protocol::new(Role::Client, LIMITS, Vec::new(), None);
    remote.send(b"\x88\x00\x82\x01x");
    assert_eq!(client.read(&mut local), Ok(Incoming::Close { code: 1005, reason: String::new() }));
    assert_eq!(client.read(&mut local), Err(ReadError::Violation(Violation::FrameAfterClose)));
}

#[test]
fn a_client_refuses_masked_frames() {
    let (mut local, remote) = memory::pair();
    let mut client = Protocol::new(Role::Client, LIMITS, Vec::new(), None);
    remote.send(&client_frame(0x82, b"x"));
    assert_eq!(read_all(&mut client, &mut local).1, ReadError::Violation(Violation::MaskedFrameFromServer));
}

#[test]
fn invalid_text_fails_as_soon_as_its_bytes_arrive_mid_frame() {
    let (mut protocol, mut local, remote) = server(None);
    let bytes = client_frame(0x81, b"valid\xffand then much more that has not arrived yet");
    // The header and the text up to the invalid byte: no verdict yet.
    remote.send(&bytes[..6 + 5]);
    assert_eq!(read_all(&mut protocol, &mut local).1, ReadError::WouldBlock);
    remote.send(&bytes[11..12]);
    assert_eq!(read_all(&mut protocol, &mut local).1, ReadError::Violation(Violation::InvalidUtf8));
}

#[test]
fn a_close_is_answered_with_its_code_and_a_code_that_may_not_be_sent_with_1002() {
    for (code, answered) in [(1000u16, 1000u16), (4999, 4999), (1005, 1002), (999, 1002), (1015, 1002), (5000, 1002)] {
        let (mut protocol, mut local, remote) = server(None);
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        remote.send(&client_frame(0x88, &payload));
        let got = protocol.read(&mut local);
        let reason = if answered == code { "bye" } else { "Protocol violation" };
        assert_eq!(got, Ok(Incoming::Close { code: answered, reason: reason.into() }), "code {code}");
        // A server ends the connection once its answer is out.
        assert_eq!(protocol.read(&mut local), Err(ReadError::Closed));
        let wire = remote.take_received();
        assert_eq!(&wire[..4], &[&[0x88, 2 + reason.len() as u8][..], &answered.to_be_bytes()].concat()[..]);
        assert!(!protocol.is_active() && !protocol.send_message(b"late", true) && !protocol.send_ping(&[]));
    }
}

#[test]
fn a_close_we_started_is_acknowledged_and_the_client_waits_for_the_server_to_end_tcp() {
    let (mut local, remote) = memory::pair();
    let mut client = Protocol::new(Role::Client, LIMITS, Vec::new(), None);
    client.close(4000, "done");
    assert_eq!(client.flush(&mut local), Ok(()));
    remote.send(b"\x88\x02\x0f\xa0");
    assert_eq!(client.read(&mut local), Ok(Incoming::Close { code: 4000, reason: String::new() }));
    assert_eq!(client.read(&mut local), Err(ReadError::WouldBlock));
    drop(remote);
    assert_eq!(client.read(&mut local), Err(ReadError::Closed));
}

#[test]
fn a_transport_that_ends_without_a_close_is_lost() {
    let (mut protocol, mut local, remote) = server(None);
    remote.send(&client_frame(0x82, b"half")[..5]);
    drop(remote);
    assert_eq!(read_all(&mut protocol, &mut local).1, ReadError::Lost);
}

#[test]
fn a_flush_that_would_block_keeps_the_rest_for_the_next() {
    let (mut local, remote) = memory::pair();
    let mut server = Protocol::new(Role::Server, LIMITS, Vec::new(), None);
    remote.set_receive_capacity(Some(10));
    server.send_message(&[7u8; 100], false);
    assert_eq!(server.flush(&mut local), Err(FlushError::WouldBlock));
    assert_eq!(remote.take_received().len(), 10);
    remote.set_receive_capacity(None);
    assert_eq!(server.flush(&mut local), Ok(()));
    assert_eq!(remote.take_received().len(), 92);
}

#[test]
fn buffers_grown_for_a_large_message_are_freed_once_idle() {
    let (mut protocol, mut local, remote) = server(None);
    remote.send(&client_frame(0x82, &vec![1u8; 300_000]));
    let (got, err) = read_all(&mut protocol, &mut local);
    assert_eq!((got.len(), err), (1, ReadError::WouldBlock));
    protocol.send_message(&[2u8; 300_000], false);
    protocol.flush(&mut local).expect("written");
    assert!(protocol.buffered_capacity() <= KEEP_READ_CAPACITY + KEEP_WRITE_CAPACITY, "{}", protocol.buffered_capacity());
}

#[test]
fn the_extension_transforms_messages_both_ways_with_rsv1() {
    let (client_stream, server_stream) = memory::pair();
    let (mut client_stream, mut server_stream) = (client_stream, server_stream);
    let mut client = Protocol::new(Role::Client, LIMITS, Vec::new(), with_xor());
    let mut server = Protocol::new(Role::Server, LIMITS, Vec::new(), with_xor());
    client.send_message("compressed ✓".as_bytes(), true);
    // Declined by the extension: goes as it is, RSV1 clear.
    client.send_message(&[0xa5, 1, 2], false);
    client.flush(&mut client_stream).expect("written");
    let (got, _) = read_all(&mut server, &mut server_stream);
    assert_eq!(got, vec![message("compressed ✓".as_bytes(), true), message(&[0xa5, 1, 2], false)]);
    server.send_message(b"back", false);
    server.flush(&mut server_stream).expect("written");
    let wire = client_stream.take_received();
    assert_eq!(wire, [&[0xc2, 0x04][..], &xor(b"back")].concat(), "FIN and RSV1 set, payload transformed");
}

#[test]
fn a_transformed_message_may_be_fragmented_with_rsv1_on_its_first_frame_only() {
    let (mut protocol, mut local, remote) = server(with_xor());
    let bytes = [client_frame(0x41, &xor(b"hel")), client_frame(0x80, &xor(b"lo"))].concat();
    remote.send(&bytes);
    assert_eq!(read_all(&mut protocol, &mut local).0, vec![message(b"hello", true)]);
}

#[test]
fn rsv1_violations_and_transformed_payloads_that_do_not_turn_back() {
    let max = LIMITS.max_message_size;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("RSV1 on a continuation frame", [client_frame(0x01, b"a"), client_frame(0xc0, b"b")].concat(), 1002),
        ("RSV1 on a ping", client_frame(0xc9, b""), 1002),
        ("a corrupt transformed payload", client_frame(0xc2, b"\xff"), 1007),
        ("text that is not UTF-8 once turned back", client_frame(0xc1, &xor(b"ok\xc0\xaf")), 1007),
        ("text that ends inside a character once turned back", client_frame(0xc1, &xor(b"\xe2\x82")), 1007),
        ("a message larger than the limit once turned back", [client_frame(0x42, &vec![0u8; max / 2 + 1]), client_frame(0x80, &vec![0u8; max / 2])].concat(), 1009),
    ];
    for (what, bytes, code) in cases {
        assert_eq!(violation_code(&bytes, with_xor()), Some(code), "{what}");
    }
    // The same RSV1 frame that an extension accepts is a violation without one.
    let valid = client_frame(0xc1, &xor(b"ok"));
    assert_eq!(violation_code(&valid, with_xor()), None);
    assert_eq!(violation_code(&valid, None), Some(1002));
}

/// [`XorExtension`] that counts its transforms and may share them (`share_key`).
struct CountingXor {
    calls: std::rc::Rc<std::cell::Cell<usize>>,
    key: Option<u64>,
}

impl PerMessageExtension for CountingXor {
    fn compress(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        self.calls.set(self.calls.get() + 1);
        XorExtension.compress(payload)
    }

    fn decompress(&mut self, input: &[u8], fin: bool, max_size: usize, out: &mut Vec<u8>) -> Result<(), ExtensionError> {
        XorExtension.decompress(input, fin, max_size, out)
    }

    fn share_key(&self) -> Option<u64> {
        self.key
    }
}

#[test]
fn a_shared_message_is_transformed_once_per_share_key() {
    let shared = SharedMessage::new(Packet { data: Bytes::from_static(b"state of the world"), is_text: false });
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let mut written = Vec::new();
    for key in [Some(7), Some(7), Some(7), Some(8), None, None] {
        let extension = CountingXor { calls: calls.clone(), key };
        let (mut protocol, mut local, remote) = server(Some(Box::new(extension)));
        assert!(protocol.send_shared(&shared));
        protocol.flush(&mut local).unwrap();
        written.push(remote.take_received());
    }
    // One transform for key 7, one for key 8, one each for the two that share nothing.
    assert_eq!(calls.get(), 4);
    let mut expected = vec![0x80 | 0x40 | 0x02, 18];
    expected.extend(xor(b"state of the world"));
    assert!(written.iter().all(|bytes| *bytes == expected), "{written:?}");
    // Without an extension the payload goes as it is.
    let (mut protocol, mut local, remote) = server(None);
    assert!(protocol.send_shared(&shared));
    protocol.flush(&mut local).unwrap();
    assert_eq!(remote.take_received(), [&[0x82, 18][..], b"state of the world"].concat());
}
