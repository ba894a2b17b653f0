#!/usr/bin/env bash
# Fuzz every target for a bounded time, growing the committed corpus (fuzz/corpus/<target>).
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
# Needs cargo-fuzz (installed when missing) and a nightly compiler; without one installed the
# stable compiler is used with RUSTC_BOOTSTRAP=1 (never fetched: `rustc +nightly` would make
# rustup download one). Any crash stops the script with its input in
# fuzz/artifacts/<target>/: add that input to fuzz/corpus/<target>/ with the fix, so the
# corpus test in src/fuzzing.rs (the_fuzz_corpus_never_panics) keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config globs naming durations cron templates)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cargo=(cargo)
if rustup toolchain list 2>/dev/null | grep -q "^nightly"; then
  cargo=(cargo +nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${secs}s"
  "${cargo[@]}" fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 -timeout=20
done
