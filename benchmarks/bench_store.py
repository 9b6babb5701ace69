"""A run's memory and write cost as it grows: the bounded step window against keeping every record.

Logs 10k-80k step records of the fit loop's shape (plus a 50-number histogram, as an instrument's
record is bigger) into a Run, and measures the Python memory the records hold (tracemalloc) next
to the same records kept in a list, as the store did before. Also times ``log`` one record per call
against ``log_many`` a batch of 64 per call (the engine reads losses off the device in batches).

    .venv/bin/python benchmarks/bench_store.py [--sizes 10000 20000 40000 80000]

Prints a markdown table; the target: the window's memory flat in the number of steps, the list's linear.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.store import RunStore  # noqa: E402


def record(i: int) -> dict:
    return {"kind": "step", "step": i, "epoch": i / 23, "data_loss": 1.0 / i, "reg_loss": 0.0, "loss": 1.0 / i,
            "lr": 1e-3, "hist": [float(k) for k in range(50)]}


def window_bytes(n: int, root: Path) -> int:
    run = RunStore(root).create({"model": "bench"})
    tracemalloc.start()
    for i in range(1, n + 1):
        run.log(record(i))
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    run.close()
    return held


def list_bytes(n: int) -> int:
    tracemalloc.start()
    kept = [record(i) for i in range(1, n + 1)]
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(kept) == n
    return held


def write_seconds(n: int, root: Path, batch: int) -> float:
    run = RunStore(root).create({"model": "bench"})
    recs = [record(i) for i in range(1, n + 1)]
    t = time.perf_counter()
    if batch == 1:
        for r in recs:
            run.log(r)
    else:
        for s in range(0, n, batch):
            run.log_many(recs[s:s + batch])
    dt = time.perf_counter() - t
    run.close()
    return dt


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000, 80_000])
    args = p.parse_args()
    print("| steps | window MB | list MB | list / window | log() s | log_many(64) s | log / log_many |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            w, lst = window_bytes(n, Path(d) / f"w{n}"), list_bytes(n)
            one, many = write_seconds(n, Path(d) / f"a{n}", 1), write_seconds(n, Path(d) / f"b{n}", 64)
            print(f"| {n:,} | {w / 2**20:.1f} | {lst / 2**20:.1f} | {lst / w:.1f} | {one:.2f} | {many:.2f} | "
                  f"{one / many:.1f} |")


if __name__ == "__main__":
    main()
