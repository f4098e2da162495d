#!/usr/bin/env bash
# Python suite: builds this machine's wheel (scripts/build-wheel.sh, which builds the glibc-2.28
# release library and command), installs it into a fresh venv with pytest, and runs tests/python
# against the installed package (never the source tree). Last line: "N passed, N failed, N skipped".
# Exit 77 (skipped, with the reason) when the wheel's build tools or pytest cannot be installed.
set -uo pipefail
cd "$(dirname "$0")/../.."

arch=$(uname -m)
case $arch in
    x86_64 | aarch64) ;;
    *) echo "python suite: no wheel for $arch"; exit 77 ;;
esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! GPUAFF_DIST=$work/dist scripts/build-wheel.sh "$arch" >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    if grep -qE "Could not find a version|No matching distribution|Failed to establish|Temporary failure" "$work/build.log"; then
        echo "python suite: the wheel's build tools could not be installed (no PyPI?)"
        exit 77
    fi
    echo "0 passed, 1 failed"
    exit 1
fi
grep -E "^build-(wheel|release):|platform tag" "$work/build.log"
wheel=$(ls "$work"/dist/gpuaff-*_"$arch".whl)

if ! cargo build --quiet -p gpuaff-fixtures --bin gpuaff-fixture; then
    echo "0 passed, 1 failed"
    exit 1
fi
fixture_bin=${CARGO_TARGET_DIR:-$PWD/target}/debug/gpuaff-fixture

python3 -m venv "$work/venv" || { echo "python suite: python3 -m venv is not available"; exit 77; }
if ! "$work/venv/bin/pip" install --quiet --disable-pip-version-check pytest >"$work/pip.log" 2>&1; then
    cat "$work/pip.log"
    echo "python suite: pytest could not be installed (no PyPI?)"
    exit 77
fi
if ! "$work/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"; then
    echo "0 passed, 1 failed"
    exit 1
fi

# From a directory outside the repository, with the venv's bin (the gpuaff console script) on PATH.
(cd "$work" && PATH=$work/venv/bin:$PATH GPUAFF_FIXTURE_BIN=$fixture_bin \
    "$work/venv/bin/python" -m pytest -q -p no:cacheprovider -rs "$OLDPWD/tests/python") | tee "$work/pytest.log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^=*.* in [0-9.]+s' "$work/pytest.log" | tail -1)
count() { grep -oE "[0-9]+ $1" <<<"$summary" | grep -oE '[0-9]+' || echo 0; }
passed=$(count passed)
failed=$(($(count failed) + $(count error)))
skipped=$(count skipped)
if [ "$rc" -eq 5 ] || [ "$passed" -eq 0 ]; then
    echo "python suite: pytest collected no tests (status $rc)"
    echo "$passed passed, $((failed + 1)) failed, $skipped skipped"
    exit 1
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ]
