//! Memory and compression figures of one connection's codec, measured with a counting allocator
//! (this test binary's global allocator counts each thread's live heap bytes). Print them with
//! `cargo test -p websocket_rs_core --lib deflate::measure -- --nocapture`.
//!
//! The test also checks what the figures promise: an idle codec holds nothing, a direction
//! without context takeover holds nothing after a message, `memory_estimate` is within 10 % of
//! what is held, and context takeover compresses small JSON messages better.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use super::codec::spare;
use super::{DeflateConfig, DeflateParams, PerMessageDeflate};
use crate::connection::Role;

thread_local! {
    /// Heap bytes allocated and not yet freed by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The highest `LIVE` since the last `reset_peak`.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's live bytes.
struct ThreadCountingAllocator;

/// Adds `delta` to this thread's live bytes (nothing while the thread is being torn down).
fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` with the same arguments; counting touches only
// const-initialised thread-locals, which do not allocate.
unsafe impl GlobalAlloc for ThreadCountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// Counts the heap of every thread of the core's unit-test binary.
#[global_allocator]
static ALLOCATOR: ThreadCountingAllocator = ThreadCountingAllocator;

/// This thread's live heap bytes.
fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Sets this thread's peak to its current live bytes.
fn reset_peak() {
    PEAK.with(|peak| peak.set(live()));
}

/// This thread's peak since `reset_peak`.
fn peak() -> isize {
    PEAK.with(Cell::get)
}

/// A JSON-like game message of about 300 bytes (state update with numbers, names and events),
/// different each time.
pub(super) fn json_message(i: usize, rng: &mut fastrand::Rng) -> Vec<u8> {
    let teams = ["red", "blue", "green"];
    let kinds = ["hit", "heal", "pickup", "emote"];
    format!(
        concat!(
            r#"{{"type":"state","tick":{},"player":{{"id":{},"name":"player_{}","team":"{}","#,
            r#""pos":{{"x":{:.2},"y":{:.2},"z":{:.2}}},"vel":{{"x":{:.2},"y":{:.2},"z":{:.2}}},"hp":{},"#,
            r#""ammo":{}}},"events":[{{"kind":"{}","target":{},"amount":{}}},{{"kind":"{}","target":{},"amount":{}}}],"#,
            r#""inventory":["sword","shield","potion_{}"],"ts":{}}}"#
        ),
        i,
        rng.u32(1000..9999),
        rng.u32(1..64),
        teams[rng.usize(..teams.len())],
        rng.f32() * 200.0 - 100.0,
        rng.f32() * 50.0,
        rng.f32() * 200.0 - 100.0,
        rng.f32() * 10.0 - 5.0,
        rng.f32() * 10.0 - 5.0,
        rng.f32() * 10.0 - 5.0,
        rng.u32(0..=100),
        rng.u32(0..=300),
        kinds[rng.usize(..kinds.len())],
        rng.u32(1000..9999),
        rng.u32(1..100),
        kinds[rng.usize(..kinds.len())],
        rng.u32(1000..9999),
        rng.u32(1..100),
        rng.u32(1..5),
        1_700_000_000_000u64 + i as u64 * 16,
    )
    .into_bytes()
}

/// Bytes as KiB with one decimal.
fn kib(bytes: isize) -> String {
    format!("{:.1}", bytes as f64 / 1024.0)
}

/// What one codec holds: idle, after sending one message, after also receiving one, and the
/// peak while doing so.
struct Held {
    /// Heap held before any message.
    idle: isize,
    /// Heap held after sending one message.
    after_send: isize,
    /// Heap held after sending one and receiving one.
    after_both: isize,
    /// Highest heap while sending and receiving.
    peak: isize,
    /// The codec's own estimate after both.
    estimate: usize,
}

/// Measures `role`'s codec for `params`: it sends `message` and receives `incoming` (compressed
/// by the other side beforehand, outside the measurement).
fn held(role: Role, params: DeflateParams, message: &[u8], incoming: &[u8]) -> Held {
    let config = DeflateConfig { threshold: 0, ..DeflateConfig::default() };
    // The thread's spare contexts are shared by every connection of the thread, not held by
    // this one: each figure is taken with them freed.
    spare::clear();
    let base = live();
    reset_peak();
    let mut codec = PerMessageDeflate::new(role, params, &config);
    let idle = live() - base;
    let sent = codec.compress(message);
    assert!(sent.is_some(), "the message compresses");
    drop(sent);
    spare::clear();
    let after_send = live() - base;
    let mut out = Vec::new();
    assert_eq!(codec.decompress(incoming, true, 1 << 20, &mut out), Ok(()));
    drop(out);
    spare::clear();
    let after_both = live() - base;
    let peak = peak() - base;
    let estimate = codec.memory_estimate();
    drop(codec);
    assert_eq!(live(), base, "everything is freed with the codec");
    Held { idle, after_send, after_both, peak, estimate }
}

/// Memory per connection for each takeover choice and window, both roles; checks the promises.
#[test]
fn memory_per_connection() {
    let mut rng = fastrand::Rng::with_seed(42);
    let message = json_message(0, &mut rng);
    println!("deflate memory per connection (KiB of heap; one ~{} byte JSON message each way)", message.len());
    println!("role    no_takeover(srv,cli) bits  idle  after_send  after_send+recv  peak  estimate");
    for (server_nct, client_nct) in [(false, false), (true, false), (false, true), (true, true)] {
        for bits in [15, 12, 10, 9, 8] {
            let params = DeflateParams {
                server_no_context_takeover: server_nct,
                client_no_context_takeover: client_nct,
                server_max_window_bits: bits,
                client_max_window_bits: bits,
            };
            for role in [Role::Server, Role::Client] {
                let other = if role == Role::Server { Role::Client } else { Role::Server };
                let config = DeflateConfig { threshold: 0, ..DeflateConfig::default() };
                let incoming = PerMessageDeflate::new(other, params, &config).compress(&message).unwrap_or_default();
                let held = held(role, params, &message, &incoming);
                println!(
                    "{:<7} {:<5} {:<5}          {:>4} {:>5} {:>10} {:>16} {:>5} {:>9}",
                    format!("{role:?}"),
                    server_nct,
                    client_nct,
                    bits,
                    kib(held.idle),
                    kib(held.after_send),
                    kib(held.after_both),
                    kib(held.peak),
                    kib(held.estimate as isize),
                );
                let (send_nct, receive_nct) = if role == Role::Server { (server_nct, client_nct) } else { (client_nct, server_nct) };
                assert_eq!(held.idle, 0, "an idle codec holds nothing");
                if send_nct {
                    assert_eq!(held.after_send, 0, "{role:?} {params}: no compressor kept");
                }
                if send_nct && receive_nct {
                    assert_eq!(held.after_both, 0, "{role:?} {params}: no context kept");
                }
                let error = (held.estimate as f64 - held.after_both as f64).abs();
                assert!(error <= 0.1 * held.after_both as f64, "{role:?} {params}: estimate {} for {} held", held.estimate, held.after_both);
            }
        }
    }
    println!("PerMessageDeflate itself: {} bytes inline", std::mem::size_of::<PerMessageDeflate>());
}

/// Compression of 1000 JSON-like messages of about 300 bytes by a server, for each takeover
/// choice, window and level: bytes on the wire against bytes given, and time per message.
#[test]
fn ratio_of_small_json_messages() {
    let mut rng = fastrand::Rng::with_seed(42);
    let messages: Vec<Vec<u8>> = (0..1000).map(|i| json_message(i, &mut rng)).collect();
    let raw: usize = messages.iter().map(Vec::len).sum();
    println!("1000 JSON-like messages, {raw} bytes (average {}), sent by a server", raw / messages.len());
    println!("server_no_context_takeover bits level  wire/raw  us/message (this build)");
    let mut ratios = Vec::new();
    for no_takeover in [false, true] {
        for bits in [15, 12, 9] {
            for level in [1, 6, 9] {
                let params = DeflateParams {
                    server_no_context_takeover: no_takeover,
                    client_no_context_takeover: no_takeover,
                    server_max_window_bits: bits,
                    client_max_window_bits: bits,
                };
                let config = DeflateConfig { level, threshold: 0, ..DeflateConfig::default() };
                let mut server = PerMessageDeflate::new(Role::Server, params, &config);
                let mut client = PerMessageDeflate::new(Role::Client, params, &config);
                let started = Instant::now();
                let mut wire = 0;
                for message in &messages {
                    match server.compress(message) {
                        Some(compressed) => {
                            wire += compressed.len();
                            let mut out = Vec::new();
                            assert_eq!(client.decompress(&compressed, true, 1 << 20, &mut out), Ok(()));
                            assert_eq!(&out, message);
                        }
                        None => wire += message.len(),
                    }
                }
                let per_message = started.elapsed().as_secs_f64() * 1e6 / messages.len() as f64;
                let ratio = wire as f64 / raw as f64;
                println!("{no_takeover:<26} {bits:>4} {level:>5}  {ratio:>8.3}  {per_message:>8.1}");
                ratios.push((no_takeover, bits, level, ratio));
            }
        }
    }
    for &(no_takeover, bits, level, ratio) in &ratios {
        assert!(ratio < 1.0, "compression pays even without takeover");
        if !no_takeover {
            let without = ratios.iter().find(|r| r.0 && r.1 == bits && r.2 == level).map_or(1.0, |r| r.3);
            assert!(ratio < without, "takeover compresses better ({bits} bits, level {level})");
        }
    }
}
