#!/usr/bin/env bash
# Runs every Herald test: installs what is missing, then builds and runs the whole
# CTest suite (unit tests, fuzz corpus replays, examples, the end-to-end suite against
# the real binary) twice: warnings as errors, then under AddressSanitizer +
# UndefinedBehaviorSanitizer. Finally each libFuzzer target runs for
# HERALD_FUZZ_SECONDS (default 20) with clang. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test

( cd tests/e2e && if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error; fi )
# The web pages' npm libraries (web/package.json), embedded into the binary by the build;
# without them the demo's STOMP chat says its library is not installed.
( cd web && if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error ||
      echo "web: npm ci failed: the demo page's STOMP chat will be unavailable" >&2; fi )

jobs=$(nproc)
run_suite() {
  local dir=$1; shift
  echo "== build $dir ($*)"
  cmake -S . -B "$dir" -DHERALD_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  echo "== test $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 1500 -j"$jobs")
}

run_suite build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=address,undefined

secs=${HERALD_FUZZ_SECONDS:-60}
if [ "$secs" -gt 0 ]; then
  echo "== fuzz: each target for ${secs}s (clang, libFuzzer, ASan+UBSan), $jobs at a time"
  CC=clang cmake -S . -B build-fuzz -DHERALD_FUZZ=ON -DHERALD_SANITIZE=address,undefined \
    -DHERALD_TESTS=OFF -DHERALD_EXAMPLES=OFF -DHERALD_WERROR=ON >/dev/null
  cmake --build build-fuzz -j"$jobs" >/dev/null
  # One target on a fresh copy of its corpus; prints "ok" or the end of its log.
  fuzz_one() {
    local f=$1 name work dict=()
    name=$(basename "$f")
    work=$(mktemp -d)
    cp -r "fuzz/corpus/$name/." "$work/"
    [ -f "fuzz/dict/$name.dict" ] && dict=(-dict="fuzz/dict/$name.dict")
    if "$f" -max_total_time="$secs" -print_final_stats=0 "${dict[@]}" "$work" >"$work.log" 2>&1; then
      echo "fuzz: $name ok ($(grep -o 'Done [0-9]* runs' "$work.log" || echo runs))"
      rm -rf "$work" "$work.log"
    else
      echo "fuzz: $name FAILED"
      tail -n 40 "$work.log"
      return 1
    fi
  }
  export -f fuzz_one
  export secs
  find build-fuzz/fuzz -maxdepth 1 -type f -executable -name 'fuzz_*' | sort | xargs -P "$jobs" -I{} bash -c 'fuzz_one {}' ||
    { echo "fuzz: a target failed"; exit 1; }
fi
echo "all tests passed"
