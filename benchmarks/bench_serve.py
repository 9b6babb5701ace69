"""The served app under a burst of page loads: how long the event loop is held, pages built on it vs off it.

Two servers of the digits demo, one after the other: ``workbench serve`` (pages built on worker
threads) and the same page served the plain Panel way (built inside the event loop). Each gets N
concurrent page loads while a probe sends a request the loop answers by itself
every 0.1 s (the favicon); the probe's latency is how long an open tab's click would wait. Run:

    python benchmarks/bench_serve.py [--loads 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.serving import free_port, serve_env  # noqa: E402

PLAIN = """
import sys, panel as pn
from workbench.cli import load_session
from workbench.ui.app import create_app, load_extensions
load_extensions()
pn.serve({"/": lambda: create_app(load_session(None, root=sys.argv[2], defects=True))}, port=int(sys.argv[1]),
         address="127.0.0.1", show=False, title="Recipe Workbench")
"""


def start(mode: str, port: int, root: str) -> subprocess.Popen:
    if mode == "workbench serve":
        cmd = [sys.executable, "-m", "workbench.cli", "serve", "--defects", "--port", str(port), "--root", root]
    else:
        cmd = [sys.executable, "-c", PLAIN, str(port), root]
    return subprocess.Popen(cmd, cwd=ROOT, env=serve_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def probe(port: int) -> float:
    """Seconds for a request the event loop answers alone (the favicon): what a click in an open tab waits."""
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("GET", "/favicon.ico")
    c.getresponse().read()
    return time.monotonic() - t0


def measure(mode: str, loads: int, seconds: float, root: str) -> dict:
    port = free_port()
    proc = start(mode, port, root)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=120).read()  # ready, and imports warm
                break
            except OSError:
                time.sleep(0.5)
        quiet = statistics.median(probe(port) for _ in range(5))
        t0, done = time.monotonic(), []

        def load(_):
            urllib.request.urlopen(url, timeout=600).read()
            done.append(time.monotonic() - t0)

        pool = ThreadPoolExecutor(loads)
        for i in range(loads):
            pool.submit(load, i)
        lags = []
        while time.monotonic() - t0 < seconds or len(done) < loads:
            lags.append(probe(port))
            time.sleep(0.1)
        pool.shutdown(wait=True)
        return {"mode": mode, "quiet": quiet, "median": statistics.median(lags),
                "p90": sorted(lags)[int(0.9 * len(lags))], "max": max(lags), "last_load": max(done)}
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--root", default="/tmp/bench-serve-runs")
    args = ap.parse_args()
    rows = [measure(m, args.loads, args.seconds, args.root) for m in ("workbench serve", "plain Panel (on the loop)")]
    print(f"{args.loads} concurrent page loads; probe = a request the event loop answers alone, every 0.1 s\n")
    print("| server | probe quiet s | median s | p90 s | max s | last page s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['quiet']:.3f} | {r['median']:.2f} | {r['p90']:.2f} | {r['max']:.2f} | "
              f"{r['last_load']:.1f} |")
    ratio = rows[1]["max"] / max(rows[0]["max"], 1e-9)
    print(f"\nlongest wait, plain / workbench serve: {ratio:.1f}x")


if __name__ == "__main__":
    main()
