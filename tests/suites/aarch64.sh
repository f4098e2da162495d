#!/usr/bin/env bash
# aarch64 suite (Grace: GH200, GB200): builds the library, the command and the integration tests for
# aarch64-unknown-linux-gnu against glibc 2.28 (cargo-zigbuild), and runs the library's own unit tests
# (system calls, thread listing) and the preload, C ABI, loading, command, bad-input, Grace and unwinder
# tests under qemu-user: the kernel's binfmt_misc hands every aarch64
# program (the test binaries, the C test programs compiled by zig cc, the gpuaff command) to
# qemu-aarch64-static, with Debian's aarch64 C library (libc6-arm64-cross, libgcc-s1-arm64-cross) as
# its root. Tests that qemu-user cannot host are skipped by name, each for the reason given in `skips`
# below; the rest (preload, C ABI, loading rules, Grace, command, bad inputs, guard) run unchanged.
# Then reports objdump -T's highest GLIBC_ version of the aarch64 release library and command, when
# built. Last line: "N passed, N failed, N skipped". Exit 77 with the reason when qemu-user, the
# binfmt entry, the aarch64 C library or the build tools are missing.
set -uo pipefail
cd "$(dirname "$0")/../.."

target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
skip() { echo "aarch64 suite: $1"; exit 77; }

[ "$(uname -m)" != aarch64 ] || skip "this machine is aarch64: the rust suite already covers it"
[ -x /usr/bin/qemu-aarch64-static ] || skip "qemu-aarch64-static not found (apt-get install qemu-user-static)"
[ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || skip "$sysroot missing (apt-get install libc6-arm64-cross)"
[ -e "$sysroot/lib/libgcc_s.so.1" ] || skip "$sysroot/lib/libgcc_s.so.1 missing (apt-get install libgcc-s1-arm64-cross)"
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    [ "$(id -u)" -eq 0 ] && scripts/qemu-binfmt.sh >/dev/null 2>&1 ||
        skip "no binfmt_misc entry for aarch64 (run scripts/qemu-binfmt.sh as root)"
fi
# shellcheck source=scripts/tools.sh
. scripts/tools.sh
ensure_release_tools >/dev/null || skip "zig and cargo-zigbuild could not be installed (no PyPI?)"
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target" >/dev/null 2>&1 ||
    skip "the Rust target $target could not be installed"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The C compiler for the test programs: zig's, for aarch64 with glibc 2.28 stubs.
cat >"$work/cc-aarch64" <<'CC'
#!/bin/sh
if command -v zig >/dev/null 2>&1; then exec zig cc -target aarch64-linux-gnu.2.28 "$@"; fi
exec python3 -m ziglang cc -target aarch64-linux-gnu.2.28 "$@"
CC
chmod +x "$work/cc-aarch64"
export GPUAFF_TEST_CC=$work/cc-aarch64 QEMU_LD_PREFIX=$sysroot

# Tests qemu-user cannot host, and why. Beyond these, qemu-user now and then deadlocks on its own
# (a spawned child hung once in CI, in bad_inputs_in_strict_mode_exit_66, and not in 89 runs here):
# under qemu-user the tests' Proc::run kills a run that hangs for 60 s and runs it once more, saying
# so and where it hung; a hang of ours repeats and still fails (tests/common/mod.rs, qemu_user).
skips=(
    # The host's x86_64 python3 or sh cannot load the aarch64 library.
    python run_preloads_the_library_and_binds_the_command no_gpu_is_enodev_with_a_clear_message
    amd_gpus_bind_in_rocm_order
    # The OpenMP tests build with the host's OpenMP runtimes (libgomp, libomp) or run the host's sh.
    openmp_threads_end_inside_the_binding omp_sets_unset_thread_counts
    # qemu-user adds its own thread to /proc/self/task, so exact thread counts differ.
    threads_from_an_earlier_constructor_are_bound children_get_their_own_rank_binding
    # qemu 7.2 does not emulate set_mempolicy (ENOSYS, where the tests expect the kernel's EINVAL or
    # success).
    a_refused_memory_policy default_memory_policy_can_be_restored
    # fork of a process with threads being created deadlocks inside qemu-user itself; so does a fork
    # while another thread is inside a call (2 of 12 runs of the build before and after this was
    # added alike, the child stuck on a futex in qemu, deaf to its alarm). The native suite runs both.
    fork_while_threads_are_created_does_not_deadlock fork_during_a_call_never_hangs_the_child
    # 1,000 short threads: qemu lists exited threads in /proc/self/task for a while.
    concurrent_calls_during_a_thread_storm
)
skip_args=()
for s in "${skips[@]}"; do skip_args+=(--skip "$s"); done

# The cdylib first (cargo test does not build it), then the tests.
tests=(preload explicit loading grace cli bad_inputs guard unwind)
test_args=(--lib)
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
start=$(date +%s)
if ! cargo zigbuild --quiet --target "$target.2.28" -p gpuaff; then
    echo "0 passed, 1 failed"
    exit 1
fi
built=$(date +%s)
echo "aarch64 suite: library and command built in $((built - start)) s"
file "target/$target/debug/libgpuaff.so" 2>/dev/null | sed 's/^/    /'
cargo-zigbuild test --no-fail-fast --target "$target.2.28" -p gpuaff "${test_args[@]}" -- \
    "${skip_args[@]}" 2>&1 | tee "$work/log"
rc=${PIPESTATUS[0]}
echo "aarch64 suite: tests built and run in $(($(date +%s) - built)) s"

passed=0
failed=0
skipped=0
while IFS= read -r line; do
    n() { grep -oE "[0-9]+ $1" <<<"$line" | grep -oE '[0-9]+' || echo 0; }
    passed=$((passed + $(n passed)))
    failed=$((failed + $(n failed)))
    skipped=$((skipped + $(n filtered)))
done < <(grep -E '^test result:' "$work/log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
    echo "aarch64 suite: no test ran"
    failed=1
fi

for f in "target/$target/release/libgpuaff.so" "target/$target/release/gpuaff"; do
    [ -f "$f" ] || { echo "aarch64 suite: $f not built (scripts/build-release.sh aarch64): floor not checked"; continue; }
    floor=$(objdump -T "$f" | grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -1)
    echo "aarch64 suite: objdump -T $f: highest $floor"
    if [ "$(printf '%s\n%s\n' "${floor#GLIBC_}" 2.28 | sort -V | tail -1)" = 2.28 ]; then
        passed=$((passed + 1))
    else
        echo "aarch64 suite: $f needs $floor, above GLIBC_2.28"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
