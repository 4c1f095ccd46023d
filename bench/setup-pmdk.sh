#!/bin/sh
# Installs PMDK's libpmem (the baseline of the Persistence benchmarks) when it is missing.
# Usage: sudo bench/setup-pmdk.sh   (Debian/Ubuntu; needs apt-get)
set -eu
if ldconfig -p 2>/dev/null | grep -q 'libpmem\.so\.1 '; then
    echo "libpmem.so.1 is already installed."
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "libpmem.so.1 is missing and apt-get is not available: install PMDK's libpmem1 with your package manager." >&2
    exit 1
fi
apt-get update
apt-get install -y libpmem1
ldconfig -p | grep 'libpmem\.so\.1 '
