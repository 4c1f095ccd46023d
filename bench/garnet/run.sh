#!/usr/bin/env bash
# Garnet on DirectPmem vs Garnet on its own local-file device, driven by redis-benchmark.
#
#   bench/garnet/run.sh [ROUNDS]          (default 2 rounds; each round runs A,B,B,A)
#
# A = DirectPmem: an emulated device-DAX device in a file, mapped in FORCED CACHE-LINE mode
#     (CLWB + SFENCE per persist: the cost model of real pmem; NOT power-fail durable on a
#     page-cache file).
# B = Garnet's RandomAccess local-file device (O_DIRECT + write-through, durable on the file
#     system). Garnet's default native device needs glibc 2.38; this script reports what it finds.
#
# Cases (same Garnet build, same server binary, same file system, one process at a time):
#   spill: SET then GET, AOF off, storage tier on, 8 MiB log memory, 200k random keys of 100 B
#   aof:   SET with AOF commit per operation and reply-after-commit (--commit-per-op)
# Env: CLIENTS (16), N_SPILL (400000), N_AOF (100000), WORKDIR (a fresh dir under /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
CLIENTS=${CLIENTS:-16}
N_SPILL=${N_SPILL:-400000}
N_AOF=${N_AOF:-100000}

if ! command -v redis-benchmark >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools >/dev/null
fi
dotnet build samples/DirectPmem.GarnetServer -c Release -nologo -v q >/dev/null
DLL=$PWD/artifacts/bin/DirectPmem.GarnetServer/release/DirectPmem.GarnetServer.dll
WORK=${WORKDIR:-$(mktemp -d /var/tmp/garnet-bench.XXXXXX)}
RESULTS=$WORK/results.csv
: > "$RESULTS"
echo "glibc: $(ldd --version | head -1)   redis-benchmark: $(redis-benchmark --version)"
echo "work dir: $WORK ($(df -T "$WORK" | awk 'NR==2{print $2}'))"

PID=""
start_server() { # $1 = pmem|file, then extra server args
  local device=$1; shift
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  local where
  if [ "$device" = pmem ]; then where=(--device "$WORK/data/garnet.dpmem" --size 2g --mode pmem)
  else where=(--local-dir "$WORK/data"); fi
  dotnet "$DLL" "${where[@]}" --port 0 --no-recover "$@" > "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    PORT=$(awk '/^READY/{print $2}' "$WORK/server.log")
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.2
  done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

run() { # $1 = device, $2 = round
  local device=$1 round=$2
  start_server "$device" --no-aof --memory 8m --page 256k --segment 32m --index 16m
  redis-benchmark -p "$PORT" -t set,get -n "$N_SPILL" -r 200000 -d 100 -c "$CLIENTS" --csv 2>/dev/null | tail -n +2 \
    | sed "s/^/$device,spill,$round,/" >> "$RESULTS"
  stop_server
  start_server "$device" --commit-per-op --memory 64m --page 1m --segment 32m --index 16m
  redis-benchmark -p "$PORT" -t set -n "$N_AOF" -c "$CLIENTS" --csv 2>/dev/null | tail -n +2 \
    | sed "s/^/$device,aof,$round,/" >> "$RESULTS"
  stop_server
}

for r in $(seq 1 "$ROUNDS"); do
  for device in pmem file file pmem; do
    echo "round $r: $device"
    run "$device" "$r"
  done
done

python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
# device, case, round, "test", "rps", avg, min, p50, p95, p99, max
groups = {}
for r in rows:
    device, case, rnd, test = r[0], r[1], r[2], r[3].strip('"')
    rps, p50, p99 = float(r[4].strip('"')), float(r[7].strip('"')), float(r[9].strip('"'))
    groups.setdefault((case, test, device), []).append((rps, p50, p99))
label = {"pmem": "DirectPmem (emulated, forced cache-line)", "file": "Garnet RandomAccess local file"}
print("| case | command | device | runs | ops/s median (min-max) | p50 ms median | p99 ms median (min-max) |")
print("|---|---|---|---|---|---|---|")
for (case, test, device) in sorted(groups, key=lambda k: (k[0] != "spill", k[1] != "SET", k[2] != "pmem")):
    v = groups[(case, test, device)]
    rps = [x[0] for x in v]; p50 = [x[1] for x in v]; p99 = [x[2] for x in v]
    print(f"| {case} | {test} | {label[device]} | {len(v)} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
          f"| {statistics.median(p50):.3f} | {statistics.median(p99):.3f} ({min(p99):.3f}-{max(p99):.3f}) |")
for case, test in sorted({(k[0], k[1]) for k in groups}):
    a = statistics.median(x[0] for x in groups.get((case, test, "pmem"), [(0,0,0)]))
    b = statistics.median(x[0] for x in groups.get((case, test, "file"), [(1,0,0)]))
    print(f"ratio {case} {test}: DirectPmem/local-file = {a/b:.2f}x")
PY
echo "raw results: $RESULTS"
