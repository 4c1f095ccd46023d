#!/usr/bin/env bash
# Where a SET's time goes: perf profiles of the Garnet sample on DirectPmem and on Garnet's own
# local-file device, under the same redis-benchmark load as one of run.sh's cases.
#
#   bench/garnet/profile.sh [SECONDS] [CASE]   (default 12 s of sampling per device; root for perf)
#
# CASE is aof (durable-AOF SET, the default) or spill (SET with AOF off and 8 MiB of log memory, so
# the log spills pages to the device; random keys, as run.sh).
#
# JIT frames are named through the runtime's perf map (DOTNET_PerfMapEnabled=1, with W^X off so that
# perf sees the code's addresses). Each sample is put in one bucket by profile-categories.py: the
# stack is searched for waits first (sched_yield spinning, futex/Task waits), then for the device's
# own code, then the leaf frame decides. Prints one table per device, then the server's events per
# request over the same run (perf stat: context switches, sched_yield and futex calls, page faults):
# counts of hand-offs between threads, which move less than times when other work shares the machine.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-12}
CASE=${2:-aof}
case "$CASE" in
  aof) server_args=(--commit-per-op --memory 64m --page 1m --segment 32m --index 16m); bench_args=(-t set); rate=15000 ;;
  spill) server_args=(--no-aof --memory 8m --page 256k --segment 32m --index 16m); bench_args=(-t set -r 200000 -d 100); rate=60000 ;;
  *) echo "CASE is aof or spill, not '$CASE'"; exit 2 ;;
esac
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)"; exit 2; }
command -v redis-benchmark >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null; }
dotnet build samples/DirectPmem.GarnetServer -c Release -nologo -v q >/dev/null || exit 1
DLL=$PWD/artifacts/bin/DirectPmem.GarnetServer/release/DirectPmem.GarnetServer.dll
WORK=$(mktemp -d /var/tmp/garnet-profile.XXXXXX)
for device in pmem file; do
  W=$WORK/$device; mkdir -p "$W/data"
  if [ "$device" = pmem ]; then where=(--device "$W/data/garnet.dpmem" --size 2g --mode pmem); else where=(--local-dir "$W/data"); fi
  DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 dotnet "$DLL" "${where[@]}" --port 0 --no-recover \
    "${server_args[@]}" > "$W/server.log" 2>&1 &
  PID=$!; PORT=""
  for _ in $(seq 1 300); do PORT=$(awk '/^READY/{print $2}' "$W/server.log"); [ -n "$PORT" ] && break; sleep 0.2; done
  [ -n "$PORT" ] || { echo "server did not start"; cat "$W/server.log"; kill "$PID"; exit 1; }
  redis-benchmark -p "$PORT" "${bench_args[@]}" -n 20000 -c 16 -q >/dev/null 2>&1   # warm-up to tier 1
  perf record -F 999 -g -p "$PID" -o "$W/perf.data" -- sleep "$SECS" >/dev/null 2>&1 &
  PERF=$!
  perf stat -x, -e context-switches,syscalls:sys_enter_sched_yield,syscalls:sys_enter_futex,page-faults \
    -p "$PID" -o "$W/stat.txt" >/dev/null 2>&1 &
  STAT=$!
  sleep 0.2   # perf stat attaches
  requests=$((SECS * rate))
  echo "== $CASE, $device: $(redis-benchmark -p "$PORT" "${bench_args[@]}" -n "$requests" -c 16 --csv 2>/dev/null | tail -n 1)"
  kill -INT "$STAT"; wait "$STAT"
  wait "$PERF"
  kill "$PID"; wait "$PID" 2>/dev/null
  rm -rf "$W/data"   # the device (2 GiB for DirectPmem); perf.data stays
  perf script -i "$W/perf.data" 2>/dev/null | python3 bench/garnet/profile-categories.py
  awk -F, -v n="$requests" '/^[0-9]/ { printf "| %s per request | %.2f |\n", $3, $1 / n }' "$W/stat.txt"
done
echo "perf data kept in $WORK"
