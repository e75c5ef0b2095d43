#!/usr/bin/env bash
# The benchmark matrix: `herald serve` against libwebsockets, Netty and Node's ws,
# one server core against one load-generator core. See bench/README.md.
#
#   bench/run.sh                 full run (BENCH_SECONDS=10, BENCH_RUNS=3)
#   BENCH_QUICK=1 bench/run.sh   smoke run (2 s, 1 run, smaller counts)
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]   measured seconds per run        BENCH_WARMUP [1]   warm-up seconds
#   BENCH_RUNS [3]       runs per row and server (median is reported)
#   BENCH_QUICK [0]      1: 2 s, 1 run, broadcast/idle/pubsub/stomp counts divided by 10
#   BENCH_SERVERS ["herald lws netty node-ws"]   subset/order of servers
#   BENCH_ROWS [all]     subset of row ids (echo-p1 echo-p16 echo-64k cast-1k cast-10k
#                        cast-10k-r100 cast-10k-r10 idle-10k pubsub-10k-api-r10
#                        pubsub-10k-max stomp-10k-r10 stomp-10k-max), space separated; the
#                        pubsub and stomp rows run on herald only (the peers have no
#                        channels)
#                        cluster-1node cluster-1node-redis cluster-3node
#                        cluster-3node-remote: redis-server + 3 herald nodes, run by
#                        bench/cluster.sh (see there) instead of this matrix
#   BENCH_SERVER_CPU [0] BENCH_CLIENT_CPU [1]   CPUs for taskset
#   BENCH_SOURCE_ADDRS [127.0.0.2-127.0.0.9]    --source-addrs for rows with >= 1000 connections
#                                               (empty: never)
#   BENCH_PORT [19100]   first port; every server start takes the next one
#   BENCH_NO_INSTALL [0] 1: do not apt-get/npm install anything
#   BENCH_OUT            results directory [bench/results/DATE-COMMIT]
#   BENCH_WRITE_RESULTS  1: also write bench/RESULTS.md [1 for full runs, 0 for QUICK]
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build="$here/.build"

quick=${BENCH_QUICK:-0}
if [[ $quick == 1 ]]; then
  seconds=${BENCH_SECONDS:-2}
  runs=${BENCH_RUNS:-1}
  scale=10
else
  seconds=${BENCH_SECONDS:-10}
  runs=${BENCH_RUNS:-3}
  scale=1
fi
warmup=${BENCH_WARMUP:-1}
servers=${BENCH_SERVERS:-herald lws netty node-ws}
rows_wanted=${BENCH_ROWS:-}
srv_cpu=${BENCH_SERVER_CPU:-0}
cli_cpu=${BENCH_CLIENT_CPU:-1}
source_addrs=${BENCH_SOURCE_ADDRS-127.0.0.2-127.0.0.9}
port=${BENCH_PORT:-19100}
write_results=${BENCH_WRITE_RESULTS:-$([[ $quick == 1 ]] && echo 0 || echo 1)}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Cluster rows (redis-server and several nodes; docs/cluster.md) run by themselves.
if [[ " $rows_wanted " == *" cluster-"* ]]; then exec "$here/cluster.sh"; fi

# ---------------------------------------------------------------- processes
# Every process this script starts is recorded here and only those are stopped.
started_pids=()
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop on SIGTERM, killing it"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  local pid
  for pid in "${started_pids[@]}"; do stop_pid "$pid"; done
  started_pids=()
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- install
install_missing() {
  [[ ${BENCH_NO_INSTALL:-0} == 1 ]] && return 0
  local pkgs=() p
  for p in libwebsockets-dev libnetty-java pkg-config cmake make gcc python3 procps util-linux coreutils; do
    dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
  done
  if ! command -v javac >/dev/null; then
    if apt-cache show default-jdk-headless >/dev/null 2>&1; then pkgs+=(default-jdk-headless); else pkgs+=(openjdk-17-jdk-headless); fi
  fi
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  if ((${#pkgs[@]})); then
    log "installing: ${pkgs[*]}"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null || die "apt-get install ${pkgs[*]} failed"
  fi
  if [[ ! -f $here/peers/node-ws/node_modules/ws/package.json ]]; then
    log "npm ci in bench/peers/node-ws"
    (cd "$here/peers/node-ws" && npm ci --no-audit --no-fund --silent) || die "npm ci failed"
  fi
}

# ---------------------------------------------------------------- build
build_all() {
  mkdir -p "$build"
  log "building herald (Release)"
  cmake -S "$repo" -B "$build/herald" -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF -DHERALD_EXAMPLES=OFF \
    >"$build/herald-cmake.log" 2>&1 || { tail -20 "$build/herald-cmake.log" >&2; die "cmake configure failed"; }
  cmake --build "$build/herald" -j"$(nproc)" >"$build/herald-build.log" 2>&1 \
    || { tail -30 "$build/herald-build.log" >&2; die "herald build failed"; }
  herald=$build/herald/src/herald
  [[ -x $herald ]] || herald=$(find "$build/herald" -type f -name herald -perm -u+x | head -1)
  [[ -x $herald ]] || die "no herald binary under $build/herald"
  "$herald" bench --help >/dev/null 2>&1 \
    || die "'herald bench' is not available in this build (herald bench --help failed)"

  local s
  for s in $servers; do
    case $s in
      lws)
        log "building the libwebsockets peer"
        make -s -C "$here/peers/lws" BUILD_DIR="$build" >"$build/lws-build.log" 2>&1 \
          || { cat "$build/lws-build.log" >&2; die "lws peer build failed"; } ;;
      netty)
        log "building the Netty peer"
        "$here/peers/netty/build.sh" "$build/netty" >"$build/netty-build.log" 2>&1 \
          || { cat "$build/netty-build.log" >&2; die "netty peer build failed"; } ;;
      herald | node-ws) ;;
      *) die "unknown server '$s' (known: herald lws netty node-ws)" ;;
    esac
  done
}

# ---------------------------------------------------------------- servers
server_cmd() { # NAME PORT -> prints the command line (no taskset)
  case $1 in
    herald) echo "$herald serve --listen 127.0.0.1:$2 --threads 1 --compression off --log-level warn --max-message-rate 0" ;;
    lws) echo "$build/lws-peer $2" ;;
    netty) echo "$build/netty/netty-peer $2" ;;
    node-ws) echo "node $here/peers/node-ws/server.mjs $2" ;;
  esac
}
server_version() {
  case $1 in
    herald) "$herald" --version 2>/dev/null | head -1 ;;
    lws) echo "libwebsockets $(dpkg-query -W -f='${Version}' libwebsockets-dev 2>/dev/null)" ;;
    netty) echo "Netty $(dpkg-query -W -f='${Version}' libnetty-java 2>/dev/null), $(java -version 2>&1 | head -1)" ;;
    node-ws) echo "ws $(node -p "require('$here/peers/node-ws/node_modules/ws/package.json').version" 2>/dev/null), node $(node --version)" ;;
  esac
}

# start_server NAME LOGFILE -> sets srv_pid, srv_port; returns 1 if it did not come up
start_server() {
  local name=$1 logf=$2 i
  port=$((port + 1))
  srv_port=$port
  local cmd
  cmd=$(server_cmd "$name" "$srv_port")
  # shellcheck disable=SC2086
  taskset -c "$srv_cpu" $cmd >"$logf" 2>&1 &
  srv_pid=$!
  started_pids+=("$srv_pid")
  for ((i = 0; i < 300; i++)); do
    grep -q "listening on" "$logf" 2>/dev/null && return 0
    kill -0 "$srv_pid" 2>/dev/null || break
    sleep 0.1
  done
  log "$name did not come up (see $logf)"
  stop_server
  return 1
}
stop_server() {
  stop_pid "$srv_pid"
  local keep=() p
  for p in "${started_pids[@]}"; do [[ $p == "$srv_pid" ]] || keep+=("$p"); done
  started_pids=("${keep[@]}")
}

cpu_ticks() { # utime+stime of PID, in clock ticks
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || { echo 0; return; }
  stat=${stat##*) }          # drop "pid (comm) "; fields now start at 3 (state)
  # shellcheck disable=SC2086
  set -- $stat
  echo $((${12} + ${13}))    # fields 14 and 15
}
# Copies the load generator's stderr, each line prefixed with the time (s) and the
# server's CPU ticks at that moment: the progress lines of the measurement phase
# ("] run ") then give the server's CPU share over the measurement window.
stamp_lines() {
  local pid=$1 line
  while IFS= read -r line; do
    printf '%s %s | %s\n' "$EPOCHREALTIME" "$(cpu_ticks "$pid")" "$line"
  done
}
now_ns() { date +%s%N; }

# ---------------------------------------------------------------- the matrix
# id | title | mode | path | conns | bench options (besides -c, -d, --warmup, URL)
n_cast_small=$((1000 / scale)) n_cast_big=$((10000 / scale)) n_idle=$((10000 / scale))
n_pubsub=$((10000 / scale)) n_stomp=$((10000 / scale))
matrix=(
  "echo-p1|Echo, 100 connections, 1 in flight, 32 B text|echo|/ws|100|-p 1 -s 32"
  "echo-p16|Echo, 100 connections, 16 in flight, 32 B text|echo|/ws|100|-p 16 -s 32"
  "echo-64k|Echo, 10 connections, 1 in flight, 64 KiB binary|echo|/ws|10|-p 1 -s 65536 --binary"
  "cast-1k|Broadcast, $n_cast_small subscribers, 1 publisher, as fast as possible, 32 B|broadcast|/broadcast|$n_cast_small|--publishers 1 --rate 0 -s 32"
  "cast-10k|Broadcast, $n_cast_big subscribers, 1 publisher, as fast as possible, 32 B|broadcast|/broadcast|$n_cast_big|--publishers 1 --rate 0 -s 32"
  "cast-10k-r100|Broadcast, $n_cast_big subscribers, 100 msgs/s, 32 B|broadcast|/broadcast|$n_cast_big|--publishers 1 --rate 100 -s 32"
  "cast-10k-r10|Broadcast, $n_cast_big subscribers, 10 msgs/s, 32 B|broadcast|/broadcast|$n_cast_big|--publishers 1 --rate 10 -s 32"
  "idle-10k|Idle, $n_idle connections to /ws, RSS per connection|idle|/ws|$n_idle|--hold 3"
  "pubsub-10k-api-r10|Pub/sub, $n_pubsub subscribers of one channel, 10 msgs/s through POST /api/publish, 32-character string|pubsub|/pubsub|$n_pubsub|--via api --rate 10 -s 32"
  "pubsub-10k-max|Pub/sub, $n_pubsub subscribers of one channel, as fast as possible through a /pubsub publisher, 32-character string|pubsub|/pubsub|$n_pubsub|--via ws --rate 0 -s 32"
  "stomp-10k-r10|STOMP, $n_stomp subscribers of /topic/bench.c, 10 msgs/s through a STOMP SEND publisher, 32-character text body|stomp|/stomp|$n_stomp|--via ws --rate 10 -s 32"
  "stomp-10k-max|STOMP, $n_stomp subscribers of /topic/bench.c, as fast as possible through a STOMP SEND publisher, 32-character text body|stomp|/stomp|$n_stomp|--via ws --rate 0 -s 32"
)
# Rows of these modes run on herald only: the peers serve /ws and /broadcast, no channels.
herald_only_modes=" pubsub stomp "

row_selected() {
  [[ -z $rows_wanted ]] && return 0
  local r
  for r in $rows_wanted; do [[ $r == "$1" ]] && return 0; done
  return 1
}

# run_one ROW_ID MODE PATH CONNS OPTS SERVER RUN DIR
run_one() {
  local id=$1 mode=$2 path=$3 conns=$4 opts=$5 name=$6 run=$7 dir=$8
  local base="$dir/$id.$name.run$run"
  if ! start_server "$name" "$base.server.log"; then
    printf '%s\t%s\t%s\t-\t-\t-\tRESULT failed=server_start\n' "$id" "$name" "$run" >>"$out/results.tsv"
    return
  fi
  local args=("$mode" "ws://127.0.0.1:$srv_port$path" -c "$conns")
  # shellcheck disable=SC2206
  args+=($opts)
  if [[ $mode == idle ]]; then
    args+=(--pid "$srv_pid")
  else
    args+=(-d "$seconds" --warmup "$warmup")
  fi
  if [[ -n $source_addrs ]] && ((conns >= 1000)); then args+=(--source-addrs "$source_addrs"); fi
  echo "taskset -c $cli_cpu herald bench ${args[*]}" >"$base.cmd"
  local limit=$((seconds + warmup + 90))
  local t0 c0 t1 c1 rc
  c0=$(cpu_ticks "$srv_pid"); t0=$(now_ns)
  # stdout to the .out file, stderr through the pipe to the stamping reader
  timeout -k 5 "$limit" taskset -c "$cli_cpu" "$herald" bench "${args[@]}" 2>&1 >"$base.out" \
    | stamp_lines "$srv_pid" >"$base.err"
  rc=${PIPESTATUS[0]}
  c1=$(cpu_ticks "$srv_pid"); t1=$(now_ns)
  local alive=1
  kill -0 "$srv_pid" 2>/dev/null || alive=0
  stop_server
  local cpu cpu_whole wall result
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  cpu_whole=$(awk -v a="$c0" -v b="$c1" -v w="$wall" -v hz="$hz" 'BEGIN { printf "%.1f", (w > 0) ? 100 * (b - a) / hz / w : 0 }')
  # CPU share over the measurement window: first to last "run" progress line.
  cpu=$(awk -v hz="$hz" '/\] run / { if (!n++) { t0 = $1; c0 = $2 } t1 = $1; c1 = $2 }
        END { if (n >= 2 && t1 > t0) printf "%.1f", 100 * (c1 - c0) / hz / (t1 - t0) }' "$base.err")
  [[ -n $cpu ]] || cpu=$cpu_whole
  result=$(grep '^RESULT ' "$base.out" | tail -1)
  [[ -n $result ]] || result="RESULT failed=bench_rc_$rc"
  ((alive)) || result+=" server_died=1"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$name" "$run" "$cpu" "$cpu_whole" "$wall" "$result" >>"$out/results.tsv"
  log "  $id $name run $run: cpu ${cpu}% (whole run ${cpu_whole}% of ${wall}s) rc $rc :: ${result#RESULT }"
}

# ---------------------------------------------------------------- main
install_missing
build_all
hz=$(getconf CLK_TCK)

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
if (($(ulimit -n) < 20000)); then log "warning: ulimit -n is $(ulimit -n); 10,000-connection rows may fail"; fi
if (($(nproc) < 2)); then
  log "warning: fewer than 2 CPUs: server and load generator share CPU 0"
  cli_cpu=$srv_cpu
fi

commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null) ]] && commit+="+dirty"
stamp=$(date -u +%Y%m%d-%H%M%S)
out=${BENCH_OUT:-$here/results/$stamp-${commit%%+*}$([[ $quick == 1 ]] && echo -quick)}
mkdir -p "$out/raw"
: >"$out/results.tsv"

{
  echo "date	$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "commit	$commit"
  echo "nproc	$(nproc)"
  echo "cpu	$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "kernel	$(uname -srm)"
  echo "memory	$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "quick	$quick"
  echo "seconds	$seconds"
  echo "warmup	$warmup"
  echo "runs	$runs"
  echo "server_cpu	$srv_cpu"
  echo "client_cpu	$cli_cpu"
  echo "source_addrs	$source_addrs"
  echo "ulimit_n	$(ulimit -n)"
  for s in $servers; do
    echo "server	$s	$(server_cmd "$s" PORT)	$(server_version "$s")"
  done
} >"$out/meta.tsv"

# Functional check of every server before measuring it.
ok_servers=""
for s in $servers; do
  if start_server "$s" "$out/raw/check.$s.server.log"; then
    if node "$here/peers/check.mjs" "$srv_port" >"$out/raw/check.$s.out" 2>&1; then
      ok_servers+=" $s"
    else
      log "$s failed the functional check: $(cat "$out/raw/check.$s.out")"
    fi
    stop_server
  fi
done
[[ -n $ok_servers ]] || die "no server passed the functional check"
echo "checked	$ok_servers" >>"$out/meta.tsv"

for entry in "${matrix[@]}"; do
  IFS='|' read -r id title mode path conns opts <<<"$entry"
  row_selected "$id" || continue
  if [[ $mode == idle ]]; then
    cmdline="herald bench $mode ws://127.0.0.1:PORT$path -c $conns $opts --pid SERVER_PID"
  else
    cmdline="herald bench $mode ws://127.0.0.1:PORT$path -c $conns $opts -d $seconds --warmup $warmup"
  fi
  [[ -n $source_addrs ]] && ((conns >= 1000)) && cmdline+=" --source-addrs $source_addrs"
  row_servers=$ok_servers
  if [[ $herald_only_modes == *" $mode "* ]]; then
    row_servers=""
    [[ " $ok_servers " == *" herald "* ]] && row_servers=herald
    if [[ -z $row_servers ]]; then
      log "row $id: $title: skipped (herald only, and herald is not among the servers)"
      continue
    fi
  fi
  printf 'row\t%s\t%s\t%s\t%s\n' "$id" "$mode" "$title" "$cmdline" >>"$out/meta.tsv"
  log "row $id: $title"
  for ((r = 1; r <= runs; r++)); do
    for s in $row_servers; do
      run_one "$id" "$mode" "$path" "$conns" "$opts" "$s" "$r" "$out/raw"
    done
  done
done

py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3
"$py" "$here/report.py" "$out" >"$out/RESULTS.md" || die "report.py failed"
if [[ $write_results == 1 ]]; then
  cp "$out/RESULTS.md" "$here/RESULTS.md"
  log "wrote bench/RESULTS.md and $out"
else
  log "wrote $out/RESULTS.md (bench/RESULTS.md left as it was: BENCH_WRITE_RESULTS=1 to replace it)"
fi
