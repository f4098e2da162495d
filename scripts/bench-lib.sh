# Sourced by scripts/bench-{startup,threads,syscalls,memory}.sh: the setup they share.
#
# bench_setup NAME "APT PACKAGES" TOOL...: checks that every TOOL is on PATH (else says which apt
# packages to install and exits 2), builds the release library and fixture command, and sets
#   target   the cargo target dir          lib      the release libgpuaff.so (absolute)
#   fixture  the gpuaff-fixture command    work     a scratch dir on tmpfs, removed on exit
bench_setup() {
    local name=$1 apt=$2
    shift 2
    local missing=() tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bench-$name: missing ${missing[*]}; install with: apt-get install -y $apt" >&2
        exit 2
    fi
    target=${CARGO_TARGET_DIR:-target}
    cargo build --release --quiet -p gpuaff -p gpuaff-fixtures
    lib=$(realpath "$target/release/libgpuaff.so")
    fixture="$target/release/gpuaff-fixture"
    # tmpfs: fixture trees are thousands of small files.
    local base=${TMPDIR:-/dev/shm}
    [ -w "$base" ] || base=/tmp
    work=$(mktemp -d "$base/gpuaff-bench-$name.XXXXXX")
    trap 'rm -rf "$work"' EXIT
}
