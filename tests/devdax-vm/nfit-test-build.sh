#!/usr/bin/env bash
# Builds the kernel's own NVDIMM test modules (nfit_test, tools/testing/nvdimm in the kernel tree) for the
# devdax-vm guest's kernel, and packs them with init-nfit into an initramfs overlay that run.sh --nfit-test
# appends to the cached guest's initramfs. nfit_test emulates an NFIT bus that answers ARS, error injection
# (`ndctl inject-error`) and the clear-uncorrectable-error DSM, which qemu's emulated NVDIMM does not: on it a
# region's badblocks is real and the fsdax recovery write can clear poison.
#
# Usage: tests/devdax-vm/nfit-test-build.sh KERNEL-VERSION   (e.g. 6.1.0-57-amd64, the guest's)
# Prints the path of the overlay (work/nfit-test/overlay.cpio.gz) on its last line. Cached: it rebuilds only
# when this script, init-nfit or the kernel version change. Needs root for apt-get (headers) and network to a
# Debian mirror. Exit codes: 3 a package could not be installed or downloaded; 4 the modules could not be built.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kver="${1:?usage: $0 KERNEL-VERSION}"
cache="$here/work/nfit-test"
log() { echo "nfit-test-build: $*" >&2; }
die() { local code="$1"; shift; echo "nfit-test-build: ERROR: $*" >&2; exit "$code"; }

stamp=$( (cat "$0" "$here/init-nfit"; echo "$kver") | sha256sum | cut -c1-16)
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$stamp" ] && [ -f "$cache/overlay.cpio.gz" ]; then
  log "cached: $(cat "$cache/info")"
  echo "$cache/overlay.cpio.gz"
  exit 0
fi
mkdir -p "$cache"
rm -f "$cache/stamp"
t0=$(date +%s)

# 1. The headers of exactly the guest's kernel (they carry its .config and Module.symvers, so the modules get
#    its vermagic and modversions CRCs). Installing them pulls linux-kbuild and the compiler package.
#    make too, where a fresh machine lacks it (the kernel's build needs it; gcc comes with the compiler package).
headers="/usr/src/linux-headers-$kver"
if [ ! -f "$headers/Module.symvers" ] || ! command -v make >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die 3 "linux-headers-$kver or make is not installed; run as root or: sudo apt-get install linux-headers-$kver make"
  log "apt-get install linux-headers-$kver make"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "linux-headers-$kver" make >"$cache/apt.log" 2>&1; then
    apt-get update -q >>"$cache/apt.log" 2>&1 || true
    apt-get install -y -q --no-install-recommends "linux-headers-$kver" make >>"$cache/apt.log" 2>&1 \
      || die 3 "apt-get could not install linux-headers-$kver make (log: $cache/apt.log)"
  fi
  log "installed: $(sed -n 's/^Setting up \([^ ]*\) (\([^)]*\)).*/\1 \2/p' "$cache/apt.log" | tr '\n' ',')"
fi
[ -f "$headers/Module.symvers" ] || die 3 "no $headers/Module.symvers"
command -v make >/dev/null 2>&1 || die 3 "make is not installed"

# 2. The source of the same Debian version (linux-source-X.Y), only the parts the test Kbuild compiles.
hver=$(dpkg-query -W -f '${Version}' "linux-headers-$kver")
series=$(echo "$kver" | cut -d. -f1-2)
src="$cache/linux-source-$series"
if [ ! -f "$src/.extracted-$hver" ]; then
  dl="$cache/dl"
  mkdir -p "$dl"
  chmod 0777 "$dl"
  deb=$(ls "$dl"/linux-source-"$series"_"$hver"_all.deb 2>/dev/null || true)
  if [ -z "$deb" ]; then
    log "apt-get download linux-source-$series=$hver"
    (cd "$dl" && apt-get download "linux-source-$series=$hver" >/dev/null 2>&1) \
      || die 3 "apt-get download linux-source-$series=$hver failed"
    deb=$(ls "$dl"/linux-source-"$series"_"$hver"_all.deb)
  fi
  rm -rf "$src"
  log "extracting tools/testing/nvdimm, drivers/{nvdimm,acpi/nfit,dax} from $(basename "$deb")"
  dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/linux-source-$series.tar.xz" \
    | tar -xJ -C "$cache" "linux-source-$series/tools/testing/nvdimm" "linux-source-$series/drivers/nvdimm" \
        "linux-source-$series/drivers/acpi/nfit" "linux-source-$series/drivers/dax" \
    || die 3 "could not extract the sources from $deb"
  touch "$src/.extracted-$hver"
  rm -rf "$dl"
fi

# The test modules need every NVDIMM/DAX driver as a module (tools/testing/nvdimm/config_check.c).
for sym in LIBNVDIMM BLK_DEV_PMEM ND_BTT ND_PFN ACPI_NFIT DEV_DAX DEV_DAX_PMEM; do
  grep -q "^CONFIG_$sym=m$" "$headers/.config" || die 4 "CONFIG_$sym is not =m in $headers/.config: nfit_test cannot be built"
done

# Two changes to the test harness's own stand-in for the pmem driver's __pmem_direct_access (pmem-dax.c, which
# replaces the driver's __weak one in the test build); the drivers themselves are built unchanged:
#  - on a listed bad page it answered -EIO in every mode, where the driver answers DAX_RECOVERY_WRITE with the one
#    page to recover: without this the kernel's fsdax recovery write can never reach pmem_recovery_write on nfit_test;
#  - it gave the vmalloc page's pfn with no flags, and a user fault inserting it on an fsdax mapping hits
#    BUG_ON(!vm_mixed_ok) in __vm_insert_mixed (mm/memory.c) and kills the guest: give it PFN_DEV|PFN_MAP as the
#    driver's own pfns have, so it is mapped as a devmap pte (with PFN_SPECIAL the kernel logs "Bad page map").
# Both edits are idempotent (a patched line no longer matches); the check after them is what counts.
pd="$src/tools/testing/nvdimm/pmem-dax.c"
sed -i 's/PFN_PHYS(nr_pages))))$/PFN_PHYS(nr_pages))) \&\& mode != DAX_RECOVERY_WRITE)/' "$pd"
sed -i 's/\*pfn = page_to_pfn_t(page);/*pfn = __pfn_to_pfn_t(page_to_pfn(page), PFN_DEV | PFN_MAP);/' "$pd"
grep -q 'mode != DAX_RECOVERY_WRITE' "$pd" && grep -q 'PFN_DEV | PFN_MAP' "$pd" \
  || die 4 "could not patch $pd (the kernel's test harness changed): see the comment in $0"

# 3. Build: the test Kbuild rebuilds libnvdimm, nfit, nd_pmem, nd_btt, nd_e820, dax_pmem and device_dax with
#    --wrap around ioremap/memremap/request_region/acpi_evaluate_dsm, plus nfit_test and nfit_test_iomap.
#    With the split Debian headers $(srctree) is the headers tree, so the driver directories come by KCFLAGS.
#    Kbuild cannot take a path with a space (M= splits into "multiple external modules", KCFLAGS into words):
#    a checkout under "~/src/my projects/" builds in a copy under /var/tmp and takes the modules from there.
build="$src"
case "$src" in
  *" "*)
    build=$(mktemp -d /var/tmp/directpmem-nfit.XXXXXX) || die 3 "mktemp failed"
    trap 'rm -rf "$build"' EXIT
    cp -a "$src/." "$build/"
    ;;
esac
log "building tools/testing/nvdimm against $headers (in $build)"
nvd="$build/tools/testing/nvdimm"
if ! make -C "$headers" M="$nvd" KCFLAGS="-I$build/drivers/nvdimm -I$build/drivers/acpi/nfit" \
    -j"$(nproc)" modules >"$cache/build.log" 2>&1; then
  tail -n 30 "$cache/build.log" >&2
  die 4 "make failed (log: $cache/build.log)"
fi

# 4. The overlay: the modules under /lib/modules/KVER/nfit_test (init-nfit insmods them by path, in dependency
#    order; the stock modules stay where they are and are never loaded) and init-nfit as /init. The kernel
#    unpacks concatenated archives in order, so this /init replaces the guest's.
root="$cache/overlay"
rm -rf "$root"
mkdir -p "$root/lib/modules/$kver/nfit_test"
find "$nvd" -name '*.ko' -exec cp {} "$root/lib/modules/$kver/nfit_test/" \;
cp "$here/init-nfit" "$root/init"
chmod 0755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -6) > "$cache/overlay.cpio.gz"
n=$(ls "$root/lib/modules/$kver/nfit_test" | wc -l)
rm -rf "$root"
echo "nfit_test for $kver from linux-source-$series $hver: $n modules, built in $(( $(date +%s) - t0 ))s" > "$cache/info"
echo "$stamp" > "$cache/stamp"
log "$(cat "$cache/info")"
echo "$cache/overlay.cpio.gz"
