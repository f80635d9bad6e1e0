//! Fuzz target: `websocket_rs_core::fuzzing_deflate::negotiate` (see that function's documentation).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| websocket_rs_core::fuzzing_deflate::negotiate(data));
