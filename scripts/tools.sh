# Sourced by the release scripts: makes zig, cargo-zigbuild and auditwheel available, and sets
# $TOOLS_PYTHON (a python3 with pip, for packing wheels). Tools already on PATH are used as they are;
# missing ones are installed from PyPI (prebuilt wheels) into a venv under target/release-tools, so
# nothing is installed into the system Python (Debian's is externally managed).
zigbuild_version=0.24.1
ziglang_version=0.17.1
tools_venv=${GPUAFF_TOOLS_VENV:-${CARGO_TARGET_DIR:-$PWD/target}/release-tools}
[ -x "$tools_venv/bin/python" ] && export PATH="$tools_venv/bin:$PATH"

have_zig() { command -v zig >/dev/null 2>&1 || python3 -m ziglang version >/dev/null 2>&1; }
tools_pip() {
    if [ ! -x "$tools_venv/bin/python" ]; then
        echo "tools: creating $tools_venv"
        python3 -m venv "$tools_venv" || return 1
        export PATH="$tools_venv/bin:$PATH"
    fi
    "$tools_venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}
ensure_release_tools() {
    if ! have_zig; then
        echo "tools: installing zig (pip ziglang==$ziglang_version)"
        tools_pip "ziglang==$ziglang_version" || return 1
    fi
    if ! command -v cargo-zigbuild >/dev/null 2>&1; then
        echo "tools: installing cargo-zigbuild $zigbuild_version (pip)"
        tools_pip "cargo-zigbuild==$zigbuild_version" || return 1
    fi
}
ensure_wheel_tools() {
    if python3 -m pip --version >/dev/null 2>&1 && python3 -c 'import auditwheel' 2>/dev/null; then
        TOOLS_PYTHON=python3
        return 0
    fi
    if ! "$tools_venv/bin/python" -c 'import auditwheel' 2>/dev/null; then
        echo "tools: installing auditwheel (pip)"
        tools_pip auditwheel || return 1
    fi
    TOOLS_PYTHON=$tools_venv/bin/python
}
