#!/usr/bin/env bash
# Long run of gpuaff's parser fuzzer (core/examples/fuzz.rs), optimized build.
#   scripts/fuzz.sh                 # 10 million executions over every target, seed 1
#   scripts/fuzz.sh 50000000 7      # executions, seed
#   FUZZ_TARGET=parse_mask scripts/fuzz.sh
# Prints executions and findings per target; exits 1 when anything was found.
set -euo pipefail
cd "$(dirname "$0")/.."
execs=${1:-10000000}
seed=${2:-1}
args=(--execs "$execs" --seed "$seed")
[ -n "${FUZZ_TARGET:-}" ] && args+=(--target "$FUZZ_TARGET")
cargo build --quiet --release -p gpuaff-core --example fuzz
exec "${CARGO_TARGET_DIR:-target}/release/examples/fuzz" "${args[@]}"
