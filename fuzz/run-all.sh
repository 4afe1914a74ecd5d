#!/bin/sh
# Runs every fuzz target for SECONDS seconds (default 60), one after the other, each from its
# committed seeds (fuzz/seeds/TARGET) and its growing local corpus (fuzz/corpus/TARGET).
# A crashing input is written to fuzz/artifacts/TARGET/; the script goes on with the other
# targets and exits non-zero if any crashed. See docs/fuzzing.md.
set -u
seconds=${1:-60}
cd "$(dirname "$0")/.." || exit 2
cargo +nightly fuzz build || exit 2
failed=""
for target in $(cargo +nightly fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    echo "== $target: $seconds s"
    if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1; then
        failed="$failed $target"
    fi
done
if [ -n "$failed" ]; then
    echo "crashed:$failed (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "no target crashed"
