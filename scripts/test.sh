#!/usr/bin/env bash
# Runs every test suite and ends with one total line over all of them:
#   - rust: unit tests of the core, the fixture generator, the hwloc-snapshot conformance suite (which
#     skips, saying so, without ../shared), and the integration tests that preload the real libgpuaff.so
#     into C programs and python3 (they need the cdylib and the CLI built first);
#   - every executable tests/suites/*.sh (Python, shell and other suites). A suite script prints, as
#     its last line, "N passed, N failed" (", N skipped" may follow) and exits non-zero when something
#     failed; it exits 77 to say it was skipped, with the reason as its last line.
# Arguments are passed to `cargo test` (e.g. a test-name filter); SUITES="rust python" runs only those.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
skipped=0
notes=()
broken=()

want() { [ -z "${SUITES:-}" ] || [[ " $SUITES " == *" $1 "* ]]; }

# Adds the counts of one "N passed, N failed, N skipped"-style line (missing parts count 0).
add_counts() {
    local line=$1 n
    n=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' | head -1)
    passed=$((passed + ${n:-0}))
    n=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' | head -1)
    failed=$((failed + ${n:-0}))
    n=$(grep -oE '[0-9]+ (skipped|ignored)' <<<"$line" | grep -oE '[0-9]+' | head -1)
    skipped=$((skipped + ${n:-0}))
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

if want rust; then
    echo "== suite rust: cargo test --workspace"
    if cargo build --workspace --quiet; then
        cargo test --workspace "$@" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        while IFS= read -r line; do
            add_counts "$line"
        done < <(grep -E '^test result:' "$log")
        if [ "$rc" -ne 0 ] && ! grep -qE '^test result: .* [1-9][0-9]* failed' "$log"; then
            # A crate that did not compile, or a test binary that died, counts as a failure.
            failed=$((failed + 1))
            broken+=("rust (cargo test exited $rc)")
        fi
    else
        failed=$((failed + 1))
        broken+=("rust (build failed)")
    fi
fi

for suite in tests/suites/*.sh; do
    [ -e "$suite" ] || continue
    name=$(basename "$suite" .sh)
    want "$name" || continue
    echo "== suite $name: $suite"
    bash "$suite" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    last=$(grep -v '^[[:space:]]*$' "$log" | tail -n 1)
    if [ "$rc" -eq 77 ]; then
        notes+=("$name skipped: $last")
        continue
    fi
    if grep -qE '[0-9]+ passed' <<<"$last"; then
        add_counts "$last"
        if [ "$rc" -ne 0 ] && ! grep -qE '[1-9][0-9]* failed' <<<"$last"; then
            failed=$((failed + 1))
            broken+=("$name (exited $rc)")
        fi
    else
        failed=$((failed + 1))
        broken+=("$name (exited $rc without a count)")
    fi
done

# The conformance test inside the rust suite passes vacuously without the hwloc snapshots: say so.
if want rust && [ ! -d ../shared/fixtures/hwloc ]; then
    notes+=("conformance skipped: ../shared/fixtures/hwloc not found (snapshots_agree_with_hwloc checked nothing)")
fi

echo
echo "== summary"
for n in "${notes[@]+"${notes[@]}"}"; do echo "suite $n"; done
for b in "${broken[@]+"${broken[@]}"}"; do echo "suite broken: $b"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
