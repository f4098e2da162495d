#!/usr/bin/env bash
# Runs every test: unit tests of the core, the fixture generator, the hwloc-snapshot conformance suite
# (skips, saying so, without ../shared), and the integration tests that preload the real libgpuaff.so
# into C programs and python3. The integration tests need the cdylib and the CLI built first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --quiet
cargo test --workspace "$@"
