#!/usr/bin/env bash
# A 6-node Garnet cluster (3 primaries, 1 replica each, loopback) on DirectPmem vs the same
# cluster on Garnet's own local-file device, driven by redis-benchmark --cluster.
#
#   bench/garnet/cluster.sh [ROUNDS]       (default 2 rounds; each round runs A,B,B,A)
#
# A = every node on its own emulated device-DAX device in a file, FORCED CACHE-LINE mode (the
#     cost model of real pmem; NOT power-fail durable on a page-cache file).
# B = every node on Garnet's RandomAccess local-file device in its own directory.
# Every node runs the sample server with --cluster --commit-per-op (a write is acknowledged after
# its AOF commit on the primary; replicas follow asynchronously). The cluster is formed the way a
# user would (see the README's Garnet section): ADDSLOTSRANGE, SET-CONFIG-EPOCH, MEET, REPLICATE.
# Env: CLIENTS (48), N (200000 SETs per run), BASE_PORT (7100), WORKDIR (a fresh dir under /var/tmp).
# Output: per run the SET throughput and p50/p99 (redis-benchmark --csv), then a summary.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
CLIENTS=${CLIENTS:-48}
N=${N:-200000}
BASE_PORT=${BASE_PORT:-7100}

command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark and redis-cli (apt-get install redis-tools)"; exit 2; }
dotnet build samples/DirectPmem.GarnetServer -c Release -nologo -v q >/dev/null
DLL=$PWD/artifacts/bin/DirectPmem.GarnetServer/release/DirectPmem.GarnetServer.dll
WORK=${WORKDIR:-$(mktemp -d /var/tmp/garnet-cluster-bench.XXXXXX)}
RESULTS=$WORK/results.csv
: > "$RESULTS"
echo "redis-benchmark: $(redis-benchmark --version)   work dir: $WORK ($(df -T "$WORK" | awk 'NR==2{print $2}'))"
lscpu | grep -E "^(Model name|CPU family|Model|L1d|L2|L3)" | sed 's/  */ /g'

PIDS=()
start_cluster() { # $1 = pmem|file
  local device=$1 i port
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  PIDS=()
  for i in 0 1 2 3 4 5; do
    port=$((BASE_PORT + i))
    if [ "$device" = pmem ]; then where=(--device "$WORK/data/node$i.dpmem" --size 1g --mode pmem)
    else where=(--local-dir "$WORK/data/node$i"); fi
    dotnet "$DLL" --cluster "${where[@]}" --port "$port" --commit-per-op --memory 64m --page 1m --segment 32m --index 16m \
      > "$WORK/node$i.log" 2>&1 &
    PIDS+=($!)
  done
  for i in 0 1 2 3 4 5; do
    for _ in $(seq 1 600); do
      grep -q '^READY' "$WORK/node$i.log" && break
      kill -0 "${PIDS[$i]}" 2>/dev/null || { cat "$WORK/node$i.log"; exit 1; }
      sleep 0.2
    done
    grep -q '^READY' "$WORK/node$i.log" || { echo "node $i did not start"; cat "$WORK/node$i.log"; exit 1; }
  done
  # Form the cluster: slots, distinct epochs, meet, replicas.
  redis-cli -p $((BASE_PORT + 0)) cluster addslotsrange 0 5460 >/dev/null
  redis-cli -p $((BASE_PORT + 1)) cluster addslotsrange 5461 10922 >/dev/null
  redis-cli -p $((BASE_PORT + 2)) cluster addslotsrange 10923 16383 >/dev/null
  for i in 0 1 2 3 4 5; do redis-cli -p $((BASE_PORT + i)) cluster set-config-epoch $((i + 1)) >/dev/null; done
  for i in 1 2 3 4 5; do redis-cli -p "$BASE_PORT" cluster meet 127.0.0.1 $((BASE_PORT + i)) >/dev/null; done
  for i in 0 1 2 3 4 5; do
    until [ "$(redis-cli -p $((BASE_PORT + i)) cluster nodes | grep -c '127.0.0.1:')" = 6 ]; do sleep 0.2; done
  done
  for i in 0 1 2; do
    redis-cli -p $((BASE_PORT + 3 + i)) cluster replicate "$(redis-cli -p $((BASE_PORT + i)) cluster myid)" >/dev/null
  done
  for i in 3 4 5; do
    until redis-cli -p $((BASE_PORT + i)) info replication | grep -q 'master_link_status:up'; do sleep 0.2; done
  done
}
stop_cluster() { kill "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null || true; }

run() { # $1 = device, $2 = round
  local device=$1 round=$2
  start_cluster "$device"
  # --cluster prints the masters it found before the CSV: keep only the SET row.
  redis-benchmark --cluster -p "$BASE_PORT" -t set -n "$N" -r 1000000 -d 100 -c "$CLIENTS" --csv 2>/dev/null | grep '^"SET"' \
    | sed "s/^/$device,$round,/" >> "$RESULTS"
  stop_cluster
  echo "round $round $device: $(tail -1 "$RESULTS")   (load $(cut -d' ' -f1-3 /proc/loadavg))"
}

for round in $(seq 1 "$ROUNDS"); do
  run pmem "$round"; run file "$round"; run file "$round"; run pmem "$round"
done
echo
echo "device,runs,SET/s (mean),p50 ms (mean),p99 ms (mean)"
# redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
for device in pmem file; do
  grep "^$device," "$RESULTS" | tr -d '"' | awk -F, -v d="$device" '{n++; rps+=$4; p50+=$7; p99+=$9}
    END {if (n) printf "%s,%d,%.0f,%.3f,%.3f\n", d, n, rps/n, p50/n, p99/n}'
done
rm -rf "$WORK/data"   # the six nodes' devices (1 GiB each for DirectPmem); results.csv and the node logs stay
