#!/usr/bin/env bash
# Installs what building and testing Herald needs on Debian 12, skipping what is
# already there. Sourced by run.sh and test.sh; `deps.sh test` adds the test tools.
set -euo pipefail

need=(build-essential cmake pkg-config libssl-dev zlib1g-dev libjansson-dev libcurl4-openssl-dev libinih-dev libhiredis-dev)
if [ "${1:-}" = test ]; then
  need+=(libcmocka-dev python3-websockets clang curl chromium nginx redis-server)
fi
# npm installs the front-end libraries the web pages serve (web/package.json), for run.sh too.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)

missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
