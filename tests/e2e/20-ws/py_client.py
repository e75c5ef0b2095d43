#!/usr/bin/python3
"""Interop check of herald with the Python `websockets` library (asyncio API).

usage: py_client.py ws://127.0.0.1:PORT ws://127.0.0.1:PORT2
(the second server runs with --max-message 64K)
Exits 0 when every check passes, 1 with a message naming the failed check otherwise.
"""
import asyncio
import os
import sys

import websockets

SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024]


class CheckFailed(Exception):
    pass


def fail(msg):
    raise CheckFailed(msg)


def negotiated_deflate(ws):
    exts = getattr(ws, "extensions", None)
    if exts is None and hasattr(ws, "protocol"):
        exts = ws.protocol.extensions
    return any(getattr(e, "name", "") == "permessage-deflate" for e in exts or [])


async def echo_checks(url, compression):
    label = "deflate" if compression else "no compression"
    async with websockets.connect(url + "/ws", compression=compression,
                                  max_size=8 * 1024 * 1024, ping_interval=None) as ws:
        if negotiated_deflate(ws) != bool(compression):
            fail(f"[{label}] permessage-deflate negotiated={negotiated_deflate(ws)}")
        for size in SIZES:
            text = ("héllo wörld " * (size // 12 + 1)).encode()[:size].decode("utf-8", "ignore")
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), 10)
            if not isinstance(got, str) or got != text:
                fail(f"[{label}] text echo of {len(text.encode())} bytes differs (type {type(got).__name__})")
            data = os.urandom(size) if size % 2 else bytes((i * 31) & 0xFF for i in range(size))
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), 10)
            if not isinstance(got, bytes) or got != data:
                fail(f"[{label}] binary echo of {size} bytes differs (type {type(got).__name__})")
        print(f"ok [{label}] text/binary echo of sizes {SIZES}", flush=True)

        pong = await ws.ping(b"py-ping")
        try:
            await asyncio.wait_for(pong, 5)
        except asyncio.TimeoutError:
            fail(f"[{label}] no pong within 5 s")
        print(f"ok [{label}] ping answered", flush=True)

        await ws.send(["frag", "mented ", "message"])  # a fragmented message
        got = await asyncio.wait_for(ws.recv(), 5)
        if got != "fragmented message":
            fail(f"[{label}] fragmented message echoed as {got!r}")
        print(f"ok [{label}] fragmented message echoed whole", flush=True)

        await ws.close(code=4321, reason="py bye")
        code = ws.close_code
        if code != 4321:
            fail(f"[{label}] server answered close 4321 with {code}")
        print(f"ok [{label}] close code 4321 echoed", flush=True)


async def main():
    if len(sys.argv) != 3:
        fail("usage: py_client.py ws://127.0.0.1:PORT ws://127.0.0.1:PORT_WITH_64K_LIMIT")
    url = sys.argv[1].rstrip("/")
    limited = sys.argv[2].rstrip("/")
    print(f"websockets {websockets.__version__} against {url}", flush=True)
    await echo_checks(url, "deflate")
    await echo_checks(url, None)

    # an oversized message (the second server runs with --max-message 64K)
    async with websockets.connect(limited + "/ws", compression=None, ping_interval=None) as ws:
        await ws.send(b"x" * (64 * 1024 + 1))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            fail("oversized message was echoed")
        except websockets.exceptions.ConnectionClosed as e:
            code = e.rcvd.code if getattr(e, "rcvd", None) else getattr(e, "code", None)
            if code != 1009:
                fail(f"oversized message closed with {code}, expected 1009")
        print("ok oversized message -> 1009", flush=True)
    print("ALL OK", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    except CheckFailed as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
    except BaseException as e:  # noqa: BLE001 - report anything else as a failure too
        print(f"FAIL: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
