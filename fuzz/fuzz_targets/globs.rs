#![no_main]
//! Fuzz target: see `octostage::fuzzing::globs`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| octostage::fuzzing::globs(data));
