#!/bin/sh
# Installs PMDK's libpmem (the baseline of the Persistence benchmarks and of dpmem bench --compare
# libpmem), libpmemlog (the baseline of the Storage log benchmark and of dpmem bench --compare
# libpmemlog) and libpmemobj (the baseline of the Transactions benchmark) when they are missing.
# Usage: sudo bench/setup-pmdk.sh   (Debian/Ubuntu; needs apt-get)
set -eu
missing=""
ldconfig -p 2>/dev/null | grep -q 'libpmem\.so\.1 ' || missing="$missing libpmem1"
ldconfig -p 2>/dev/null | grep -q 'libpmemlog\.so\.1 ' || missing="$missing libpmemlog1"
ldconfig -p 2>/dev/null | grep -q 'libpmemobj\.so\.1 ' || missing="$missing libpmemobj1"
if [ -z "$missing" ]; then
    echo "libpmem.so.1, libpmemlog.so.1 and libpmemobj.so.1 are already installed."
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing:$missing; apt-get is not available: install PMDK's$missing with your package manager." >&2
    exit 1
fi
apt-get update
# shellcheck disable=SC2086
apt-get install -y $missing
ldconfig -p | grep -E 'libpmem(log|obj)?\.so\.1 '
