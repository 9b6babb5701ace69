"""Benchmark of the sanity checks (recipe part II): every check's time on digits with tiny_cnn and with
torchvision's resnet18 (11M parameters, CPU and GPU when there is one), the gradient check's cost against
the number of sampled coordinates and the parameter count, and the zoo's verdicts with the default
budgets (stop when the verdict is clear, subsampled held-out sets, a coordinate budget) against long
fixed budgets.

Run: ``python benchmarks/bench_checks.py [--skip-zoo] [--only resnet18]``. Prints markdown tables; the
ratios compare runs of this one process side by side (no absolute timing is asserted anywhere).
"""

from __future__ import annotations

import argparse
import os
import sys
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


def cpu_timed(fn):
    """(CPU seconds of this process, result) of one call."""
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


LONG = {"overfit_batch": {"stop_early": False}, "input_independent": {"stop_early": False, "eval_examples": 10**9},
        "generalization": {"stop_early": False, "eval_examples": 10**9}, "gradient_check": {"max_coords": 10**9}}


def resnet18_section(tmp, device, long=False):
    """All checks on torchvision resnet18 (digits, small-input stem) on ``device``: seconds per check (with
    ``long``: the long fixed budgets instead of the defaults)."""
    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.torchvision_model, train, test, seed=0, device=device,
                   root=os.path.join(tmp, f"runs-{device}"))
    n = sum(p.numel() for p in s.model.parameters())
    cpu = time.process_time()
    total, results = timed(lambda: run_checks(s, **(LONG if long else {})))
    cpu = time.process_time() - cpu
    print(f"## All checks on torchvision resnet18 ({n / 1e6:.1f}M parameters), digits, {device}, "
          f"{'long budgets' if long else 'default budgets'}, load average {os.getloadavg()[0]:.1f}\n")
    print("| check | status | seconds | message |\n|---|---|---:|---|")
    for r in results:
        print(f"| {r.name} | {r.status} | {r.seconds:.1f} | {r.message[:90]} |")
    print(f"| **all** | | **{total:.1f}** | CPU time of this process {cpu:.1f} s; target: 120 s on the 2-core CPU |\n")


def zoo_section(tmp):
    """The zoo's verdicts with the default budgets against long fixed budgets, and the time each takes."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.zoo.zoo import ZOO
    from tests.zoo.zoo import session as zoo_session

    print("## The zoo: default budgets vs long fixed budgets\n")
    print("CPU seconds of this process (wall time on a shared machine follows the other processes' load).\n")
    print("| model | checks | same verdict | CPU s (default) | CPU s (long) | ratio | differing |\n"
          "|---|---:|---:|---:|---:|---:|---|")
    for name in ZOO:
        short_t, short = cpu_timed(lambda name=name: run_checks(zoo_session(name, os.path.join(tmp, "zoo"))))
        long_t, long = cpu_timed(lambda name=name: run_checks(zoo_session(name, os.path.join(tmp, "zoo")), **LONG))
        diff = [f"{a.name}: {a.status}/{b.status}" for a, b in zip(short, long, strict=True) if a.status != b.status]
        same = len(short) - len(diff)
        print(f"| {name} | {len(short)} | {same} | {short_t:.1f} | {long_t:.1f} | {long_t / short_t:.1f} | "
              f"{'; '.join(diff) or '—'} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-zoo", action="store_true")
    ap.add_argument("--only", choices=["resnet18", "zoo", "tiny"], default=None)
    ap.add_argument("--long", action="store_true", help="resnet18 with the long fixed budgets too")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-checks-")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    if args.only in (None, "resnet18"):
        resnet18_section(tmp, "cpu")
        if args.long:
            resnet18_section(tmp, "cpu", long=True)
        if torch.cuda.is_available():
            resnet18_section(tmp, "cuda")
    if args.only in (None, "zoo") and not args.skip_zoo:
        zoo_section(tmp)
    if args.only not in (None, "tiny"):
        return

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
