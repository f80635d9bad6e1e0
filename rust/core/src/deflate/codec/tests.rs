//! The codec against RFC 7692's examples, itself (both roles, every takeover and window), a
//! decompression bomb, corrupt data and an 8-bit-window inflater.

use super::*;
use crate::deflate::measure::json_message;
use flate2::Compression;

/// "Hello" compressed with a sync flush, tail removed (RFC 7692 7.2.3.1).
const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

/// The agreement with these takeovers and windows.
fn params(server_no_context_takeover: bool, client_no_context_takeover: bool, server_bits: u8, client_bits: u8) -> DeflateParams {
    DeflateParams {
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    }
}

/// Level 6 and the given threshold.
fn config(threshold: usize) -> DeflateConfig {
    DeflateConfig { threshold, level: 6, ..DeflateConfig::default() }
}

/// A server's and a client's codec for `params`, compressing everything worth it.
fn pair(params: DeflateParams) -> (PerMessageDeflate, PerMessageDeflate) {
    (PerMessageDeflate::new(Role::Server, params, &config(0)), PerMessageDeflate::new(Role::Client, params, &config(0)))
}

/// `payload` inflated as a whole message in one frame, with a 64 MiB limit.
fn inflate(codec: &mut PerMessageDeflate, payload: &[u8]) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    codec.decompress(payload, true, 64 << 20, &mut out)?;
    Ok(out)
}

/// Messages of several kinds: JSON-like, repetitive, random, tiny.
fn messages() -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut messages: Vec<Vec<u8>> = (0..20).map(|i| json_message(i, &mut rng)).collect();
    messages.push(b"abc".repeat(100_000));
    messages.push((0..70_000).map(|_| rng.u8(..)).collect());
    messages.push(b"Hello".to_vec());
    messages.push(Vec::new());
    messages.push(json_message(99, &mut rng).repeat(50));
    messages
}

/// RFC 7692 section 7.2.3's examples inflate to what it says.
#[test]
fn rfc7692_examples() {
    let (mut server, _) = pair(params(false, false, 15, 15));
    // 7.2.3.1: one frame, then the same message in two fragments.
    assert_eq!(inflate(&mut server, &HELLO), Ok(b"Hello".to_vec()));
    let mut out = Vec::new();
    assert_eq!(server.decompress(&HELLO[..3], false, 100, &mut out), Ok(()));
    assert_eq!(server.decompress(&HELLO[3..], true, 100, &mut out), Ok(()));
    assert_eq!(out, b"Hello");
    // 7.2.3.2: the second "Hello" refers to the first (context takeover).
    let (_, mut client) = pair(params(false, false, 15, 15));
    assert_eq!(inflate(&mut client, &HELLO), Ok(b"Hello".to_vec()));
    assert_eq!(inflate(&mut client, &[0xf2, 0x00, 0x11, 0x00, 0x00]), Ok(b"Hello".to_vec()));
    // 7.2.3.3: a stored block.
    let stored = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
    assert_eq!(inflate(&mut client, &stored), Ok(b"Hello".to_vec()));
    // 7.2.3.4: a final block, then the 0x00 that makes the tail an empty stored block; the
    // next message still inflates (a new stream).
    let final_block = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(inflate(&mut client, &final_block), Ok(b"Hello".to_vec()));
    assert_eq!(inflate(&mut client, &final_block[..7]), Ok(b"Hello".to_vec()), "without the 0x00");
    assert_eq!(inflate(&mut client, &HELLO), Ok(b"Hello".to_vec()));
    // 7.2.3.5: two blocks in one message.
    let two_blocks = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflate(&mut client, &two_blocks), Ok(b"Hello".to_vec()));
    // 7.2.3.6: an empty message.
    assert_eq!(inflate(&mut client, &[0x00]), Ok(Vec::new()));
}

/// Our deflater makes RFC 7692's bytes for "Hello", and the shorter second one with context
/// takeover (7.2.3.1, 7.2.3.2).
#[test]
fn rfc7692_compressed_hello() {
    let mut compressor = Compress::new_with_window_bits(Compression::new(6), false, 15);
    assert_eq!(deflate_sync(&mut compressor, b"Hello", false).as_deref(), Some(&HELLO[..]));
    let mut server = PerMessageDeflate::new(Role::Server, params(false, false, 15, 15), &config(1));
    assert_eq!(server.compress(b"Hello"), None, "7 bytes are not worth sending for 5");
    let hello = b"Hello";
    let mut compressor = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let mut out = Vec::with_capacity(64);
    let _ = compressor.compress_vec(hello, &mut out, FlushCompress::Sync);
    assert_eq!(out, [&HELLO[..], &SYNC_FLUSH_TAIL].concat());
    out.clear();
    let _ = compressor.compress_vec(hello, &mut out, FlushCompress::Sync);
    assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff]);
}

/// Every message goes both ways and comes back intact, for every takeover choice, window and
/// role, with several messages in a row (contexts carried over or not).
#[test]
fn round_trip_every_combination() {
    let messages = messages();
    for flags in 0..4u8 {
        for (server_bits, client_bits) in [(15, 15), (12, 9), (9, 12), (8, 8), (10, 15)] {
            let agreed = params(flags & 1 != 0, flags & 2 != 0, server_bits, client_bits);
            let (mut server, mut client) = pair(agreed);
            for message in &messages {
                for server_sends in [true, false] {
                    let (from, to) = if server_sends { (&mut server, &mut client) } else { (&mut client, &mut server) };
                    // A threshold of 0: every message is compressed, even random bytes.
                    let compressed = from.compress(message).expect("threshold 0 compresses every message");
                    assert_eq!(inflate(to, &compressed).as_ref(), Ok(message), "{agreed}");
                }
            }
        }
    }
}

/// A message split into frames at any point inflates the same.
#[test]
fn fragmented_input() {
    let mut rng = fastrand::Rng::with_seed(3);
    let message = [json_message(1, &mut rng), json_message(2, &mut rng)].concat();
    let (mut server, mut client) = pair(params(false, false, 15, 15));
    let compressed = client.compress(&message).expect("compressible");
    for split in 0..=compressed.len() {
        let mut out = Vec::new();
        let (first, second) = compressed.split_at(split);
        assert_eq!(server.decompress(first, false, 1 << 20, &mut out), Ok(()));
        assert_eq!(server.decompress(second, true, 1 << 20, &mut out), Ok(()));
        assert_eq!(out, message, "split at {split}");
        // Keep the client's context in step with the server's, which has seen one more message.
        let again = client.compress(&message).expect("compressible");
        assert_eq!(inflate(&mut server, &again).as_ref(), Ok(&message));
    }
    // One byte per frame, and empty frames in between.
    let compressed = client.compress(&message).expect("compressible");
    let mut out = Vec::new();
    for byte in &compressed {
        assert_eq!(server.decompress(&[], false, 1 << 20, &mut out), Ok(()));
        assert_eq!(server.decompress(std::slice::from_ref(byte), false, 1 << 20, &mut out), Ok(()));
    }
    assert_eq!(server.decompress(&[], true, 1 << 20, &mut out), Ok(()));
    assert_eq!(out, message);
}

/// A few KiB that inflate to 32 MiB stop at the limit, with exactly the limit produced; a
/// message of exactly the limit passes; the next message still works.
#[test]
fn bomb_stops_at_limit() {
    let (mut server, mut client) = pair(params(true, true, 15, 15));
    let bomb = client.compress(&vec![0u8; 32 << 20]).expect("zeros compress");
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    for max_size in [0, 1, 1000, INFLATE_CHUNK, INFLATE_CHUNK + 1, 1 << 20] {
        let mut out = Vec::new();
        assert_eq!(server.decompress(&bomb, true, max_size, &mut out), Err(InflateError::TooBig));
        assert_eq!(out.len(), max_size, "stopped at the limit");
        assert_eq!(server.memory_estimate(), 0, "the context is dropped");
    }
    // Fed in frames: stops in the middle of the message, before its last frame.
    let mut out = Vec::new();
    let first = &bomb[..bomb.len() / 2];
    assert_eq!(server.decompress(first, false, 100_000, &mut out), Err(InflateError::TooBig));
    assert_eq!(out.len(), 100_000);
    let exact = client.compress(&vec![7u8; 100_000]).expect("compressible");
    let mut out = Vec::new();
    assert_eq!(server.decompress(&exact, true, 100_000, &mut out), Ok(()), "exactly the limit");
    assert_eq!(out.len(), 100_000);
    let mut out = Vec::new();
    assert_eq!(server.decompress(&exact, true, 99_999, &mut out), Err(InflateError::TooBig));
    let mut out = b"earlier frames".to_vec();
    assert_eq!(server.decompress(&exact, true, 100_000, &mut out), Err(InflateError::TooBig), "counts what is in out");
    assert_eq!(out.len(), 100_000);
}

/// Invalid DEFLATE data fails as corrupt and leaves no context behind.
#[test]
fn corrupt_data() {
    let (mut server, mut client) = pair(params(false, false, 15, 15));
    for bad in [
        &[0x06][..],                                  // reserved block type 11
        &[0xff; 16][..],                              // a dynamic block with impossible tables
        &[0x00, 0x05, 0x00, 0x00, 0x00, b'H'][..],    // stored block with a bad length check
        &[0xf2, 0x00, 0x11, 0x00, 0x00][..],          // refers back before the start
        &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0x00][..], // data after the end
    ] {
        match inflate(&mut server, bad) {
            Err(InflateError::Corrupt(what)) => assert!(!what.is_empty()),
            other => panic!("{bad:02x?} is corrupt, got {other:?}"),
        }
        assert_eq!(server.memory_estimate(), 0);
    }
    // After an error the next message starts a fresh context.
    let message = b"a message that compresses, a message that compresses".to_vec();
    let compressed = client.compress(&message).expect("compressible");
    assert_eq!(inflate(&mut server, &compressed), Ok(message));
}

/// A message not worth compressing is sent plain, and the compressor forgets it: the peer's
/// inflater never sees it, so later messages must not refer to it.
#[test]
fn incompressible_message_keeps_contexts_in_step() {
    let agreed = params(false, false, 15, 15);
    let mut server = PerMessageDeflate::new(Role::Server, agreed, &config(1));
    let mut client = PerMessageDeflate::new(Role::Client, agreed, &config(1));
    let mut rng = fastrand::Rng::with_seed(11);
    let random: Vec<u8> = (0..300).map(|_| rng.u8(..)).collect();
    let text = b" and some text to compress,".repeat(20);
    let first = client.compress(&text).expect("the repeated text compresses");
    assert_eq!(inflate(&mut server, &first).as_ref(), Ok(&text));
    assert_eq!(client.compress(&random), None, "random bytes are sent plain (not fed to the server's inflater)");
    let again = client.compress(&random.repeat(2)).expect("repeats compress");
    assert_eq!(inflate(&mut server, &again), Ok(random.repeat(2)));
    // A threshold of 0 compresses every message, even one that grows.
    let (mut server, mut client) = pair(agreed);
    for message in [random.clone(), b"ab".to_vec(), Vec::new()] {
        let compressed = client.compress(&message).unwrap_or_else(|| panic!("{} bytes compressed whatever their size", message.len()));
        assert_eq!(inflate(&mut server, &compressed), Ok(message));
    }
}

/// The threshold and level 0 send messages as they are, without creating a compressor.
#[test]
fn threshold_and_level_zero() {
    let agreed = params(false, false, 15, 15);
    let mut codec = PerMessageDeflate::new(Role::Server, agreed, &config(100));
    assert_eq!(codec.compress(&[b'a'; 99]), None);
    assert_eq!(codec.memory_estimate(), 0);
    assert!(codec.compress(&[b'a'; 100]).is_some());
    let level_zero = DeflateConfig { level: 0, threshold: 0, ..DeflateConfig::default() };
    let mut codec = PerMessageDeflate::new(Role::Server, agreed, &level_zero);
    assert_eq!(codec.compress(&[b'a'; 1000]), None);
    assert_eq!(codec.memory_estimate(), 0);
}

/// Without context takeover each message stands alone: RFC 7692 7.2.3.2's second "Hello",
/// which refers to the first, is corrupt for an inflater that keeps no context; and what we
/// send never refers to an earlier message.
#[test]
fn no_context_takeover_forgets() {
    let (mut server, mut client) = pair(params(false, true, 15, 15));
    assert_eq!(inflate(&mut server, &HELLO), Ok(b"Hello".to_vec()));
    assert!(matches!(inflate(&mut server, &[0xf2, 0x00, 0x11, 0x00, 0x00]), Err(InflateError::Corrupt(_))));
    let mut rng = fastrand::Rng::with_seed(5);
    let message = json_message(1, &mut rng);
    let first = client.compress(&message).expect("compressible");
    let second = client.compress(&message).expect("compressible");
    assert_eq!(first, second, "the second message is compressed as if it were the first");
    let (mut server, mut client) = pair(params(false, false, 15, 15));
    let first = client.compress(&message).expect("compressible");
    let second = client.compress(&message).expect("compressible");
    assert!(second.len() < first.len() / 4, "with takeover the repeat is nearly free");
    assert_eq!(inflate(&mut server, &first).as_ref(), Ok(&message));
    assert_eq!(inflate(&mut server, &second).as_ref(), Ok(&message));
}

/// With 8 bits agreed for our sending direction we deflate with zlib's 9, whose matches reach
/// at most 250 bytes back: an inflater with a real 8-bit window reads all of it.
#[test]
fn eight_bit_window_output_fits() {
    let mut rng = fastrand::Rng::with_seed(9);
    // Repeats at distances around 256: a 9-bit deflater could use 257..=511 if it were allowed.
    let block: Vec<u8> = (0..300).map(|_| rng.u8(b'a'..=b'z')).collect();
    let message: Vec<u8> = (0..40).flat_map(|i| [&block[..], &block[i..i + 20]].concat()).collect();
    for level in [1, 6, 9] {
        let settings = DeflateConfig { level, threshold: 0, ..DeflateConfig::default() };
        let mut codec = PerMessageDeflate::new(Role::Server, params(false, false, 8, 15), &settings);
        let mut inflater = zlib_rs::Inflate::new(false, 8);
        for _ in 0..3 {
            let compressed = codec.compress(&message).expect("compressible");
            let input = [&compressed[..], &SYNC_FLUSH_TAIL].concat();
            let mut out = vec![0u8; message.len() + 1];
            let before = inflater.total_out();
            let status = inflater.decompress(&input, &mut out, zlib_rs::InflateFlush::SyncFlush);
            assert!(status.is_ok(), "level {level}: {status:?}");
            out.truncate(usize::try_from(inflater.total_out() - before).unwrap_or(0));
            assert_eq!(out, message, "level {level}");
        }
    }
}

/// Contexts exist only when needed: none when idle, none after a message in a direction without
/// takeover, one kept per direction with takeover.
#[test]
fn contexts_lazy_and_released() {
    let mut rng = fastrand::Rng::with_seed(1);
    let message = json_message(0, &mut rng);
    for flags in 0..4u8 {
        let agreed = params(flags & 1 != 0, flags & 2 != 0, 12, 10);
        let (mut server, mut client) = pair(agreed);
        assert_eq!(server.memory_estimate() + client.memory_estimate(), 0, "idle");
        let compressed = server.compress(&message).expect("compressible");
        let kept = if agreed.server_no_context_takeover { 0 } else { deflate_context_bytes(12) };
        assert_eq!(server.memory_estimate(), kept, "{agreed}: server after sending");
        assert_eq!(inflate(&mut client, &compressed).as_ref(), Ok(&message));
        let kept = if agreed.server_no_context_takeover { 0 } else { INFLATE_CONTEXT_BYTES };
        assert_eq!(client.memory_estimate(), kept, "{agreed}: client after receiving");
    }
}

/// However many connections a thread serves, it keeps at most a few spare contexts, and a
/// connection without takeover holds none between messages.
#[test]
fn spares_are_bounded_per_thread() {
    spare::clear();
    let mut rng = fastrand::Rng::with_seed(3);
    let message = json_message(0, &mut rng);
    let agreed = params(true, true, 15, 15);
    let mut servers: Vec<PerMessageDeflate> = (0..50)
        .map(|_| PerMessageDeflate::new(Role::Server, agreed, &config(0)))
        .collect();
    let mut client = PerMessageDeflate::new(Role::Client, agreed, &config(0));
    for server in &mut servers {
        let compressed = server.compress(&message).expect("compressible");
        assert_eq!(
            inflate(&mut client, &compressed).as_deref(),
            Ok(&message[..])
        );
        let back = client.compress(&message).expect("compressible");
        assert_eq!(inflate(server, &back).as_deref(), Ok(&message[..]));
        assert_eq!(server.memory_estimate(), 0, "nothing held between messages");
    }
    let (compressors, decompressors) = spare::count();
    assert!(
        (1..=spare::KEEP_COMPRESSORS).contains(&compressors),
        "{compressors} spare compressors"
    );
    assert!(
        (1..=spare::KEEP_DECOMPRESSORS).contains(&decompressors),
        "{decompressors} spare decompressors"
    );
    // A context taken from the spares starts afresh: the same message compresses the same way.
    let first = servers[0].compress(&message);
    let second = servers[1].compress(&message);
    assert_eq!(first, second);
    spare::clear();
}
