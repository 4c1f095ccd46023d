#!/usr/bin/env bash
# The real-kernel integration tier: boots a qemu guest (software emulation, no KVM needed) whose
# kernel drives an emulated NVDIMM with its own nfit/libnvdimm/device_dax drivers, creates a
# devdax namespace (/dev/dax0.0, 2 MiB align), an fsdax namespace mounted -o dax and a sector
# namespace with plain ext4, and runs tests/DirectPmem.IntegrationTests inside the guest against
# them. The guest boots twice on the same NVDIMM file: data persisted in the first boot is read
# back in the second. See tests/devdax-vm/README.md.
#
# Usage: tests/devdax-vm/run.sh [--core|--tiers|--cxl|--nfit-test] [--no-build] [--timeout SECONDS] [-- TEST-ARGS...]
#   --core             instead, run the core tests (tests/DirectPmem.Tests) once, in the layout of a machine
#                      with no disk file system: the artifacts folder on a writable 9p share (refuses shared
#                      writable mappings), /tmp tmpfs, /var/tmp ext4 -o dax, HOME on the initramfs. They must
#                      pass or skip with reasons. DIRECTPMEM_TEST_TIME_SCALE (default 4 here) scales their limits.
#   --tiers            instead, boot once as a two-node NUMA machine with HMAT (-machine hmat=on: CPUs and 1.5 GiB on
#                      node 0, a memory-only node 1 of 512 MiB, HMAT latency/bandwidth for both, the NVDIMM on node 1),
#                      print `dpmem list --tiers` and run the integration tests' TierTests (discovery, placement, mode changes);
#                      with DIRECTPMEM_VM_TIERS_BENCH=1 also `dpmem bench --tiers` (not in CI: a measurement, not a test)
#   --cxl              instead, boot once as a q35 machine with CXL (cxl=on: one host bridge, one root port, one persistent
#                      type-3 device of 256 MiB with a label area, a 4 GiB fixed memory window), create a pmem region on it with
#                      `cxl create-region` and a devdax namespace on that region with `ndctl create-namespace`, print
#                      `dpmem list --tiers` and run the integration tests' CxlTests (discovery as CXL, persistent; a mapping)
#   --nfit-test        instead, boot once WITHOUT qemu's NVDIMM, with the kernel's own NVDIMM test modules (nfit_test,
#                      built for the guest's kernel by nfit-test-build.sh from Debian's linux-source and linux-headers,
#                      cached): an emulated NFIT bus with ARS, error injection and clear-error. Runs NfitTestTests
#                      (real region badblocks, the fsdax recovery write). If the modules cannot be built (no apt, no
#                      network to a Debian mirror) it skips with the reason and exits 0.
#   --no-build         use the tests as already built (Release)
#   --timeout SECONDS  bound on each guest boot (default 900)
#   TEST-ARGS          extra arguments for the xunit test executable in the first boot, e.g.
#                      -class DirectPmem.IntegrationTests.DeviceDaxTests (no spaces inside an argument)
# Exit codes: 0 all passed; 1 a test failed or the guest reported a failure;
#   2 bad usage or another run in the same work folder; 3 a prerequisite could not be installed; 4 the guest or the tests could not be
#   built; 5 the guest did not finish (timeout or crash).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work="$here/work"
share="$work/share"
timeout_s=900
build=1
mode=integration
extra_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --core) mode=core ;;
    --tiers) mode=tiers ;;
    --cxl) mode=cxl ;;
    --nfit-test) mode=nfit ;;
    --no-build) build=0 ;;
    --timeout) timeout_s="$2"; shift ;;
    --) shift; extra_args=("$@"); break ;;
    *) echo "usage: $0 [--core|--tiers|--cxl|--nfit-test] [--no-build] [--timeout SECONDS] [-- TEST-ARGS...]" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "devdax-vm: $*"; }
die() { local code="$1"; shift; echo "devdax-vm: ERROR: $*" >&2; exit "$code"; }
start=$(date +%s)

mkdir -p "$work"

# ---------------------------------------------------------------- 1. host prerequisites
# command -> Debian package
declare -A need=([qemu-system-x86_64]=qemu-system-x86 [ndctl]=ndctl [daxctl]=daxctl [mkfs.ext4]=e2fsprogs
  [cxl]=ndctl [cpio]=cpio [gzip]=gzip [dpkg-deb]=dpkg [timeout]=coreutils)
missing=()
for cmd in "${!need[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt-get"
  if [ "$(id -u)" -ne 0 ]; then
    die 3 "missing ${missing[*]}; run as root or: sudo apt-get install --no-install-recommends ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$work/apt.log" 2>&1; then
    apt-get update -q >>"$work/apt.log" 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$work/apt.log" 2>&1 \
      || die 3 "apt-get could not install ${missing[*]} (log: $work/apt.log)"
  fi
  rm -f "$work/apt.log"
  for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || die 3 "$cmd is still missing after installing ${need[$cmd]}"
  done
fi
command -v dotnet >/dev/null 2>&1 || die 3 "the .NET SDK (dotnet) is not on PATH; it is shared with the guest"
dotnet_path=$(readlink -f "$(command -v dotnet)")
case "$repo" in /*) ;; *) die 2 "repository path $repo is not absolute" ;; esac

# One run at a time per work folder: two would share the NVDIMM file and the guest build.
exec 9>"$work/.lock"
flock -n 9 || die 2 "another run.sh is using $work"

# ---------------------------------------------------------------- 2. the guest (cached)
modules=(virtio_pci 9pnet_virtio 9p libnvdimm nfit nd_e820 nd_pmem nd_btt dax_pmem device_dax kmem crc32c_generic ext4
  cxl_acpi cxl_pci cxl_mem cxl_pmem)
stamp=$( (cat "$here/init"; echo "${modules[*]}"; sed -n '/^build_guest()/,/^}/p' "$0") | sha256sum | cut -c1-16)
guest="$work/guest"

build_guest() {
  local dl="$work/dl" unpack="$work/unpack" root="$work/initramfs"
  rm -rf "$dl" "$unpack" "$root" "$guest"
  mkdir -p "$dl" "$unpack" "$root"
  # The kernel image package that linux-image-amd64 depends on (installed nowhere: only unpacked).
  local kpkg
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
  if [ -z "$kpkg" ]; then
    apt-get update -q >/dev/null 2>&1 || true
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
  fi
  [ -n "$kpkg" ] || die 3 "apt-cache cannot resolve linux-image-amd64 to a kernel package"
  log "downloading $kpkg and busybox-static"
  # apt-get download drops privileges to _apt when it can: let it write here.
  chmod 0777 "$dl"
  (cd "$dl" && apt-get download "$kpkg" busybox-static >/dev/null 2>&1) \
    || die 3 "apt-get download $kpkg busybox-static failed"
  local deb
  for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$unpack"; done
  local kver
  kver=$(basename "$(ls -d "$unpack"/lib/modules/*/ | head -n 1)")
  [ -f "$unpack/boot/vmlinuz-$kver" ] || die 4 "no vmlinuz-$kver in $kpkg"
  local bb="$unpack/bin/busybox"
  [ -x "$bb" ] || die 4 "no busybox in busybox-static"
  "$bb" depmod -b "$unpack" "$kver"

  # The modules and everything they depend on, from modules.dep.
  local dep="$unpack/lib/modules/$kver/modules.dep" m line f files=()
  declare -A seen=()
  resolve() {
    local name="$1" path
    path=$(grep -E "(^|/)${name//_/[_-]}\.ko:" "$dep" | head -n 1 | cut -d: -f1) || true
    if [ -z "$path" ]; then
      grep -qE "/${name//_/[_-]}\.ko$" "$unpack/lib/modules/$kver/modules.builtin" && return 0
      die 4 "module $name is neither in modules.dep nor built in"
    fi
    [ -n "${seen[$path]:-}" ] && return 0
    seen[$path]=1
    files+=("$path")
    for f in $(grep -E "^$path:" "$dep" | cut -d: -f2); do
      [ -n "${seen[$f]:-}" ] || { seen[$f]=1; files+=("$f"); }
    done
  }
  for m in "${modules[@]}"; do resolve "$m"; done

  mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,share,newroot,lib/modules/"$kver"}
  cp "$bb" "$root/bin/busybox"
  for f in "${files[@]}"; do
    mkdir -p "$root/lib/modules/$kver/$(dirname "$f")"
    cp "$unpack/lib/modules/$kver/$f" "$root/lib/modules/$kver/$f"
  done
  cp "$unpack/lib/modules/$kver"/modules.{builtin,order} "$root/lib/modules/$kver/"
  "$bb" depmod -b "$root" "$kver"
  # ndctl, daxctl and mke2fs from the host with their shared libraries: run from the initramfs,
  # they take a fraction of the time they take over 9p under emulation.
  local tool lib
  # cxl (ndctl's package) for --cxl: cxl create-region.
  for tool in ndctl daxctl mke2fs cxl; do
    tool=$(command -v "$tool")
    mkdir -p "$root/usr/bin"
    cp -L "$tool" "$root/usr/bin/"
    for lib in $(ldd "$tool" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
  mkdir -p "$root/etc"
  [ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
  cp "$here/init" "$root/init"
  chmod 0755 "$root/init"
  mkdir -p "$guest"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -6) > "$guest/initramfs.cpio.gz"
  cp "$unpack/boot/vmlinuz-$kver" "$guest/vmlinuz"
  echo "$kpkg ($kver), ${#files[@]} modules" > "$guest/info"
  echo "$stamp" > "$guest/stamp"
  rm -rf "$dl" "$unpack" "$root"
}

if [ -f "$guest/stamp" ] && [ "$(cat "$guest/stamp")" = "$stamp" ]; then
  log "guest cached: $(cat "$guest/info")"
else
  log "building the guest"
  build_guest
  log "guest built: $(cat "$guest/info"), initramfs $(du -h "$guest/initramfs.cpio.gz" | cut -f1)"
fi
initrd="$guest/initramfs.cpio.gz"
if [ "$mode" = nfit ]; then
  # The guest's initramfs with the nfit_test overlay appended (its /init replaces the guest's; the kernel
  # unpacks concatenated archives in order). A build that cannot run here is a skip with its reason, not a failure.
  kver=$(sed -n 's/^[^(]*(\([^)]*\)).*/\1/p' "$guest/info")
  set +e
  overlay=$("$here/nfit-test-build.sh" "$kver" | tail -n 1)
  nrc=${PIPESTATUS[0]}
  set -e
  if [ "$nrc" -ne 0 ]; then
    log "SKIPPED: the nfit_test modules for $kver could not be built (nfit-test-build.sh exit $nrc; log in $work/nfit-test)"
    echo "devdax-vm: 0 passed, 0 failed, 1 skipped"
    exit 0
  fi
  initrd="$work/nfit-test/initramfs.cpio.gz"
  cat "$guest/initramfs.cpio.gz" "$overlay" > "$initrd"
fi

# ---------------------------------------------------------------- 3. the tests (built on the host)
if [ "$mode" = core ]; then
  project="$repo/tests/DirectPmem.Tests"
  dll="$repo/artifacts/bin/DirectPmem.Tests/release/DirectPmem.Tests.dll"
else
  project="$repo/tests/DirectPmem.IntegrationTests"
  dll="$repo/artifacts/bin/DirectPmem.IntegrationTests/release/DirectPmem.IntegrationTests.dll"
fi
if [ "$build" -eq 1 ]; then
  log "building $project (Release)"
  dotnet build "$project" -c Release -v q -nologo >"$work/build.log" 2>&1 \
    || { tail -n 30 "$work/build.log" >&2; die 4 "dotnet build failed (log: $work/build.log)"; }
fi
[ -f "$dll" ] || die 4 "no $dll (build it, or drop --no-build)"

# ---------------------------------------------------------------- 4. boot twice on one NVDIMM file
nvdimm="$work/nvdimm.img"
rm -f "$nvdimm" "$work"/console-*.log
truncate -s 1026M "$nvdimm"   # sparse; 1026M leaves a region the kernel can align (see README)
if [ "$mode" = cxl ]; then
  rm -f "$work/cxl-pmem.img" "$work/cxl-lsa.img"
  truncate -s 256M "$work/cxl-pmem.img" "$work/cxl-lsa.img"
fi
rm -rf "$share"
mkdir -p "$share/fsdax" "$share/pagecache"
if [ "$mode" = core ]; then
  # The guest binds this writable 9p copy over the checkout's artifacts folder: the tests run from 9p.
  mkdir -p "$share/artifacts/bin/DirectPmem.Tests"
  cp -a "$(dirname "$dll")" "$share/artifacts/bin/DirectPmem.Tests/"
fi
run_id=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')

boot() {
  local phase="$1"; shift
  local console="$work/console-$phase.log" args="$*"
  # Quoted: the checkout may live under a path with spaces (~/src/my projects/).
  cat > "$share/guest.env" <<ENV
DPMEM_PHASE=$phase
DPMEM_MODE=$mode
DPMEM_TIME_SCALE='${DIRECTPMEM_TEST_TIME_SCALE:-4}'
DPMEM_RUN_ID=$run_id
DPMEM_SHARE='$share'
DPMEM_REPO='$repo'
DPMEM_TEST_DLL='$dll'
DPMEM_TOOL_DLL='$(dirname "$dll")/dpmem.dll'
DPMEM_TIERS_BENCH='${DIRECTPMEM_VM_TIERS_BENCH:-0}'
DPMEM_TEST_ARGS="-noLogo -noColor -reporter verbose -showLiveOutput -result-xml '$share/results-$phase.xml' $args"
ENV
  log "boot $phase: qemu (TCG), NVDIMM $nvdimm, bounded by ${timeout_s}s"
  local t0 rc
  t0=$(date +%s)
  set +e
  # --tiers: node 0 has the CPUs and 1.5 GiB, node 1 is memory only (512 MiB) and holds the NVDIMM; HMAT gives
  # node 1 four times node 0's latency and a third of its bandwidth, as CXL or persistent memory would have.
  local machine=pc,accel=tcg,nvdimm=on numa=() node=()
  if [ "$mode" = tiers ]; then
    machine=$machine,hmat=on
    numa=(-object memory-backend-ram,id=ram0,size=1536M -object memory-backend-ram,id=ram1,size=512M
      -numa node,nodeid=0,cpus=0-1,memdev=ram0,initiator=0 -numa node,nodeid=1,memdev=ram1,initiator=0
      -numa hmat-lb,initiator=0,target=0,hierarchy=memory,data-type=access-latency,latency=80
      -numa hmat-lb,initiator=0,target=0,hierarchy=memory,data-type=access-bandwidth,bandwidth=12G
      -numa hmat-lb,initiator=0,target=1,hierarchy=memory,data-type=access-latency,latency=320
      -numa hmat-lb,initiator=0,target=1,hierarchy=memory,data-type=access-bandwidth,bandwidth=4G)
    node=(,node=1)
  fi
  # --cxl: a q35 machine with one CXL host bridge, root port and persistent type-3 device (256 MiB, a label area
  # of its own), and a fixed memory window of 4 GiB on that bridge for `cxl create-region`; no NVDIMM. These come
  # after the 9p devices on the command line: qemu puts a PCI device with no bus on the last bus made, and the
  # CXL host bridge's bus takes only bridges ("Only PCI/PCIe bridges can be plugged into pxb-cxl").
  local pmem=(-object "memory-backend-file,id=mem1,share=on,mem-path=$nvdimm,size=1026M,align=2M"
    -device "nvdimm,id=nvdimm1,memdev=mem1,label-size=128K${node[*]}")
  if [ "$mode" = nfit ]; then
    # No NVDIMM at all: the stock nfit/libnvdimm find nothing; nfit_test's buses are the only ones.
    machine=pc,accel=tcg
    pmem=()
  fi
  if [ "$mode" = cxl ]; then
    machine=q35,accel=tcg,cxl=on
    pmem=(-object "memory-backend-file,id=cxl-mem1,share=on,mem-path=$work/cxl-pmem.img,size=256M"
      -object "memory-backend-file,id=cxl-lsa1,share=on,mem-path=$work/cxl-lsa.img,size=256M"
      -device pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1 -device cxl-rp,port=0,bus=cxl.1,id=root_port13,chassis=0,slot=2
      -device cxl-type3,bus=root_port13,memdev=cxl-mem1,lsa=cxl-lsa1,id=cxl-pmem0
      -M cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=4G)
  fi
  timeout --kill-after=10s "$timeout_s" qemu-system-x86_64 \
    -machine "$machine" -cpu max,-smap -smp 2 -m 2G,slots=2,maxmem=8G "${numa[@]}" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$share",mount_tag=share,security_model=none,multidevs=remap \
    "${pmem[@]}" \
    -kernel "$guest/vmlinuz" -initrd "$initrd" \
    -append "console=ttyS0 panic=-1 loglevel=4" \
    -display none -serial stdio -monitor none -no-reboot </dev/null 2>&1 \
    | tr -d '\r' | tee "$console"
  rc=${PIPESTATUS[0]}
  set -e
  log "boot $phase took $(( $(date +%s) - t0 ))s (qemu exit $rc)"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then die 5 "boot $phase timed out after ${timeout_s}s (console: $console)"; fi
  local result
  result=$(sed -n "s/^DPMEM-VM: \(\[[0-9.]*\] \)\{0,1\}RESULT phase=$phase rc=\([0-9]*\)$/\2/p" "$console" | tail -n 1)
  [ -n "$result" ] || die 5 "boot $phase ended without a result line (qemu exit $rc; console: $console)"
  return "$result"
}

# Boot 1 runs every test but the Second_boot_* ones (which read back what boot 1 left on the
# NVDIMM); boot 2 runs only those, of every class. xunit's -method takes a * at either end only.
second_boot="'*.Second_boot_*'"
status=0
if [ "$mode" = core ]; then
  boot 1 "${extra_args[@]}" || status=$?
elif [ "$mode" = tiers ]; then
  if [ ${#extra_args[@]} -eq 0 ]; then extra_args=(-class DirectPmem.IntegrationTests.TierTests); fi
  boot 1 "${extra_args[@]}" || status=$?
elif [ "$mode" = cxl ]; then
  if [ ${#extra_args[@]} -eq 0 ]; then extra_args=(-class DirectPmem.IntegrationTests.CxlTests); fi
  boot 1 "${extra_args[@]}" || status=$?
elif [ "$mode" = nfit ]; then
  if [ ${#extra_args[@]} -eq 0 ]; then extra_args=(-class DirectPmem.IntegrationTests.NfitTestTests); fi
  boot 1 "${extra_args[@]}" || status=$?
else
  boot 1 -method- "$second_boot" "${extra_args[@]}" || status=$?
  # Boot 2 reads back what boot 1 wrote, so it takes boot 1's class and namespace filters (xunit ANDs
  # them with -method): with `-- -class X`, only X's Second_boot_* run, whose writers ran in boot 1.
  # Method filters are not carried over: they would OR with the Second_boot_* one.
  second_args=()
  for ((i = 0; i < ${#extra_args[@]}; i++)); do
    case "${extra_args[i]}" in
      -class|-class-|-namespace|-namespace-)
        if ((i + 1 < ${#extra_args[@]})); then second_args+=("${extra_args[i]}" "${extra_args[i + 1]}"); i=$((i + 1)); fi ;;
    esac
  done
  if [ "$status" -eq 0 ]; then
    boot 2 -method "$second_boot" "${second_args[@]}" || status=$?
  fi
fi

# ---------------------------------------------------------------- 5. the verdict from the consoles
total_passed=0 total_failed=0 total_skipped=0
for phase in 1 2; do
  c="$work/console-$phase.log"
  [ -f "$c" ] || continue
  # xunit's summary: "NAME  Total: N, Errors: N, Failed: N, Skipped: N, Not Run: N, Time: Ns"
  line=$(grep -E 'Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+, Skipped: [0-9]+' "$c" | tail -n 1 || true)
  num() { sed -n "s/.*$1: \([0-9]*\).*/\1/p" <<<"$line"; }
  t=$(num Total); e=$(num Errors); f=$(num Failed); s=$(num Skipped); n=$(num 'Not Run')
  p=""; [ -n "$t" ] && p=$((t - ${f:-0} - ${s:-0} - ${n:-0})); [ -n "$f" ] && f=$((f + ${e:-0}))
  log "boot $phase: ${p:-?} passed, ${f:-?} failed, ${s:-?} skipped"
  total_passed=$((total_passed + ${p:-0})); total_failed=$((total_failed + ${f:-0})); total_skipped=$((total_skipped + ${s:-0}))
done
if [ "$status" -ne 0 ] && [ "$total_failed" -eq 0 ]; then total_failed=1; fi
log "finished in $(( $(date +%s) - start ))s"
echo "devdax-vm: $total_passed passed, $total_failed failed, $total_skipped skipped"
[ "$status" -eq 0 ] || exit 1
