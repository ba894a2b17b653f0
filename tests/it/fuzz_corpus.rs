//! The committed fuzz corpus (`fuzz/corpus/<target>/`) replayed through every fuzz entry
//! point: what the fuzzer found once keeps being tested without a nightly toolchain. Each
//! input runs in this process; a panic fails the test and names the file.

use crate::util::root;

#[test]
fn the_fuzz_corpus_never_panics() {
    let mut ran = 0;
    for (name, target) in octostage::fuzzing::TARGETS {
        let dir = root().join("fuzz/corpus").join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(r.is_ok(), "fuzz target {name} panics on {}", path.display());
            ran += 1;
        }
    }
    assert!(ran >= 30, "only {ran} corpus inputs");
}
