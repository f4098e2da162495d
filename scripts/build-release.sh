#!/usr/bin/env bash
# Builds the shipped artifacts (libgpuaff.so and the gpuaff command) against glibc 2.28, so that
# they load on RHEL 8 and every newer distribution. A plain `cargo build --release` here links
# against this machine's glibc (2.36) and needs symbols versioned GLIBC_2.34 and up.
#
# How: cargo-zigbuild links with zig's cc, which carries stubs for any glibc version named in the
# target triple. Both tools come from the ordinary registries (PyPI, crates.io); they are installed
# on first use. Output: ${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/.
#
#   scripts/build-release.sh            # glibc 2.28
#   GPUAFF_GLIBC=2.17 scripts/build-release.sh
set -euo pipefail
cd "$(dirname "$0")/.."

glibc=${GPUAFF_GLIBC:-2.28}
target=x86_64-unknown-linux-gnu
zigbuild_version=0.24.1
ziglang_version=0.17.1

start=$(date +%s)
if ! command -v zig >/dev/null 2>&1 && ! python3 -m ziglang version >/dev/null 2>&1; then
    echo "build-release: installing zig (pip ziglang==$ziglang_version)"
    python3 -m pip install --quiet "ziglang==$ziglang_version"
fi
if ! command -v cargo-zigbuild >/dev/null 2>&1; then
    echo "build-release: installing cargo-zigbuild $zigbuild_version"
    cargo install --quiet --locked cargo-zigbuild --version "$zigbuild_version"
fi
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
tools=$(date +%s)

cargo zigbuild --release --target "$target.$glibc" -p gpuaff
done_at=$(date +%s)

lib=${CARGO_TARGET_DIR:-target}/$target/release/libgpuaff.so
need=$(objdump -T "$lib" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -1)
echo "build-release: $lib needs at most $need (target $glibc)"
echo "build-release: tools $((tools - start)) s, build $((done_at - tools)) s"
highest=${need#GLIBC_}
if [ "$(printf '%s\n%s\n' "$highest" "$glibc" | sort -V | tail -1)" != "$glibc" ]; then
    echo "build-release: $lib needs $need, above $glibc" >&2
    exit 1
fi
