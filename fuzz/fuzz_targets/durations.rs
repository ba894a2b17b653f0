#![no_main]
//! Fuzz target: see `octostage::fuzzing::durations`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| octostage::fuzzing::durations(data));
