"""Benchmark of the sanity checks (recipe part II): every check's time on digits with tiny_cnn, and the
gradient check's cost against the number of sampled coordinates and against the parameter count.

Run: ``python benchmarks/bench_checks.py``. Prints markdown tables; the ratios compare runs of this
one process side by side (no absolute timing is asserted anywhere).
"""

from __future__ import annotations

import os
import tempfile
import time

import torch

import workbench as wb
from workbench.checks import run_check, run_checks


def session(model, tmp):
    train, test = wb.datasets.digits()
    return wb.Session(model, train, test, seed=0, root=os.path.join(tmp, "runs"))


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    tmp = tempfile.mkdtemp(prefix="bench-checks-")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")

    s = session(wb.models.tiny_cnn, tmp)
    total, results = timed(lambda: run_checks(s))
    print("## All checks on digits (1437 train / 360 test) with tiny_cnn, default options\n")
    print("| check | recipe | status | seconds |\n|---|---|---|---:|")
    for r in results:
        print(f"| {r.name} | {r.recipe} | {r.status} | {r.seconds:.2f} |")
    print(f"| **all** | | | **{total:.2f}** (budget 60 s) |\n")

    n_cnn = sum(p.numel() for p in s.model.parameters())
    print(f"## gradient_check cost vs sampled coordinates per tensor (tiny_cnn, 11 tensors, {n_cnn:,} parameters)\n")
    print("| coords per tensor | coordinates checked | seconds | x smallest |\n|---:|---:|---:|---:|")
    base = None
    for k in (2, 4, 8, 16, 32):
        sec, r = timed(lambda k=k: run_check(s, "gradient_check", coords=k), repeat=2)
        base = base or sec
        print(f"| {k} | {r.measured['coords']} | {sec:.3f} | {sec / base:.1f} |")

    print("\n## gradient_check cost vs parameter count (mlp, 6 tensors, 8 coords per tensor)\n")
    print("f evaluations do not grow with the parameters; the seconds that do are the O(parameters) float64 copy "
          "and the forward passes of a bigger network.\n")
    print("| mlp width | parameters | coordinates checked | f evaluations | seconds | x smallest | "
          "f evaluations for every coordinate |\n|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for w in (32, 128, 512, 1024):
        sw = session(lambda num_classes=10, w=w: wb.models.mlp(num_classes, width=w), tmp)
        n = sum(p.numel() for p in sw.model.parameters())
        sec, r = timed(lambda sw=sw: run_check(sw, "gradient_check", coords=8), repeat=2)
        base = base or sec
        c = r.measured["coords"]
        print(f"| {w} | {n:,} | {c} | {2 * c + 1} | {sec:.3f} | {sec / base:.1f} | {2 * n:,} |")


if __name__ == "__main__":
    main()
