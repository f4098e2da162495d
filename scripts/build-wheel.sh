#!/usr/bin/env bash
# Builds the Python wheels, one per architecture:
#   dist/gpuaff-VERSION-py3-none-manylinux_2_28_x86_64.whl
#   dist/gpuaff-VERSION-py3-none-manylinux_2_28_aarch64.whl
# and checks each with `auditwheel show`.
#
# The native files are the ones scripts/build-release.sh builds (cargo-zigbuild, glibc 2.28): the
# same libgpuaff.so that LD_PRELOAD uses elsewhere, and the gpuaff command. The wheel is then packed
# by setuptools through pip (PEP 517) from python/: the module reaches the library through ctypes, so
# the wheel is not a CPython extension and fits any Python 3 (tag py3-none-PLATFORM). Why not
# maturin: it builds one kind of artifact per wheel (an extension module, or binaries) with its own
# cargo invocation, while this wheel carries a plain cdylib and a binary that must be exactly the
# release build; packing that build keeps one build path.
#
#   scripts/build-wheel.sh                  # x86_64 and aarch64
#   scripts/build-wheel.sh x86_64           # one architecture
#   GPUAFF_DIST=/tmp/wheels scripts/build-wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
dist=${GPUAFF_DIST:-dist}
glibc=2.28
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "build-wheel: no version in Cargo.toml" >&2; exit 1; }

scripts/build-release.sh "${arches[@]}"

# shellcheck source=scripts/tools.sh
. scripts/tools.sh
ensure_wheel_tools

mkdir -p "$dist"
stage_root=$(mktemp -d)
trap 'rm -rf "$stage_root"' EXIT
for arch in "${arches[@]}"; do
    out=${CARGO_TARGET_DIR:-target}/$arch-unknown-linux-gnu/release
    plat=manylinux_${glibc//./_}_$arch
    stage=$stage_root/$arch
    cp -r python "$stage"
    rm -rf "$stage/build" "$stage"/*.egg-info "$stage/gpuaff/lib" "$stage/gpuaff/bin"
    mkdir -p "$stage/gpuaff/lib" "$stage/gpuaff/bin"
    install -m 0755 "$out/libgpuaff.so" "$stage/gpuaff/lib/libgpuaff.so"
    install -m 0755 "$out/gpuaff" "$stage/gpuaff/bin/gpuaff"
    sed -i "s/^version = .*/version = \"$version\"/" "$stage/pyproject.toml"
    printf '__version__ = "%s"\n' "$version" >"$stage/gpuaff/_version.py"
    wheel=$dist/gpuaff-$version-py3-none-$plat.whl
    rm -f "$wheel"
    GPUAFF_WHEEL_PLAT=$plat "$TOOLS_PYTHON" -m pip wheel --quiet --no-deps -w "$dist" "$stage"
    [ -f "$wheel" ] || { echo "build-wheel: $wheel was not produced" >&2; exit 1; }
    echo "build-wheel: $wheel ($(du -k "$wheel" | cut -f1) KiB)"
    show=$("$TOOLS_PYTHON" -m auditwheel show "$wheel")
    echo "$show"
    # auditwheel names the most compatible tag the files allow; it must be no newer than the wheel's.
    allowed=$(grep -o "manylinux_2_[0-9]*_$arch" <<<"$show" | head -1)
    if [ -z "$allowed" ]; then
        echo "build-wheel: auditwheel found no manylinux tag for $wheel" >&2
        exit 1
    fi
    minor=${allowed#manylinux_2_}
    minor=${minor%%_*}
    if [ "$minor" -gt "${glibc#2.}" ]; then
        echo "build-wheel: $wheel is tagged $plat but its files need $allowed" >&2
        exit 1
    fi
done
