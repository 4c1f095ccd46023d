#!/usr/bin/env bash
# Regenerates the sysfs fixture trees in this directory. The good tree copies the real
# attributes captured from a qemu NVDIMM guest (kernel 6.1; /work/shared/fixtures/
# sysfs-qemu-nvdimm-6.1) and adds what that capture lacks (persistence_domain, a bad block,
# a CXL/soft-reserved device, a 1 GiB-aligned device). Symbolic links are real links, with the
# relative targets the kernel uses, so the code under test resolves them as it would in /sys.
set -euo pipefail
cd "$(dirname "$0")"
REAL=${REAL:-/work/shared/fixtures/sysfs-qemu-nvdimm-6.1/sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region0}
NDBUS=devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0

put() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1"; }
link() { mkdir -p "$(dirname "$2")"; ln -sfn "$1" "$2"; }

# A device-DAX device directory: dir name size align dev [target_node numa_node]
dax_device() {
  local dir=$1 size=$2 align=$3 dev=$4 target=${5:-0} numa=${6:-0}
  put "$dir/size" "$size"; put "$dir/align" "$align"; put "$dir/dev" "$dev"
  put "$dir/target_node" "$target"; put "$dir/numa_node" "$numa"; put "$dir/modalias" "dax:t0"
}
# mapping dir index start end page_offset
mapping() { put "$1/mapping$2/start" "$3"; put "$1/mapping$2/end" "$4"; put "$1/mapping$2/page_offset" "$5"; }
# A soft-reserved (hmem) device with no NVDIMM region: tree name size align
hmem_tree() {
  local t=$1 name=$2
  local dir=$t/devices/platform/hmem.${name#dax}; dir=${dir%.*}/$name
  dax_device "$dir" "${@:3}"
  link ../../../../bus/dax "$dir/subsystem"
  link ../../../../bus/dax/drivers/device_dax "$dir/driver"
  link "../../../devices/platform/$(basename "$(dirname "$dir")")/$name" "$t/bus/dax/devices/$name"
  mkdir -p "$t/bus/dax/drivers/device_dax" "$t/bus/nd/devices"
  echo "$dir"
}

# region0's links and its dax0.0 (the nd dax personality and the device) as the real guest has them: tree
real_region0_dax0() {
  local t=$1 r0=$1/$NDBUS/region0 nd d0
  link ../../../../../../bus/nd "$r0/subsystem"
  link ../../../../../../bus/nd/drivers/nd_region "$r0/driver"
  nd=$r0/dax0.0
  mkdir -p "$nd/dax_region"
  for f in size align mode namespace resource; do cp "$REAL/dax0.0/$f" "$nd/$f"; done
  for f in align id size; do cp "$REAL/dax0.0/dax_region/$f" "$nd/dax_region/$f"; done
  d0=$nd/dax0.0
  mkdir -p "$d0/mapping0"
  for f in align numa_node dev resource size target_node modalias; do cp "$REAL/dax0.0/dax0.0/$f" "$d0/$f"; done
  for f in start end page_offset; do cp "$REAL/dax0.0/dax0.0/mapping0/$f" "$d0/mapping0/$f"; done
  link ../../../../../../../../bus/dax "$d0/subsystem"
  link ../../../../../../../../bus/dax/drivers/device_dax "$d0/driver"
  link ../../../$NDBUS/region0/dax0.0/dax0.0 "$t/bus/dax/devices/dax0.0"
  link ../../../$NDBUS/region0 "$t/bus/nd/devices/region0"
  link ../../$NDBUS/region0/dax0.0/dax0.0 "$t/dev/char/252:0"
}

rm -rf good badblocks tiers missing-size align-not-numeric align-not-power-of-two align-not-page-size mappings-overlap mapping-unaligned mappings-do-not-add-up

# ---- good: region0/dax0.0 (pmem, 2 MiB, ADR, one bad block), dax1.0 (hmem), region1/dax2.0 (1 GiB, eADR)
t=good
r0=$t/$NDBUS/region0
mkdir -p "$r0"
for f in size align numa_node target_node deep_flush resource mappings mapping0 devtype nstype set_cookie read_only available_size max_available_extent; do
  cp "$REAL/$f" "$r0/$f"
done
put "$r0/persistence_domain" "memory_controller"
put "$r0/badblocks" "2048 8"           # 8 sectors (4 KiB) at 1 MiB into the region
chmod 0644 "$r0/deep_flush"
real_region0_dax0 "$t"

hmem=$(hmem_tree $t dax1.0 1073741824 2097152 252:1 1 -1)
mapping "$hmem" 0 0x1080000000 0x10bfffffff 0x0
link ../../devices/platform/hmem.1/dax1.0 "$t/dev/char/252:1"

r1=$t/$NDBUS/region1
put "$r1/size" 4294967296; put "$r1/align" 0x1000000; put "$r1/numa_node" 1; put "$r1/target_node" 1
put "$r1/persistence_domain" "cpu_cache"; put "$r1/badblocks" ""
link ../../../../../../bus/nd "$r1/subsystem"
d2=$r1/dax1.1/dax2.0
dax_device "$d2" 2147483648 1073741824 252:2 1 1
mapping "$d2" 0 0x240000000 0x27fffffff 0x0
mapping "$d2" 1 0x300000000 0x33fffffff 0x40000
link ../../../../../../../../bus/dax "$d2/subsystem"
link ../../../../../../../../bus/dax/drivers/device_dax "$d2/driver"
link ../../../$NDBUS/region1/dax1.1/dax2.0 "$t/bus/dax/devices/dax2.0"
link ../../../$NDBUS/region1 "$t/bus/nd/devices/region1"
link ../../$NDBUS/region1/dax1.1/dax2.0 "$t/dev/char/252:2"
mkdir -p "$t/bus/nd/drivers/nd_region" "$t/class/mem"
# /dev/null (1:3) belongs to the mem class, not to dax.
put "$t/devices/virtual/mem/null/dev" "1:3"
link ../../../../class/mem "$t/devices/virtual/mem/null/subsystem"
link ../../devices/virtual/mem/null "$t/dev/char/1:3"

# ---- broken trees: one soft-reserved dax0.0 each, breaking one rule
d=$(hmem_tree missing-size dax0.0 1073741824 2097152 252:0); rm "$d/size"
d=$(hmem_tree align-not-numeric dax0.0 1073741824 2M 252:0)
d=$(hmem_tree align-not-power-of-two dax0.0 1073741824 3145728 252:0)
d=$(hmem_tree align-not-page-size dax0.0 1073741824 65536 252:0)
d=$(hmem_tree mappings-overlap dax0.0 2147483648 2097152 252:0)
mapping "$d" 0 0x100000000 0x13fffffff 0x0
mapping "$d" 1 0x120000000 0x15fffffff 0x40000
d=$(hmem_tree mapping-unaligned dax0.0 1073741824 2097152 252:0)
mapping "$d" 0 0x100001000 0x140000fff 0x0
d=$(hmem_tree mappings-do-not-add-up dax0.0 1073741824 2097152 252:0)
mapping "$d" 0 0x100000000 0x11fffffff 0x0

# ---- badblocks: region bad blocks placed in device and file offsets.
# region0 (the real capture's shape, resource 0x100000000): namespace0.0 -> nd dax0.0 (info block,
# data at 0x100a00000) -> dax0.0; namespace0.1 -> pfn0.0 (fsdax, data at 0x120a00000) -> block
# device pmem0.1 (259:0) with partition pmem0.1p1 (259:1, starting at sector 2048).
# region1 (resource 0x140000000): nd dax1.0 -> dax1.1, a dynamic device of two physical ranges
# whose device order is the reverse of their physical order (mapping1 ends where mapping0 begins).
t=badblocks
r0=$t/$NDBUS/region0
mkdir -p "$r0"
for f in size align numa_node target_node deep_flush resource devtype nstype; do cp "$REAL/$f" "$r0/$f"; done
put "$r0/persistence_domain" "memory_controller"
# 2048 8: in namespace0.0's info block (not dax0.0's); 20472 16: straddles dax0.0's first byte;
# 24576 8: 2 MiB into dax0.0; 1069096 8: 0x5000 into pmem0.1's data (the same block pmem0.1 lists as 40 8).
printf '2048 8\n20472 16\n24576 8\n1069096 8\n' > "$r0/badblocks"
real_region0_dax0 "$t"
link ../../../../../../../bus/nd "$r0/dax0.0/subsystem"
for ns in namespace0.0 namespace0.1; do
  mkdir -p "$r0/$ns"
  for f in size resource mode holder; do cp "$REAL/$ns/$f" "$r0/$ns/$f"; done
  link ../../../../../../../bus/nd "$r0/$ns/subsystem"
done
pfn=$r0/pfn0.0
mkdir -p "$pfn"
for f in align mode namespace resource size; do cp "$REAL/pfn0.0/$f" "$pfn/$f"; done
link ../../../../../../../bus/nd "$pfn/subsystem"
disk=$pfn/block/pmem0.1
put "$disk/dev" "259:0"; put "$disk/size" 1028096    # 526385152 bytes in sectors
printf '40 8\n4096 16\n' > "$disk/badblocks"            # 0x5000 and 2 MiB into the data
part=$disk/pmem0.1p1
put "$part/dev" "259:1"; put "$part/partition" 1; put "$part/start" 2048; put "$part/size" 1026048
link ../../$NDBUS/region0/pfn0.0/block/pmem0.1 "$t/dev/block/259:0"
link ../../$NDBUS/region0/pfn0.0/block/pmem0.1/pmem0.1p1 "$t/dev/block/259:1"

r1=$t/$NDBUS/region1
put "$r1/size" 1073741824; put "$r1/align" 0x1000000; put "$r1/resource" 0x140000000
put "$r1/numa_node" 0; put "$r1/target_node" 0; put "$r1/persistence_domain" "memory_controller"
# 0 8: dax1.0's info block; 10240 1: 1 MiB into mapping1; 532472 16: straddles the physical
# boundary between mapping1's end and mapping0's start.
printf '0 8\n10240 1\n532472 16\n' > "$r1/badblocks"
link ../../../../../../bus/nd "$r1/subsystem"
nd1=$r1/dax1.0
put "$nd1/namespace" "namespace1.0"; put "$nd1/resource" 0x140200000; put "$nd1/mode" pmem
put "$nd1/dax_region/align" 2097152; put "$nd1/dax_region/id" 1; put "$nd1/dax_region/size" 1071644672
link ../../../../../../../bus/nd "$nd1/subsystem"
d11=$nd1/dax1.1
dax_device "$d11" 536870912 2097152 252:1
put "$d11/resource" 0x150400000
mapping "$d11" 0 0x150400000 0x1603fffff 0x0
mapping "$d11" 1 0x140400000 0x1503fffff 0x10000
link ../../../../../../../../bus/dax "$d11/subsystem"
link ../../../../../../../../bus/dax/drivers/device_dax "$d11/driver"
link ../../../$NDBUS/region1/dax1.0/dax1.1 "$t/bus/dax/devices/dax1.1"
link ../../../$NDBUS/region1 "$t/bus/nd/devices/region1"
link ../../$NDBUS/region1/dax1.0/dax1.1 "$t/dev/char/252:1"
mkdir -p "$t/bus/nd/drivers/nd_region" "$t/bus/dax/drivers/device_dax" "$t/class/block"

# ---- tiers: one device of each kind the kernel exposes, on nodes with and without HMAT, in memory tiers.
# dax0.0: the real guest's NVDIMM namespace (dax_pmem under ndbus0) on node0, which reports no HMAT
#   (the guest booted without -machine hmat=on) and is the DRAM tier (memory_tier4).
# dax1.0: soft-reserved memory (platform device hmem.1, driver hmem) in system-ram mode (kmem) on
#   node2, whose HMAT covers access0 only; memory520 online, memory521 offline (128 MiB blocks);
#   node2 is in kmem's default tier for dax memory (memory_tier22).
# dax2.0: a CXL ram region (region2 under root decoder decoder0.0, cxl_dax_region) in devdax mode on node3.
# dax3.0: a CXL pmem region (region3 under decoder0.1) through the CXL nvdimm bridge (ndbus1,
#   nd region3, as drivers/cxl/pmem.c numbers it) in devdax mode on node4.
t=tiers
CXL=devices/platform/ACPI0017:00/root0
r0=$t/$NDBUS/region0
mkdir -p "$r0"
for f in size align numa_node target_node resource devtype nstype; do cp "$REAL/$f" "$r0/$f"; done
real_region0_dax0 "$t"
link ../../../../../../../bus/nd/drivers/dax_pmem "$r0/dax0.0/driver"
link ../../../../../bus/nd/drivers/nd_bus "$t/$NDBUS/driver"

hmem=$(hmem_tree $t dax1.0 268435456 2097152 252:1 2 0)
link ../../../../bus/dax/drivers/kmem "$hmem/driver"
link ../../../bus/platform/drivers/hmem "$t/devices/platform/hmem.1/driver"
put "$t/devices/platform/hmem.1/dax_region/id" 1; put "$t/devices/platform/hmem.1/dax_region/align" 2097152
mapping "$hmem" 0 0x1040000000 0x104fffffff 0x0
link ../../devices/platform/hmem.1/dax1.0 "$t/dev/char/252:1"
mkdir -p "$t/bus/dax/drivers/kmem" "$t/bus/platform/drivers/hmem"

# memory blocks: block size 0x8000000 (128 MiB, printed in hex without 0x); memory0 is boot DRAM.
mem=$t/devices/system/memory
put "$mem/block_size_bytes" 8000000
block() { put "$mem/memory$1/phys_index" "$2"; put "$mem/memory$1/state" "$3"; put "$mem/memory$1/online" "$4"; put "$mem/memory$1/valid_zones" "$5"; }
block 0 00000000 online 1 Normal
block 520 00000208 online 1 Movable
block 521 00000209 offline 0 "Normal Movable"

# CXL ram region2 -> dax_region2 -> dax2.0
cr2=$t/$CXL/decoder0.0/region2
put "$cr2/mode" ram; put "$cr2/size" 0x10000000; put "$cr2/resource" 0x1080000000
link ../../../../../../bus/cxl "$cr2/subsystem"
link ../../../../../../bus/cxl/drivers/cxl_region "$cr2/driver"
dr2=$cr2/dax_region2
put "$dr2/dax_region/id" 2; put "$dr2/dax_region/align" 2097152; put "$dr2/dax_region/size" 268435456
link ../../../../../../../bus/cxl "$dr2/subsystem"
link ../../../../../../../bus/cxl/drivers/cxl_dax_region "$dr2/driver"
d2=$dr2/dax2.0
dax_device "$d2" 268435456 2097152 252:2 3 0
mapping "$d2" 0 0x1080000000 0x108fffffff 0x0
link ../../../../../../../../bus/dax "$d2/subsystem"
link ../../../../../../../../bus/dax/drivers/device_dax "$d2/driver"
link ../../../$CXL/decoder0.0/region2/dax_region2/dax2.0 "$t/bus/dax/devices/dax2.0"
link ../../$CXL/decoder0.0/region2/dax_region2/dax2.0 "$t/dev/char/252:2"
link ../../../$CXL/decoder0.0/region2 "$t/bus/cxl/devices/region2"
link ../../../$CXL/decoder0.0 "$t/bus/cxl/devices/decoder0.0"

# CXL pmem region3 -> pmem_region3 -> (nvdimm bridge) ndbus1/region3 -> dax3.0 (dax_pmem) -> dax3.0
cr3=$t/$CXL/decoder0.1/region3
put "$cr3/mode" pmem; put "$cr3/size" 0x20000000; put "$cr3/resource" 0x10c0000000
link ../../../../../../bus/cxl "$cr3/subsystem"
link ../../../../../../bus/cxl/drivers/cxl_region "$cr3/driver"
mkdir -p "$cr3/pmem_region3"
link ../../../../../../../bus/cxl/drivers/cxl_pmem_region "$cr3/pmem_region3/driver"
nb=$t/$CXL/nvdimm-bridge0/ndbus1
link ../../../../../../bus/nd/drivers/nd_bus "$nb/driver"
r3=$nb/region3
put "$r3/size" 536870912; put "$r3/align" 0x1000000; put "$r3/numa_node" 0; put "$r3/target_node" 4
put "$r3/persistence_domain" memory_controller; put "$r3/badblocks" ""
link ../../../../../../../bus/nd "$r3/subsystem"
link ../../../../../../../bus/nd/drivers/nd_region "$r3/driver"
nd3=$r3/dax3.0
put "$nd3/namespace" namespace3.0; put "$nd3/mode" pmem
put "$nd3/dax_region/id" 3; put "$nd3/dax_region/align" 2097152; put "$nd3/dax_region/size" 534773760
link ../../../../../../../../bus/nd "$nd3/subsystem"
link ../../../../../../../../bus/nd/drivers/dax_pmem "$nd3/driver"
d3=$nd3/dax3.0
dax_device "$d3" 534773760 2097152 252:3 4 0
mapping "$d3" 0 0x10c0200000 0x10dfffffff 0x0
link ../../../../../../../../../bus/dax "$d3/subsystem"
link ../../../../../../../../../bus/dax/drivers/device_dax "$d3/driver"
link ../../../$CXL/nvdimm-bridge0/ndbus1/region3/dax3.0/dax3.0 "$t/bus/dax/devices/dax3.0"
link ../../../$CXL/nvdimm-bridge0/ndbus1/region3 "$t/bus/nd/devices/region3"
link ../../$CXL/nvdimm-bridge0/ndbus1/region3/dax3.0/dax3.0 "$t/dev/char/252:3"
link ../../../$CXL/decoder0.1/region3 "$t/bus/cxl/devices/region3"
mkdir -p "$t/bus/nd/drivers/nd_region" "$t/bus/nd/drivers/dax_pmem" "$t/bus/nd/drivers/nd_bus" "$t/bus/dax/drivers/device_dax" \
  "$t/bus/cxl/drivers/cxl_region" "$t/bus/cxl/drivers/cxl_dax_region" "$t/bus/cxl/drivers/cxl_pmem_region"

# NUMA nodes: node0 has the CPUs and DRAM and no HMAT; HMAT figures (latency ns, bandwidth MB/s) from node0.
node=$t/devices/system/node
put "$node/has_cpu" 0; put "$node/has_memory" 0,2; put "$node/online" 0,2-4; put "$node/possible" 0-4
put "$node/node0/cpulist" 0-1   # a real attribute, so that git keeps the directory (an empty one is not tracked)
# hmat node access read_lat write_lat read_bw write_bw
hmat() {
  local d=$node/node$1/access$2/initiators
  put "$d/read_latency" "$3"; put "$d/write_latency" "$4"; put "$d/read_bandwidth" "$5"; put "$d/write_bandwidth" "$6"
  link ../../../node0 "$d/node0"
}
hmat 2 0 250 300 8000 6000
hmat 3 0 170 180 24000 20000
hmat 3 1 190 200 22000 18000
hmat 4 0 350 500 12000 4000
hmat 4 1 380 520 11000 3500

tiering=$t/devices/virtual/memory_tiering
put "$tiering/memory_tier4/nodelist" 0
put "$tiering/memory_tier22/nodelist" 2
