#!/usr/bin/env bash
# Lets this machine run aarch64 programs directly (./prog, and every program they start) through
# qemu-user: registers Debian's qemu-aarch64 binfmt entry (from qemu-user-static) with the kernel.
# What Debian's binfmt-support does at install time, for machines and containers where it did not
# (binfmt_misc not mounted). Idempotent; needs root. The aarch64 suite uses it.
set -euo pipefail
dir=/proc/sys/fs/binfmt_misc
[ -e "$dir/qemu-aarch64" ] && exit 0
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
if [ ! -f "$conf" ]; then
    echo "qemu-binfmt: $conf missing (install qemu-user-static)" >&2
    exit 1
fi
[ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir"
cat "$conf" >"$dir/register"
[ -e "$dir/qemu-aarch64" ]
