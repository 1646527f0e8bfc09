#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 20), on its
# committed corpus, without a sanitizer (Rust is memory-safe outside `unsafe`;
# what we look for are panics, hangs and unbounded allocations, which libFuzzer
# catches with -timeout, -rss_limit_mb and -malloc_limit_mb). Exits non-zero
# on the first target that fails; its input is kept in fuzz/artifacts/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]
#
# Needs the nightly toolchain; installs cargo-fuzz when missing. Builds into
# ~/.cache/beam-fuzz so CI reuses the instrumented build.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"; shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# cargo-fuzz finds the binaries under --target-dir itself; an inherited
# CARGO_TARGET_DIR would send the build elsewhere.
unset CARGO_TARGET_DIR
dir="$HOME/.cache/beam-fuzz"
flags=(-O --sanitizer none --target-dir "$dir")
cargo +nightly fuzz build "${flags[@]}"
# The targets' shared assertions (src/lib.rs) have unit tests; they need no
# dependency, so plain rustc runs them in a second.
rustc --edition 2024 --test src/lib.rs -o "$dir/beam-fuzz-lib-tests" && "$dir/beam-fuzz-lib-tests" -q
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
for t in "${targets[@]}"; do
  printf '== fuzz %s (%s s)\n' "$t" "$secs"
  cargo +nightly fuzz run "${flags[@]}" "$t" -- -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=512 -malloc_limit_mb=256 -print_final_stats=1 2>&1 \
    | grep -E 'stat::number_of_executed_units|panicked|ERROR|SUMMARY|Test unit written' || true
  # grep hides libFuzzer's chatter; the exit status is cargo-fuzz's.
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz target $t failed (input in fuzz/artifacts/$t/)" >&2; exit 1; }
done
