//! Fuzz target: `websocket_rs_core::fuzzing::proxy_header` (see that function's documentation).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| websocket_rs_core::fuzzing::proxy_header(data));
