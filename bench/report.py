#!/usr/bin/env python3
"""Turns one run directory of bench/run.sh (meta.tsv, results.tsv) into RESULTS.md on stdout.

    python3 bench/report.py bench/results/RUN_DIR > RESULTS.md
"""
import os
import statistics
import sys

NAMES = {"herald": "Herald", "lws": "libwebsockets", "netty": "Netty", "node-ws": "Node ws"}

# Reference figures (uWebSockets) the targets are stated against.
REF_ECHO16 = (1.84e6, 86.0)   # msgs/s, server CPU %
REF_ECHO1 = (166e3, 94.0)
REF_ECHO64K = 39.6e3          # msgs/s
REF_CAST10K = 3.81e6          # deliveries/s
REF_IDLE = 256                # bytes per connection


def parse_result(line):
    kv = {}
    for tok in line.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            kv[k] = v
    return kv


def num(kv, key):
    v = kv.get(key)
    if v is None or v == "-":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt_rate(x):
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_us(x):
    if x is None:
        return "–"
    if x >= 10000:
        return f"{x / 1000:.1f} ms"
    return f"{x:.0f} µs"


def fmt_num(x, digits=0):
    return "–" if x is None else f"{x:,.{digits}f}"


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def load(run_dir):
    meta = {"servers": [], "rows": [], "checked": []}
    with open(os.path.join(run_dir, "meta.tsv"), encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "server":
                meta["servers"].append({"name": parts[1], "cmd": parts[2], "version": parts[3] if len(parts) > 3 else ""})
            elif parts[0] == "row":
                meta["rows"].append({"id": parts[1], "mode": parts[2], "title": parts[3], "cmd": parts[4]})
            elif parts[0] == "checked":
                meta["checked"] = parts[1].split()
            elif len(parts) >= 2:
                meta[parts[0]] = parts[1]
    runs = {}
    path = os.path.join(run_dir, "results.tsv")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 7:
                    continue
                row, server, _run, cpu, cpu_whole, wall, result = parts[:7]
                kv = parse_result(result)
                rec = {
                    "cpu": float(cpu) if cpu not in ("-", "") else None,
                    "cpu_whole": float(cpu_whole) if cpu_whole not in ("-", "") else None,
                    "wall": float(wall) if wall not in ("-", "") else None,
                    "kv": kv,
                    "failed": "failed" in kv or "server_died" in kv,
                }
                runs.setdefault((row, server), []).append(rec)
    return meta, runs


def summarize(mode, recs):
    """Median over the runs of every figure of one server in one row."""
    ok = [r for r in recs if not r["failed"]]
    s = {"runs": len(recs), "ok": len(ok), "failures": [r["kv"] for r in recs if r["failed"]]}
    if not ok:
        return s
    s["cpu"] = median(r["cpu"] for r in ok)
    s["errors"] = median(num(r["kv"], "errors") for r in ok)
    s["p50"] = median(num(r["kv"], "p50_us") for r in ok)
    s["p99"] = median(num(r["kv"], "p99_us") for r in ok)
    if mode == "echo":
        tput = [num(r["kv"], "msgs_per_s") for r in ok]
        s["mbps"] = median(num(r["kv"], "mb_per_s") for r in ok)
    elif mode in ("broadcast", "pubsub", "stomp"):
        tput = [num(r["kv"], "deliveries_per_s") for r in ok]
        s["sent_per_s"] = median(
            (num(r["kv"], "sent") or 0) / num(r["kv"], "duration_s") if num(r["kv"], "duration_s") else None for r in ok)
        s["lost"] = median(num(r["kv"], "lost") for r in ok)
        s["ooo"] = median(num(r["kv"], "out_of_order") for r in ok)
    else:
        tput = [None for _ in ok]
        s["rss"] = median(num(r["kv"], "rss_per_conn_bytes") for r in ok)
        s["rss_before"] = median(num(r["kv"], "rss_before_kb") for r in ok)
        s["rss_after"] = median(num(r["kv"], "rss_after_kb") for r in ok)
    s["tput"] = median(tput)
    per_cpu = []
    for r, t in zip(ok, tput):
        if t is not None and r["cpu"]:
            per_cpu.append(t / (r["cpu"] / 100.0))
    s["per_cpu"] = median(per_cpu)
    return s


def cpu_cell(s, loaded):
    if s.get("cpu") is None:
        return "–"
    cell = f"{s['cpu']:.0f}%"
    if loaded and s["cpu"] < 90:
        cell += " ⚠"
    return cell


def main():
    run_dir = sys.argv[1]
    meta, runs = load(run_dir)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/"
    for sv in meta["servers"]:
        sv["cmd"] = sv["cmd"].replace(repo, "")
    servers = [sv["name"] for sv in meta["servers"] if not meta["checked"] or sv["name"] in meta["checked"]]
    out = []
    w = out.append
    quick = meta.get("quick") == "1"
    w("# Herald benchmark matrix" + (" (QUICK smoke run: not for comparison)" if quick else ""))
    w("")
    w("Generated by `bench/run.sh` (see `bench/README.md` for how to read it). "
      f"Raw RESULT lines and logs: `{os.path.relpath(run_dir, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}/`.")
    w("")
    w("| | |")
    w("|---|---|")
    for key, label in (("date", "date"), ("commit", "git commit"), ("nproc", "nproc"), ("cpu", "CPU"),
                       ("kernel", "kernel"), ("memory", "memory")):
        w(f"| {label} | {meta.get(key, '?')} |")
    w(f"| runs | {meta.get('runs')} per row and server, median reported; {meta.get('seconds')} s measured "
      f"after {meta.get('warmup')} s warm-up |")
    w(f"| pinning | server `taskset -c {meta.get('server_cpu')}`, load generator `taskset -c {meta.get('client_cpu')}` |")
    w(f"| ulimit -n | {meta.get('ulimit_n')} |")
    w("")
    w("Servers (each restarted for every run; `PORT` changes per start):")
    w("")
    w("| server | version | command |")
    w("|---|---|---|")
    for sv in meta["servers"]:
        note = "" if not meta["checked"] or sv["name"] in meta["checked"] else " **(failed the functional check: not measured)**"
        w(f"| {NAMES.get(sv['name'], sv['name'])} | {sv['version']}{note} | `taskset -c {meta.get('server_cpu')} {sv['cmd']}` |")
    w("")
    w("Server CPU = the server's CPU share (utime+stime of the server process from /proc/PID/stat, "
      "all its threads) over the measurement window: from the load generator's first to its last "
      "progress line of the measurement phase (read as each line arrives). Where there is no such "
      "window (idle row), over the whole load-generator run. Per CPU-second = throughput ÷ that share. "
      "⚠ = server below 90% CPU on a row meant to saturate it: the load generator, not the "
      "server, was the limit, so that throughput understates the server.")
    w("")

    sums = {}
    for row in meta["rows"]:
        rid, mode = row["id"], row["mode"]
        for sv in servers:
            sums[(rid, sv)] = summarize(mode, runs.get((rid, sv), []))
        loaded = mode == "echo" or (mode in ("broadcast", "pubsub", "stomp") and "--rate 0" in row["cmd"])
        rated = mode == "broadcast" and not loaded
        h = sums.get((rid, "herald"), {})
        w(f"## {row['title']} (`{rid}`)")
        w("")
        w(f"`taskset -c {meta.get('client_cpu')} {row['cmd']}`")
        w("")
        if mode == "echo":
            w("| server | msgs/s | MB/s | server CPU | msgs per CPU-s | p50 | p99 | errors | Herald ÷ server (per CPU-s) |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for sv in servers:
                s = sums[(rid, sv)]
                if not s.get("ok"):
                    w(f"| {NAMES.get(sv, sv)} | failed: {fail_text(s)} | | | | | | | |")
                    continue
                rr = "—" if sv == "herald" else fmt_ratio(ratio(h.get("per_cpu"), s.get("per_cpu")))
                w(f"| {NAMES.get(sv, sv)} | {fmt_rate(s['tput'])} | {fmt_num(s.get('mbps'), 1)} | {cpu_cell(s, loaded)} | "
                  f"{fmt_rate(s['per_cpu'])} | {fmt_us(s['p50'])} | {fmt_us(s['p99'])} | {fmt_num(s['errors'])} | {rr} |")
        elif mode == "broadcast":
            basis = "p99 server ÷ Herald" if rated else "Herald ÷ server (per CPU-s)"
            w(f"| server | deliveries/s | sent/s | server CPU | deliveries per CPU-s | p50 | p99 | lost | errors | {basis} |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for sv in servers:
                s = sums[(rid, sv)]
                if not s.get("ok"):
                    w(f"| {NAMES.get(sv, sv)} | failed: {fail_text(s)} | | | | | | | | |")
                    continue
                if sv == "herald":
                    rr = "—"
                elif rated:
                    rr = fmt_ratio(ratio(s.get("p99"), h.get("p99")))
                else:
                    rr = fmt_ratio(ratio(h.get("per_cpu"), s.get("per_cpu")))
                w(f"| {NAMES.get(sv, sv)} | {fmt_rate(s['tput'])} | {fmt_rate(s.get('sent_per_s'))} | {cpu_cell(s, loaded)} | "
                  f"{fmt_rate(s['per_cpu'])} | {fmt_us(s['p50'])} | {fmt_us(s['p99'])} | {fmt_num(s.get('lost'))} | "
                  f"{fmt_num(s['errors'])} | {rr} |")
        elif mode in ("pubsub", "stomp"):
            # Herald only: the peers have no channels, so there is nothing to compare with.
            if mode == "pubsub":
                w("Herald only (the peers have no channels). Latency is publish to delivery: from the "
                  "publisher's send (the HTTP request, or the /pubsub publish frame) to each subscriber's "
                  "receipt of the `message` frame.")
            else:
                w("Herald only (the peers have no STOMP broker). The same channel fan-out as the pub/sub "
                  "rows, over STOMP 1.2 on `/stomp`: latency is publish to delivery, from the publisher's "
                  "`SEND` (or HTTP request) to each subscriber's receipt of the `MESSAGE` frame; "
                  "out of order counts channel offsets (from `message-id`) that did not follow by one.")
            w("")
            w("| server | deliveries/s | sent/s | server CPU | deliveries per CPU-s | p50 | p99 | lost | out of order | errors |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            s = sums[(rid, "herald")] if "herald" in servers else {}
            if not s.get("ok"):
                w(f"| {NAMES['herald']} | failed: {fail_text(s)} | | | | | | | | |")
            else:
                w(f"| {NAMES['herald']} | {fmt_rate(s['tput'])} | {fmt_rate(s.get('sent_per_s'))} | {cpu_cell(s, loaded)} | "
                  f"{fmt_rate(s['per_cpu'])} | {fmt_us(s['p50'])} | {fmt_us(s['p99'])} | {fmt_num(s.get('lost'))} | "
                  f"{fmt_num(s.get('ooo'))} | {fmt_num(s['errors'])} |")
        else:
            w("| server | RSS before | RSS after | bytes per connection | errors | server ÷ Herald (bytes) |")
            w("|---|---:|---:|---:|---:|---:|")
            for sv in servers:
                s = sums[(rid, sv)]
                if not s.get("ok"):
                    w(f"| {NAMES.get(sv, sv)} | failed: {fail_text(s)} | | | | |")
                    continue
                rr = "—" if sv == "herald" else fmt_ratio(ratio(s.get("rss"), h.get("rss")))
                before = "–" if s.get("rss_before") is None else f"{s['rss_before'] / 1024:.1f} MiB"
                after = "–" if s.get("rss_after") is None else f"{s['rss_after'] / 1024:.1f} MiB"
                w(f"| {NAMES.get(sv, sv)} | {before} | {after} | {fmt_num(s.get('rss'))} B | {fmt_num(s['errors'])} | {rr} |")
        w("")

    # STOMP next to the raw broadcast and the /pubsub figures of the same run.
    fan = [(rid, label) for rid, label in (
        ("cast-10k", "broadcast (`/broadcast`), as fast as possible"),
        ("pubsub-10k-max", "pub/sub (`/pubsub` publisher), as fast as possible"),
        ("stomp-10k-max", "STOMP (`SEND` publisher), as fast as possible"),
        ("pubsub-10k-api-r10", "pub/sub (`POST /api/publish`), 10 msgs/s"),
        ("stomp-10k-r10", "STOMP (`SEND` publisher), 10 msgs/s"),
    ) if any(row["id"] == rid for row in meta["rows"]) and sums.get((rid, "herald"), {}).get("ok")]
    if any(rid.startswith("stomp-") for rid, _ in fan):
        w("## Herald fan-out to one channel: raw broadcast, pub/sub and STOMP")
        w("")
        w("The Herald figures of the rows above side by side (the same subscriber count in each).")
        w("")
        w("| row | scenario | deliveries/s | server CPU | deliveries per CPU-s | p50 | p99 | lost | errors |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for rid, label in fan:
            s = sums[(rid, "herald")]
            w(f"| `{rid}` | {label} | {fmt_rate(s['tput'])} | {cpu_cell(s, False)} | {fmt_rate(s['per_cpu'])} | "
              f"{fmt_us(s['p50'])} | {fmt_us(s['p99'])} | {fmt_num(s.get('lost'))} | {fmt_num(s['errors'])} |")
        w("")

    w("## Targets")
    w("")
    w("Ratios are against libwebsockets measured in this run, on the stated basis; absolute "
      "figures are against the uWebSockets reference figures (measured elsewhere, so only a rough "
      "guide on this machine).")
    w("")
    w("| target | basis | Herald | libwebsockets | Herald ÷ lws | goal | met | uWS reference | Herald ÷ reference |")
    w("|---|---|---:|---:|---:|---:|:-:|---:|---:|")

    def get(rid, sv, key):
        return sums.get((rid, sv), {}).get(key)

    def met(ok):
        return "–" if ok is None else ("yes" if ok else "**no**")

    # echo, 16 in flight: per CPU-second, >= 12x lws; reference 1.84M at 86%
    hp, lp = get("echo-p16", "herald", "per_cpu"), get("echo-p16", "lws", "per_cpu")
    r = ratio(hp, lp)
    ref = REF_ECHO16[0] / (REF_ECHO16[1] / 100)
    w(f"| echo, 16 in flight, 32 B | msgs per server CPU-s | {fmt_rate(hp)} | {fmt_rate(lp)} | {fmt_ratio(r)} | ≥ 12× | "
      f"{met(None if r is None else r >= 12)} | {fmt_rate(ref)} (1.84M at 86%) | {fmt_ratio(ratio(hp, ref))} |")
    # echo, 1 in flight: absolute >= 166k msgs/s at 94%
    ht, lt = get("echo-p1", "herald", "tput"), get("echo-p1", "lws", "tput")
    hc = get("echo-p1", "herald", "cpu")
    w(f"| echo, 1 in flight, 32 B | msgs/s (Herald CPU {fmt_num(hc)}%) | {fmt_rate(ht)} | {fmt_rate(lt)} | "
      f"{fmt_ratio(ratio(ht, lt))} | ≥ 166k msgs/s | {met(None if ht is None else ht >= REF_ECHO1[0])} | "
      f"166k at 94% | {fmt_ratio(ratio(ht, REF_ECHO1[0]))} |")
    # 64 KiB echo: >= 1.8x lws per CPU-s; reference 39.6k msgs/s
    hp, lp = get("echo-64k", "herald", "per_cpu"), get("echo-64k", "lws", "per_cpu")
    ht = get("echo-64k", "herald", "tput")
    r = ratio(hp, lp)
    w(f"| echo, 64 KiB binary | msgs per server CPU-s | {fmt_rate(hp)} | {fmt_rate(lp)} | {fmt_ratio(r)} | ≥ 1.8× | "
      f"{met(None if r is None else r >= 1.8)} | 39.6k msgs/s | {fmt_ratio(ratio(ht, REF_ECHO64K))} (msgs/s) |")
    # broadcast to 10k: >= 30x lws per CPU-s; reference 3.81M deliveries/s
    hp, lp = get("cast-10k", "herald", "per_cpu"), get("cast-10k", "lws", "per_cpu")
    ht = get("cast-10k", "herald", "tput")
    r = ratio(hp, lp)
    w(f"| broadcast to 10k, as fast as possible | deliveries per server CPU-s | {fmt_rate(hp)} | {fmt_rate(lp)} | "
      f"{fmt_ratio(r)} | ≥ 30× | {met(None if r is None else r >= 30)} | 3.81M deliveries/s | "
      f"{fmt_ratio(ratio(ht, REF_CAST10K))} (deliveries/s) |")
    # idle: <= 256 B per connection
    hr, lr = get("idle-10k", "herald", "rss"), get("idle-10k", "lws", "rss")
    w(f"| idle /ws connection | RSS bytes per connection | {fmt_num(hr)} B | {fmt_num(lr)} B | "
      f"{fmt_ratio(ratio(hr, lr))} | ≤ 256 B | {met(None if hr is None else hr <= REF_IDLE)} | 256 B | "
      f"{fmt_ratio(ratio(hr, REF_IDLE))} |")
    w("")
    if quick:
        w("QUICK run: 2 s, 1 run and a tenth of the broadcast/idle/pub-sub/STOMP connections; the counts in the "
          "row titles are the ones used, and the targets table compares rows that are smaller than "
          "the targets assume.")
        w("")
    print("\n".join(out))


def fail_text(s):
    if not s.get("runs"):
        return "not run"
    reasons = sorted({" ".join(f"{k}={v}" for k, v in kv.items() if k in ("failed", "server_died")) for kv in s["failures"]})
    return f"{s['runs'] - s.get('ok', 0)}/{s['runs']} runs ({'; '.join(reasons)})"


if __name__ == "__main__":
    main()
