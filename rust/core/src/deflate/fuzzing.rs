//! Entry points for `cargo fuzz` (targets `inflate` and `extension_header` in `fuzz/`; exposed
//! as `websocket_rs_core::fuzzing_deflate`): untrusted compressed payloads and
//! `Sec-WebSocket-Extensions` values. Each must return, never panic, whatever the bytes, and the
//! code must keep its promises: inflating never produces more than the limit, what we compress
//! inflates back to itself, and an answer our server makes is one our client accepts.

use super::{client_accept, client_offer, server_answer, DeflateConfig, DeflateParams, InflateError, PerMessageDeflate};
use crate::connection::Role;

/// Settings and agreement picked by one fuzz byte: takeovers, windows, role.
fn pick(byte: u8) -> (Role, DeflateParams) {
    let bits = [8, 9, 12, 15];
    let role = if byte & 1 == 0 { Role::Server } else { Role::Client };
    let params = DeflateParams {
        server_no_context_takeover: byte & 2 != 0,
        client_no_context_takeover: byte & 4 != 0,
        server_max_window_bits: bits[usize::from(byte >> 3) % 4],
        client_max_window_bits: bits[usize::from(byte >> 5) % 4],
    };
    (role, params)
}

/// `data` as compressed frames: the first byte picks the agreement and role, the second the size
/// limit; then each frame is a length byte (its top bit: the message's last frame) and that many
/// bytes. Checks that the output never passes the limit. When the first byte's top bit is set,
/// the rest is also compressed by the other side and must inflate back to itself.
pub fn inflate(data: &[u8]) {
    let [setting, limit, script @ ..] = data else { return };
    let (role, params) = pick(*setting);
    let config = DeflateConfig { threshold: 0, level: u32::from(*limit % 10), ..DeflateConfig::default() };
    let max_size = usize::from(*limit) * 64;
    let mut codec = PerMessageDeflate::new(role, params, &config);
    let mut rest = script;
    let mut out = Vec::new();
    while let Some((&header, tail)) = rest.split_first() {
        let n = tail.len().min(usize::from(header & 0x7f));
        let (frame, next) = tail.split_at(n);
        rest = next;
        let fin = header & 0x80 != 0 || rest.is_empty();
        let result = codec.decompress(frame, fin, max_size, &mut out);
        assert!(out.len() <= max_size, "inflated {} bytes past the limit {max_size}", out.len());
        if result.is_err() || fin {
            out.clear();
            // A direction without context takeover holds no context between messages.
            let receiving_no_takeover =
                if role == Role::Server { params.client_no_context_takeover } else { params.server_no_context_takeover };
            if receiving_no_takeover || result.is_err() {
                assert_eq!(codec.memory_estimate(), 0, "no context kept after the message");
            }
        }
    }
    if setting & 0x80 != 0 {
        round_trip(role, params, &config, script);
    }
}

/// `message` compressed by the side opposite `role` and inflated by `role`'s codec, twice (the
/// second time with whatever context takeover kept).
fn round_trip(role: Role, params: DeflateParams, config: &DeflateConfig, message: &[u8]) {
    let sender_role = if role == Role::Server { Role::Client } else { Role::Server };
    let mut sender = PerMessageDeflate::new(sender_role, params, config);
    let mut receiver = PerMessageDeflate::new(role, params, config);
    for _ in 0..2 {
        let Some(compressed) = sender.compress(message) else { continue };
        // With a threshold of 0 every message is compressed, even one that grows.
        assert!(config.threshold == 0 || compressed.len() < message.len(), "a compressed message is smaller");
        let mut out = Vec::new();
        let result = receiver.decompress(&compressed, true, message.len(), &mut out);
        assert_eq!(result, Ok::<(), InflateError>(()), "what we compress inflates");
        assert_eq!(out, message, "and comes back the same");
    }
}

/// `data` as request header values (split at newlines) for a server with settings from the
/// first byte, and as a server's answer to our client. An answer our server makes must be one
/// our client, having offered what the server saw, agrees to with the same parameters.
pub fn negotiate(data: &[u8]) {
    let Some((&setting, text)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(text);
    let config = config_from(setting);
    let values: Vec<&str> = text.split('\n').collect();
    let _ = server_answer(&config, &values);
    let _ = client_accept(&config, Some(&text));
    // Our own client's offer, with the fuzzed values after it, must be accepted by our server,
    // and its answer by our client.
    let client = config_from(setting.rotate_left(4));
    let Some(offer) = client_offer(&client) else { return };
    let mut offers = vec![offer.as_str()];
    offers.extend(values.iter().copied());
    if let Ok(Some((agreed, answer))) = server_answer(&config, &offers) {
        assert_eq!(client_accept(&client, Some(&answer)).ok(), Some(Some(agreed)), "{offer} -> {answer}");
    }
}

/// Settings from one fuzz byte.
fn config_from(byte: u8) -> DeflateConfig {
    let bits = [8, 9, 12, 15];
    DeflateConfig {
        enabled: byte & 1 == 0,
        server_no_context_takeover: byte & 2 != 0,
        client_no_context_takeover: byte & 4 != 0,
        server_max_window_bits: bits[usize::from(byte >> 3) % 4],
        client_max_window_bits: bits[usize::from(byte >> 5) % 4],
        ..DeflateConfig::default()
    }
}

/// Valid inputs for the target named `target` (the fuzzer's starting corpus); empty for an
/// unknown name.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let seeds: Vec<&[u8]> = match target {
        // RFC 7692's "Hello" in one frame and in two; its stored block; a round trip of text.
        "inflate" => vec![
            b"\x00\x10\x87\xf2\x48\xcd\xc9\xc9\x07\x00",
            b"\x01\x10\x03\xf2\x48\xcd\x84\xc9\xc9\x07\x00",
            b"\x00\x10\x8b\x00\x05\x00\xfa\xffHello\x00",
            b"\x80\x40\x10{\"type\":\"state\",\"tick\":1,\"tick\":1,\"tick\":1}",
            // Found by the fuzzer: a round trip of bytes that grow when compressed (threshold 0).
            b"\xff\xff\xff\xff\xff\xff\xff\x05\xc9\x07\x00",
        ],
        "extension_header" => vec![
            b"\x00permessage-deflate; client_max_window_bits",
            b"\x02permessage-deflate; server_no_context_takeover; client_max_window_bits=10\nx-foo, permessage-deflate",
            b"\x48permessage-deflate; server_max_window_bits=\"9\"; client_no_context_takeover",
        ],
        _ => vec![],
    };
    seeds.into_iter().map(<[u8]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    /// Every fuzz entry point on its seeds, and on a few hostile inputs.
    #[test]
    fn seeds_run() {
        for (target, run) in [("inflate", super::inflate as fn(&[u8])), ("extension_header", super::negotiate)] {
            let seeds = super::seeds(target);
            assert!(!seeds.is_empty(), "{target} has seeds");
            for seed in seeds {
                run(&seed);
            }
        }
        super::inflate(b"\x00\x01\xff\xff\xff\xff\xff\xff\xff");
        super::inflate(&[0x80, 0xff, 0x7f].iter().copied().chain(std::iter::repeat_n(b'a', 200)).collect::<Vec<u8>>());
        super::negotiate(b"\x00permessage-deflate; a=\"\\");
        super::negotiate(b"\x00\xff\xfe, ;;==\"");
    }
}
