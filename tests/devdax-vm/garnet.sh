#!/usr/bin/env bash
# The real-kernel tier for Garnet on DirectPmem: the same qemu guest as run.sh (its own kernel's
# device-DAX driver, /dev/dax0.0 with 2 MiB align), booted twice on one NVDIMM file, running
# tests/DirectPmem.Garnet.Tests' DevDaxGarnetTests instead of the integration tests:
#   boot 1: Garnet on /dev/dax0.0 writes, checkpoints (SAVE) and writes more with AOF commit per op;
#   boot 2: Garnet recovers everything from /dev/dax0.0.
# It runs a copy of run.sh with the test project and the second-boot filter substituted, so the
# guest, its cache in tests/devdax-vm/work and the verdict line are run.sh's.
#
# Usage: tests/devdax-vm/garnet.sh [--no-build] [--timeout SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
copy="$here/.garnet-run.sh"
trap 'rm -f "$copy"' EXIT
sed -e 's|tests/DirectPmem.IntegrationTests"|tests/DirectPmem.Garnet.Tests"|' \
    -e 's|DirectPmem.IntegrationTests/release/DirectPmem.IntegrationTests.dll|DirectPmem.Garnet.Tests/release/DirectPmem.Garnet.Tests.dll|' \
    -e "s|^second_boot=.*|second_boot=\"'DirectPmem.Garnet.Tests.DevDaxGarnetTests.Second_boot_*'\"|" \
    "$here/run.sh" > "$copy"
grep -q 'DirectPmem.Garnet.Tests.dll' "$copy" && grep -q 'DevDaxGarnetTests.Second_boot_' "$copy" \
  || { echo "devdax-vm: ERROR: run.sh changed shape; update garnet.sh" >&2; exit 2; }
bash "$copy" "$@" -- -class DirectPmem.Garnet.Tests.DevDaxGarnetTests
