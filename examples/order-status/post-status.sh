#!/bin/sh
# Post an order's new status to herald's HTTP API, as an order backend would.
#
#   ./post-status.sh ORDER_ID STATUS
#
# Environment:
#   HERALD_HTTP     base URL of the server (default http://127.0.0.1:8080)
#   HERALD_API_KEY  the server's --api-key, if it has one
#
# Publishes {"order":"ORDER_ID","status":"STATUS"} on the channel orders.ORDER_ID and
# prints the server's answer, {"offset":N,"epoch":"..."}. Exits non-zero on failure.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 ORDER_ID STATUS" >&2
    exit 2
fi
order=$1
status=$2
# Both end up inside JSON strings and a channel name: keep them to safe characters.
case $order in
    '' | *[!A-Za-z0-9_-]*) echo "$0: ORDER_ID must be letters, digits, '-' or '_'" >&2; exit 2 ;;
esac
case $status in
    '' | *[!A-Za-z0-9_-]*) echo "$0: STATUS must be letters, digits, '-' or '_'" >&2; exit 2 ;;
esac

base=${HERALD_HTTP:-http://127.0.0.1:8080}
body="{\"channel\":\"orders.$order\",\"data\":{\"order\":\"$order\",\"status\":\"$status\"}}"

if [ -n "${HERALD_API_KEY:-}" ]; then
    exec curl -sS --fail-with-body --max-time 10 -X POST "$base/api/publish" \
        -H 'Content-Type: application/json' -H "Authorization: Bearer $HERALD_API_KEY" \
        --data "$body"
else
    exec curl -sS --fail-with-body --max-time 10 -X POST "$base/api/publish" \
        -H 'Content-Type: application/json' --data "$body"
fi
