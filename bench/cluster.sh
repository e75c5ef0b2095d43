#!/usr/bin/env bash
# Cross-node pub/sub figures (docs/cluster.md): one redis-server and 3 herald nodes, the
# publisher on node A and the subscribers spread over the nodes with `herald bench
# pubsub --urls`, next to the same load on one node without and with --redis.
# Run by bench/run.sh when BENCH_ROWS names cluster rows, or on its own:
#
#   BENCH_SECONDS=5 bench/cluster.sh
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]  BENCH_WARMUP [1]   measured / warm-up seconds per run
#   BENCH_ROWS [all cluster rows]          cluster-1node cluster-1node-redis cluster-3node
#                                          cluster-3node-remote (space separated; other ids
#                                          are ignored here)
#   BENCH_CLUSTER_LOADS ["100:100 1000:0"] SUBSCRIBERS:RATE pairs run for every row: the
#                                          first a light load for latency, the second
#                                          rate 0 (as fast as the 16-message window of
#                                          the pacing subscriber allows) for throughput
#   BENCH_HERALD                           a herald binary to use (default: build Release
#                                          in bench/.build/herald, as run.sh does)
#   BENCH_PORT [19300]                     first port; every process takes the next one
#   BENCH_OUT                              results directory [bench/results/DATE-cluster]
# Nodes run --threads 1 each, the load generator --threads 1; nothing is pinned with
# taskset (4 processes and Redis on a small machine: pinning would serialise them).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build="$here/.build"
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-1}
loads=${BENCH_CLUSTER_LOADS:-100:100 1000:0}
port=${BENCH_PORT:-19300}
all_rows="cluster-1node cluster-1node-redis cluster-3node cluster-3node-remote"
rows=""
for r in ${BENCH_ROWS:-$all_rows}; do [[ " $all_rows " == *" $r "* ]] && rows+=" $r"; done
[[ -n $rows ]] || rows=" $all_rows"

log() { printf '[cluster-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

started_pids=()
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
stop_all() {
  local pid
  for pid in "${started_pids[@]}"; do stop_pid "$pid"; done
  started_pids=()
}
trap stop_all EXIT
trap 'log "interrupted"; exit 130' INT TERM

command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"

herald=${BENCH_HERALD:-}
if [[ -z $herald ]]; then
  mkdir -p "$build"
  log "building herald (Release)"
  cmake -S "$repo" -B "$build/herald" -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF -DHERALD_EXAMPLES=OFF \
    >"$build/herald-cmake.log" 2>&1 || die "cmake configure failed (see $build/herald-cmake.log)"
  cmake --build "$build/herald" -j"$(nproc)" >"$build/herald-build.log" 2>&1 \
    || die "herald build failed (see $build/herald-build.log)"
  herald=$build/herald/src/herald
fi
[[ -x $herald ]] || die "no herald binary at $herald"
"$herald" bench --help 2>&1 | grep -q -- '--urls' || die "$herald bench has no --urls"

stamp=$(date -u +%Y%m%d-%H%M%S)
out=${BENCH_OUT:-$here/results/$stamp-cluster}
mkdir -p "$out"

next_port() { port=$((port + 1)); }

# start_redis LOG -> redis_pid, redis_port
start_redis() {
  next_port
  redis_port=$port
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --protected-mode no --loglevel warning >"$1" 2>&1 &
  redis_pid=$!
  started_pids+=("$redis_pid")
  local i
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && return 0
    sleep 0.05
  done
  die "redis-server did not answer on port $redis_port (see $1)"
}

# start_node LOG ARGS... -> node_port (appends the pid to started_pids)
start_node() {
  local logf=$1 i
  shift
  next_port
  node_port=$port
  "$herald" serve --listen "127.0.0.1:$node_port" --threads 1 --compression off --log-level warn \
    --max-message-rate 0 "$@" >"$logf" 2>&1 &
  started_pids+=("$!")
  for ((i = 0; i < 200; i++)); do
    grep -q "listening on" "$logf" 2>/dev/null && break
    sleep 0.05
  done
  grep -q "listening on" "$logf" || die "herald did not start (see $logf)"
  if (($#)); then # with --redis: wait until the node reports Redis up
    for ((i = 0; i < 100; i++)); do
      curl -fsS "http://127.0.0.1:$node_port/healthz" 2>/dev/null | grep -q '"up"' && return 0
      sleep 0.05
    done
    log "warning: node :$node_port does not report redis up in /healthz; measuring anyway"
  fi
}

results="$out/cluster.tsv"
: >"$results"
{
  echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit	$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
  echo "nproc	$(nproc)"
  echo "cpu	$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "kernel	$(uname -srm)"
  echo "redis	$(redis-server --version | head -1)"
  echo "seconds	$seconds"
  echo "warmup	$warmup"
} >"$out/meta.tsv"

for row in $rows; do
  for load in $loads; do
    subs=${load%%:*} rate=${load##*:}
    stop_all
    base="$out/$row.c$subs.r$rate"
    redis_args=()
    urls=""
    case $row in
      cluster-1node)
        start_node "$base.node0.log"; pub_url="ws://127.0.0.1:$node_port/pubsub" ;;
      cluster-1node-redis)
        start_redis "$base.redis.log"
        start_node "$base.node0.log" --redis "redis://127.0.0.1:$redis_port/0"
        pub_url="ws://127.0.0.1:$node_port/pubsub" ;;
      cluster-3node | cluster-3node-remote)
        start_redis "$base.redis.log"
        redis_args=(--redis "redis://127.0.0.1:$redis_port/0")
        nodes=()
        for n in 0 1 2; do
          start_node "$base.node$n.log" "${redis_args[@]}"
          nodes+=("ws://127.0.0.1:$node_port/pubsub")
        done
        pub_url=${nodes[0]}
        if [[ $row == cluster-3node ]]; then
          urls="${nodes[0]},${nodes[1]},${nodes[2]}" # a third local, two thirds remote
        else
          urls="${nodes[1]},${nodes[2]}" # every delivery crosses Redis
        fi ;;
    esac
    args=(pubsub "$pub_url" -c "$subs" --via ws --rate "$rate" -s 32 -d "$seconds" --warmup "$warmup"
      --channel "bench.cluster")
    [[ -n $urls ]] && args+=(--urls "$urls")
    echo "herald bench ${args[*]}" >"$base.cmd"
    log "$row rate $rate: herald bench ${args[*]}"
    limit=$(awk -v a="$seconds" -v b="$warmup" 'BEGIN { printf "%d", a + b + 90 }')
    timeout -k 5 "$limit" "$herald" bench "${args[@]}" >"$base.out" 2>"$base.err"
    rc=$?
    result=$(grep '^RESULT ' "$base.out" | tail -1)
    [[ -n $result ]] || result="RESULT failed=bench_rc_$rc"
    printf '%s\t%s\t%s\t%s\n' "$row" "$subs" "$rate" "$result" >>"$results"
    log "  ${result#RESULT }"
    stop_all
  done
done

# The table (markdown) on stdout and in $out/CLUSTER.md.
python3 - "$out" <<'PY' | tee "$out/CLUSTER.md"
import sys
out = sys.argv[1]
meta = {}
for line in open(f"{out}/meta.tsv"):
    k, _, v = line.rstrip("\n").partition("\t")
    meta[k] = v
titles = {
    "cluster-1node": "1 node, no Redis",
    "cluster-1node-redis": "1 node, --redis",
    "cluster-3node": "3 nodes + Redis, subscribers on all 3 (2/3 cross-node)",
    "cluster-3node-remote": "3 nodes + Redis, subscribers on the 2 other nodes (all cross-node)",
}
print(f"Subscribers of one channel, one /pubsub publisher on the first node, "
      f"32-character string, {meta.get('seconds')} s after {meta.get('warmup')} s warm-up; "
      f"{meta.get('cpu')}, {meta.get('nproc')} CPUs, {meta.get('kernel')}, {meta.get('redis')}, "
      f"commit {meta.get('commit')}, {meta.get('date')}.\n")
print("| setup | subscribers | rate | sent/s | deliveries/s | p50 | p99 | lost | errors |")
print("|---|---|---|---|---|---|---|---|---|")
def us(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "–"
    return f"{x / 1000:.1f} ms" if x >= 10000 else f"{x:.0f} µs"
for line in open(f"{out}/cluster.tsv"):
    row, subs, rate, res = line.rstrip("\n").split("\t")
    kv = dict(t.split("=", 1) for t in res.split()[1:] if "=" in t)
    if "failed" in kv:
        print(f"| {titles.get(row, row)} | {subs} | {rate} | failed ({kv['failed']}) | | | | | |")
        continue
    d = float(kv.get("duration_s", "1") or 1)
    sent = float(kv.get("sent", 0)) / d
    print(f"| {titles.get(row, row)} | {subs} | {'max' if rate == '0' else rate + '/s'} | {sent:.0f} | "
          f"{float(kv.get('deliveries_per_s', 0)):.0f} | {us(kv.get('p50_us'))} | {us(kv.get('p99_us'))} | "
          f"{kv.get('lost', '–')} | {kv.get('errors', '–')} |")
PY
log "wrote $out (CLUSTER.md, cluster.tsv, logs)"
