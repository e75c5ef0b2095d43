#!/usr/bin/env bash
# Builds Herald and starts `herald serve` on its embedded defaults (127.0.0.1:8080:
# echo at /ws, broadcast at /broadcast). Extra arguments go to `herald serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# The web pages' npm libraries (web/package.json), embedded into the binary by the build;
# without them the demo's STOMP chat says its library is not installed.
( cd web && if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --no-audit --no-fund --loglevel=error ||
      echo "web: npm ci failed: the demo page's STOMP chat will be unavailable" >&2; fi )
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF -DHERALD_EXAMPLES=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
exec ./build-release/src/herald serve "$@"
