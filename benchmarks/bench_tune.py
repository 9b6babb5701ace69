"""Tuning on digits (recipe B.1, B.2): how good the LR finder's pick is, what it costs, how search scales.

1. For linear, mlp and tiny_cnn and two seeds: the LR finder's suggestions next to the best fixed LR
   of a sweep (2 epochs each, whole test set), and the ratio suggestion / best (the issue asks <= 10x).
2. Cost: the LR range test (sweep only, and with the B.1 coarse runs) in units of one training epoch,
   timed side by side in this process.
3. Scale: wall time of N search trials (tiny_cnn, 2 epochs each) by 1 worker process vs 2 worker
   processes on one study (SQLite and journal file), process start-up included, as a ratio.

    .venv/bin/python benchmarks/bench_tune.py [--trials 8] [--skip-scale | --only-scale]

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)

WORKER = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    import workbench as wb
    from workbench.demo import demo_session
    from workbench.tune.search import search
    root, storage, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = demo_session(root=root, model=wb.models.tiny_cnn)
    search(s, trials=n, total_trials=n, epochs=2, study_name="bench", storage=None if storage == "-" else storage,
           checkpoint=False)
""")


def quality(seeds=(0, 1)) -> list[dict]:
    import workbench as wb

    train, test = wb.datasets.digits()
    rows = []
    for factory in (wb.models.linear, wb.models.mlp, wb.models.tiny_cnn):
        for seed in seeds:
            with tempfile.TemporaryDirectory() as root:
                s = wb.Session(factory, train, test, seed=seed, root=root)
                r = s.lr_find(coarse_iters=100)
                acc = {lr: s.fit(epochs=2, lr=lr, checkpoint=False).metrics["val_metric"].iloc[-1] for lr in GRID}
            best = max(acc, key=acc.get)
            g = r.suggestions
            rows.append({"model": factory.__name__, "seed": seed, "middle": g["middle"], "valley": g["valley"],
                         "min/10": g["min_div_10"], "coarse": g.get("coarse"), "best fixed": best,
                         "acc at best": acc[best], "middle / best": g["middle"] / best})
    return rows


def cost(repeats=3) -> list[dict]:
    import workbench as wb

    train, test = wb.datasets.digits()
    out = []
    for factory in (wb.models.mlp, wb.models.tiny_cnn):
        t_epoch, t_sweep, t_full = [], [], []
        with tempfile.TemporaryDirectory() as root:
            s = wb.Session(factory, train, test, seed=0, root=root)
            for _ in range(repeats):  # interleaved, so load on the machine hits all three alike
                t0 = time.perf_counter()
                s.fit(epochs=1, lr=1e-2, checkpoint=False)
                t1 = time.perf_counter()
                s.lr_find(coarse=None)
                t2 = time.perf_counter()
                s.lr_find()
                t3 = time.perf_counter()
                t_epoch.append(t1 - t0)
                t_sweep.append(t2 - t1)
                t_full.append(t3 - t2)
        e = statistics.median(t_epoch)
        out.append({"model": factory.__name__, "steps/epoch": len(s.loader("train")),
                    "sweep (100 steps) / epoch": statistics.median(t_sweep) / e,
                    "sweep + coarse (500 steps) / epoch": statistics.median(t_full) / e})
    return out


def scale(trials: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        for backend in ("sqlite", "journal"):
            times = {}
            for workers in (1, 2):
                root = Path(tmp) / f"{backend}-{workers}"
                storage = "-" if backend == "sqlite" else str(root / "study.log")
                t0 = time.perf_counter()
                procs = [subprocess.Popen([sys.executable, str(script), str(root), storage, str(trials)],
                                          cwd=ROOT) for _ in range(workers)]
                if any(p.wait() for p in procs):
                    raise SystemExit("a worker failed")
                times[workers] = time.perf_counter() - t0
            rows.append({"storage": backend, "trials": trials, "1 worker (s)": times[1], "2 workers (s)": times[2],
                         "ratio 2/1": times[2] / times[1]})
    return rows


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--only-scale", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.only_scale:
        print(table(scale(args.trials)))
        return
    print("## LR finder suggestion vs the best fixed LR (B.1), digits, 2 epochs per fixed LR\n")
    print(table(quality()), "\n")
    print("## Cost of the LR range test in epochs of training\n")
    print(table(cost()), "\n")
    if not args.skip_scale:
        print("## Search: one study, 1 vs 2 worker processes (B.2)\n")
        print(table(scale(args.trials)))


if __name__ == "__main__":
    main()
