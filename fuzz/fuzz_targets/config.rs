#![no_main]
//! Fuzz target: see `octostage::fuzzing::config`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| octostage::fuzzing::config(data));
