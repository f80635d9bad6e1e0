//! Floods, slow attackers and descriptor exhaustion at scale (issue 18, parts 2 and 3), against
//! one server in this process while a bystander peer keeps exchanging echoes with it:
//!
//! - `slowloris`: 10,000 connections that send an upgrade request byte by byte and never finish it;
//! - `tls_hellos`: 10,000 wss:// connections whose TLS handshake never finishes (half send the
//!   ClientHello byte by byte, half send it whole and then stay silent);
//! - `huge_frame_headers`: 1,000 open peers that each send a frame header announcing a 1 GiB
//!   payload and then trickle payload bytes;
//! - `descriptor_exhaustion`: `RLIMIT_NOFILE` lowered to leave room for 100 connections, then a
//!   flood of 1,000; the server keeps serving, reports the episode once, and admits the waiting
//!   connections as soon as descriptors are free, without any new connection arriving.
//!
//! Each flood checks that the server's resident memory grows within a stated bound, that the
//! bystander's round trips stay within a stated bound, that every flood connection is dropped at
//! its deadline (`handshake_timeout` from accept, not pushed back by the bytes that trickle in;
//! 1009 at once for the 1 GiB header), and that no connection is left over.
//!
//! The flood connections come from a child process (this binary run with [`CHILD_FLAG`]), so that
//! the server's process holds only the server's descriptors: 10,000 connections need 20,000
//! descriptors in all, more than one process may have on many machines. The child spreads them
//! over several loopback source addresses (127.0.0.2 and up) so that ports never run short.
//!
//! Own harness (`harness = false` in Cargo.toml): the descriptor limit is the whole process's
//! and resident memory is measured from a fresh heap, so each test runs alone in a process of its
//! own (this binary with `--run-one NAME`), one after another; one that cannot run here (a hard
//! descriptor limit too low to raise) prints `SKIPPED: <reason>` and counts as ignored in the
//! summary line, never as passed. The whole file takes about 15 s.

#[cfg(target_os = "linux")]
#[path = "floods/client.rs"]
mod client;
#[cfg(target_os = "linux")]
#[path = "floods/linux.rs"]
mod linux;
#[cfg(target_os = "linux")]
#[path = "floods/support.rs"]
mod support;

/// The first argument that makes this binary the flood client instead of the tests.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const CHILD_FLAG: &str = "--flood-client";

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: the flood tests use Linux's /proc, RLIMIT_NOFILE and 127.0.0.0/8 source addresses");
    println!("test result: ok. 0 passed; 0 failed; 4 ignored; 0 measured; 0 filtered out");
}
