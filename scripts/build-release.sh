#!/usr/bin/env bash
# Builds the shipped artifacts (libgpuaff.so and the gpuaff command) against glibc 2.28, so that
# they load on RHEL 8 and every newer distribution, for x86_64 and aarch64 (Grace: GH200, GB200).
# A plain `cargo build --release` here links against this machine's glibc (2.36) and needs symbols
# versioned GLIBC_2.34 and up.
#
# How: cargo-zigbuild links with zig's cc, which carries stubs for any glibc version named in the
# target triple, and cross-links for aarch64 without a cross toolchain. Both tools come from PyPI as
# prebuilt wheels (ziglang, cargo-zigbuild), installed on first use by scripts/tools.sh; the Rust
# standard library for each target comes from rustup. Output: ${CARGO_TARGET_DIR:-target}/<arch>-unknown-linux-gnu/release/.
# Checks each library and command with objdump -T and fails if either needs more than the target.
#
#   scripts/build-release.sh                    # x86_64, glibc 2.28
#   scripts/build-release.sh aarch64            # aarch64 only
#   scripts/build-release.sh x86_64 aarch64     # both
#   GPUAFF_GLIBC=2.17 scripts/build-release.sh
set -euo pipefail
cd "$(dirname "$0")/.."

glibc=${GPUAFF_GLIBC:-2.28}
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64)

start=$(date +%s)
# shellcheck source=scripts/tools.sh
. scripts/tools.sh
ensure_release_tools
tools=$(date +%s)

# The highest GLIBC_ version a file needs, and a check that it is within the target.
check() {
    local file=$1 need highest
    need=$(objdump -T "$file" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -1)
    echo "build-release: $file needs at most $need (target $glibc)"
    highest=${need#GLIBC_}
    if [ "$(printf '%s\n%s\n' "$highest" "$glibc" | sort -V | tail -1)" != "$glibc" ]; then
        echo "build-release: $file needs $need, above $glibc" >&2
        return 1
    fi
}

for arch in "${arches[@]}"; do
    case $arch in
        x86_64 | aarch64) ;;
        *) echo "build-release: unknown architecture $arch (x86_64, aarch64)" >&2; exit 2 ;;
    esac
    target=$arch-unknown-linux-gnu
    rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
    t0=$(date +%s)
    cargo zigbuild --release --target "$target.$glibc" -p gpuaff
    out=${CARGO_TARGET_DIR:-target}/$target/release
    echo "build-release: $arch built in $(($(date +%s) - t0)) s"
    check "$out/libgpuaff.so"
    check "$out/gpuaff"
done
echo "build-release: tools $((tools - start)) s, total $(($(date +%s) - start)) s"
