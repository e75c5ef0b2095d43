#!/usr/bin/env bash
# Builds Herald and starts `herald serve` on its embedded defaults (127.0.0.1:8080:
# echo at /ws, broadcast at /broadcast). Extra arguments go to `herald serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DHERALD_TESTS=OFF -DHERALD_EXAMPLES=OFF >/dev/null
cmake --build build-release -j"$(nproc)" >/dev/null
exec ./build-release/src/herald serve "$@"
