#!/usr/bin/env bash
# Install suite: scripts/install.sh into a temporary prefix, then what a C/C++ user does with it:
# the SONAME and its symlinks, README's C example built with pkg-config, examples/pipeline built with
# CMake's find_package(gpuaff), and the installed gpuaff command finding the library in bin/../lib*.
# Each program binds on a fixture machine and is checked by its output. Last line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

for tool in cc c++ cmake pkg-config readelf; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install suite: $tool not found"; exit 77; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { echo "ok: $1"; passed=$((passed + 1)); }
bad() { echo "FAILED: $1"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...: passes when COMMAND succeeds
    local name=$1
    shift
    if "$@" >"$work/out" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/    /' "$work/out"; fi
}

if ! scripts/build-release.sh >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    if grep -qE "No matching distribution|Failed to establish|Temporary failure|could not" "$work/build.log"; then
        echo "install suite: the release build tools could not be installed"
        exit 77
    fi
    echo "0 passed, 1 failed"
    exit 1
fi
cargo build --quiet -p gpuaff-fixtures --bin gpuaff-fixture || { echo "0 passed, 1 failed"; exit 1; }
fixture_bin=${CARGO_TARGET_DIR:-$repo/target}/debug/gpuaff-fixture
fx=$work/two-gpu-local
"$fixture_bin" write two-gpu-local "$fx" >/dev/null
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
arch=$(uname -m)

prefix=$work/prefix
check "install.sh --prefix" scripts/install.sh --prefix "$prefix" --no-build --arch "$arch"
lib=$prefix/lib

# The usual symlink chain and the SONAME.
check "lib/libgpuaff.so -> libgpuaff.so.0 -> libgpuaff.so.$version" \
    test "$(readlink "$lib/libgpuaff.so")" = libgpuaff.so.0 -a \
    "$(readlink "$lib/libgpuaff.so.0")" = "libgpuaff.so.$version" -a -f "$lib/libgpuaff.so.$version"
readelf -d "$lib/libgpuaff.so.$version" | grep SONAME
check "readelf -d: SONAME libgpuaff.so.0" \
    grep -q 'Library soname: \[libgpuaff.so.0\]' <(readelf -d "$lib/libgpuaff.so.$version")
check "include/gpu_affinity.h and bin/gpuaff installed" \
    test -f "$prefix/include/gpu_affinity.h" -a -x "$prefix/bin/gpuaff"

# README's C example, exactly as written there, built with pkg-config.
awk '/^### C and C\+\+/{c=1} c && /^```c$/{p=1; next} p && /^```$/{exit} p' README.md >"$work/bind.c"
export PKG_CONFIG_PATH=$lib/pkgconfig
check "pkg-config --modversion gpuaff = $version" test "$(pkg-config --modversion gpuaff)" = "$version"
# shellcheck disable=SC2046
check "README's C example builds: cc bind.c \$(pkg-config --cflags --libs gpuaff)" \
    cc "$work/bind.c" $(pkg-config --cflags --libs gpuaff) -o "$work/bind"
readelf -d "$work/bind" | grep NEEDED | grep -q 'libgpuaff.so.0' && ok "bind needs libgpuaff.so.0" ||
    bad "bind needs libgpuaff.so.0"
run_bind() {
    env -u LD_PRELOAD LD_LIBRARY_PATH="$(pkg-config --variable=libdir gpuaff)" GPU_AFFINITY_FSROOT="$fx" \
        LOCAL_RANK="$1" GPU_AFFINITY_VERBOSE=1 "$work/bind"
}
for rank in 0 1; do
    out=$(run_bind "$rank" 2>&1)
    echo "$out" | sed 's/^/    /'
    if grep -qx "bound to 1 CPUs" <<<"$out" && grep -q "rank $rank -> GPU $rank .*CPUs $rank," <<<"$out"; then
        ok "README example binds rank $rank to CPU $rank"
    else
        bad "README example binds rank $rank to CPU $rank"
    fi
done

# examples/pipeline with CMake's find_package(gpuaff).
check "cmake configure examples/pipeline (find_package(gpuaff 0.1))" \
    cmake -S examples/pipeline -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix"
check "cmake --build examples/pipeline" cmake --build "$work/build"
for rank in 0 1; do
    out=$(env -u LD_PRELOAD GPU_AFFINITY_FSROOT="$fx" LOCAL_RANK=$rank "$work/build/pipeline" 2>&1)
    rc=$?
    echo "$out" | sed 's/^/    /'
    stages=$(grep -c "^stage .* cpus: $rank\$" <<<"$out")
    if [ "$rc" -eq 0 ] && grep -qx "bound 1 cpus: $rank" <<<"$out" && [ "$stages" -eq 5 ]; then
        ok "pipeline (CMake) binds rank $rank before its 5 stages start: all on CPU $rank"
    else
        bad "pipeline (CMake) binds rank $rank before its 5 stages start (status $rc, $stages stages on $rank)"
    fi
done
mkdir -p "$work/v1"
printf 'cmake_minimum_required(VERSION 3.13)\nproject(v NONE)\nfind_package(gpuaff 1.0 REQUIRED)\n' >"$work/v1/CMakeLists.txt"
if cmake -S "$work/v1" -B "$work/v1/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
    bad "find_package(gpuaff 1.0) is refused (another major version)"
else
    ok "find_package(gpuaff 1.0) is refused (another major version)"
fi

# The installed command finds the library in bin/../lib (and ../lib64 with --libdir lib64).
check "bin/gpuaff lib = lib/libgpuaff.so.$version" \
    test "$("$prefix/bin/gpuaff" lib)" = "$(cd "$lib" && pwd -P)/libgpuaff.so.$version"
py=$(command -v python3)
out=$(env -u LD_PRELOAD LOCAL_RANK=1 "$prefix/bin/gpuaff" run --fsroot "$fx" -- "$py" -c \
    'import os; print(sorted(os.sched_getaffinity(0)))' 2>&1)
[ "$out" = "[1]" ] && ok "installed gpuaff run preloads lib/ and binds rank 1" ||
    bad "installed gpuaff run preloads lib/ and binds rank 1 (got: $out)"
check "install.sh --libdir lib64" scripts/install.sh --prefix "$work/p64" --libdir lib64 --no-build --arch "$arch"
check "bin/gpuaff lib finds lib64/" test "$("$work/p64/bin/gpuaff" lib)" = "$(cd "$work/p64/lib64" && pwd -P)/libgpuaff.so.$version"
rm -f "$work/p64/lib64/libgpuaff.so.$version"
out=$("$work/p64/bin/gpuaff" lib 2>&1)
[ $? -ne 0 ] && grep -q "^gpuaff: libgpuaff.so not found" <<<"$out" && ok "no library: one clear line" ||
    bad "no library: one clear line (got: $out)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
