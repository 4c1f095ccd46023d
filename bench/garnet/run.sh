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
# With CEILING=1, every run of B is followed by the aof case on C = Garnet's local-file device with the
# AOF on Tsavorite's NullDevice (--bench-aof-null-device: stores nothing, NOT durable): what Garnet
# reaches when the AOF device costs nothing, so the most any device could gain over B.
# Env: CLIENTS (16), N_SPILL (400000), N_AOF (100000), WORKDIR (a fresh dir under /var/tmp),
#      SERVER_ENV (extra environment for every server, both devices alike, e.g.
#      SERVER_ENV="DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0").
# Besides ops/s and latency, each row records the server's CPU time per request (utime + stime of the
# server process over the redis-benchmark run, divided by the requests) and the 1-minute load average
# when the run began. CPU per request moves far less than ops/s when other work shares the machine:
# with the device a small part of a request's CPU (profile.sh), equal CPU per request on both
# devices says the device is not what makes one run slower.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
CLIENTS=${CLIENTS:-16}
read -r -a SERVER_ENV_ARGS <<< "${SERVER_ENV:-}"
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
echo "work dir: $WORK ($(df -T "$WORK" | awk 'NR==2{print $2}'))${SERVER_ENV:+   server env: $SERVER_ENV}"

PID=""
start_server() { # $1 = pmem|file, then extra server args
  local device=$1; shift
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  local where
  case "$device" in
    pmem) where=(--device "$WORK/data/garnet.dpmem" --size 2g --mode pmem) ;;
    file) where=(--local-dir "$WORK/data") ;;
    null) where=(--local-dir "$WORK/data" --bench-aof-null-device) ;;
  esac
  # The previous server's log goes first: the new server's redirection may truncate it only after the
  # loop below has read it, which took the old READY port (a benchmark against a closed port hangs).
  rm -f "$WORK/server.log"
  env "${SERVER_ENV_ARGS[@]}" dotnet "$DLL" "${where[@]}" --port 0 --no-recover "$@" > "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 300); do
    PORT=$(awk '/^READY/{print $2}' "$WORK/server.log" 2>/dev/null || true)   # no log yet: not ready
    [ -n "$PORT" ] && return 0
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.2
  done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
# The server's CPU time so far (utime + stime), in clock ticks.
server_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

bench() { # $1 = device, $2 = case, $3 = round, $4 = requests, then redis-benchmark's test arguments
  local device=$1 case=$2 round=$3 n=$4; shift 4
  local load before after
  load=$(cut -d' ' -f1 /proc/loadavg)
  before=$(server_ticks)
  local row
  row=$(redis-benchmark -p "$PORT" "$@" -n "$n" -c "$CLIENTS" --csv 2>/dev/null | tail -n +2)
  after=$(server_ticks)
  local cpu
  cpu=$(python3 -c "print(f'{($after - $before) * 1e6 / $(getconf CLK_TCK) / $n:.1f}')")
  echo "$row" | sed "s/^/$device,$case,$round,$load,$cpu,/" >> "$RESULTS"
}

run() { # $1 = device, $2 = round
  local device=$1 round=$2
  if [ "$device" = null ]; then
    start_server null --commit-per-op --memory 64m --page 1m --segment 32m --index 16m
    bench null aof "$round" "$N_AOF" -t set
    stop_server
    return
  fi
  start_server "$device" --no-aof --memory 8m --page 256k --segment 32m --index 16m
  bench "$device" spill "$round" "$N_SPILL" -t set -r 200000 -d 100
  bench "$device" spill "$round" "$N_SPILL" -t get -r 200000 -d 100
  stop_server
  start_server "$device" --commit-per-op --memory 64m --page 1m --segment 32m --index 16m
  bench "$device" aof "$round" "$N_AOF" -t set
  stop_server
}

for r in $(seq 1 "$ROUNDS"); do
  for device in pmem file file pmem; do
    echo "round $r: $device"
    run "$device" "$r"
    if [ "$device" = file ] && [ "${CEILING:-0}" = 1 ]; then
      echo "round $r: null (AOF ceiling)"
      run null "$r"
    fi
  done
done

rm -rf "$WORK/data"   # the last server's device (2 GiB for DirectPmem); results.csv stays
python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
# device, case, round, load, server CPU us/request, "test", "rps", avg, min, p50, p95, p99, max
groups = {}
for r in rows:
    device, case, rnd, load, cpu, test = r[0], r[1], r[2], float(r[3]), float(r[4]), r[5].strip('"')
    rps, p50, p99 = float(r[6].strip('"')), float(r[9].strip('"')), float(r[11].strip('"'))
    groups.setdefault((case, test, device), []).append((rps, p50, p99, cpu, load))
label = {"pmem": "DirectPmem (emulated, forced cache-line)", "file": "Garnet RandomAccess local file",
         "null": "ceiling: AOF on NullDevice (not durable)"}
print("| case | command | device | runs | ops/s median (min-max) | p50 ms median | p99 ms median (min-max) | server CPU us/request median (min-max) | load avg (min-max) |")
print("|---|---|---|---|---|---|---|---|---|")
for (case, test, device) in sorted(groups, key=lambda k: (k[0] != "spill", k[1] != "SET", ["pmem", "file", "null"].index(k[2]))):
    v = groups[(case, test, device)]
    rps = [x[0] for x in v]; p50 = [x[1] for x in v]; p99 = [x[2] for x in v]; cpu = [x[3] for x in v]; load = [x[4] for x in v]
    print(f"| {case} | {test} | {label[device]} | {len(v)} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) "
          f"| {statistics.median(p50):.3f} | {statistics.median(p99):.3f} ({min(p99):.3f}-{max(p99):.3f}) "
          f"| {statistics.median(cpu):.1f} ({min(cpu):.1f}-{max(cpu):.1f}) | {min(load):.2f}-{max(load):.2f} |")
for case, test in sorted({(k[0], k[1]) for k in groups}):
    a = statistics.median(x[0] for x in groups.get((case, test, "pmem"), [(0,0,0)]))
    b = statistics.median(x[0] for x in groups.get((case, test, "file"), [(1,0,0)]))
    ca = statistics.median(x[3] for x in groups.get((case, test, "pmem"), [(0,0,0,0)]))
    cb = statistics.median(x[3] for x in groups.get((case, test, "file"), [(0,0,0,1)]))
    print(f"ratio {case} {test}: DirectPmem/local-file = {a/b:.2f}x ops/s, {ca/cb:.2f}x server CPU per request")
    if (case, test, "null") in groups:
        c = statistics.median(x[0] for x in groups[(case, test, "null")])
        print(f"ratio {case} {test}: ceiling (AOF on NullDevice)/local-file = {c/b:.2f}x ops/s")
PY
echo "raw results: $RESULTS"
