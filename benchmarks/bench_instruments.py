"""Instrument overhead: tiny_cnn on digits, every instrument attached vs a plain PyTorch loop, one process.

Prints markdown tables: the median wall time of each configuration and its ratio to the plain loop
(same model, data, seed, Adam, DataLoader order and per-epoch whole-test-set evaluation), with the
per-step losses asserted IDENTICAL (instruments must not change training); then the memory of the
instruments over 10,000 steps (tracemalloc and RSS), which must stay flat once the buffers are full.

The "your loop" rows are a hand-written loop on the session's device as it is and with ``wb.watch``
(two added lines: ``w.step(loss)``, ``w.epoch()``); the watched loop must cost at most 1.10x of it.

    .venv/bin/python benchmarks/bench_instruments.py [--epochs 5] [--repeats 5] [--memory-steps 10000]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
import tracemalloc
from types import SimpleNamespace

import psutil
import torch
import torch.nn.functional as F

import workbench as wb
from workbench.instruments import attach, detach
from workbench.train import evaluate


def plain_loop(s, epochs: int, lr: float = 1e-3) -> list[float]:
    """What a person writes by hand: Adam, the session's seeded loader, whole-set eval per epoch."""
    s.seed_everything(s.seed)
    model = s.new_model(seed=s.seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = s.loader("train", shuffle=True, seed=s.seed)
    losses = []
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(s.device), y.to(s.device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        evaluate(s, model)
    return losses


def user_loop(s, epochs: int, instruments=None, lr: float = 1e-3) -> list[float]:
    """A loop as a person writes it on any device, its losses kept on the device (read once at the end);
    with ``instruments`` it is watched (``wb.watch``: the run stored, the instruments attached) by two lines."""
    s.seed_everything(s.seed)
    model = s.new_model(seed=s.seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = s.loader("train", shuffle=True, seed=s.seed)
    w = wb.watch(model, opt, session=s, instruments=instruments) if instruments is not None else None
    losses = []
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if w is not None:
                w.step(loss)  # watched: the loss stays on the device, read in batches by the run's step log
            else:
                losses.append(loss.detach())
        if w is not None:
            w.epoch()  # the whole held-out set, as the plain loop's evaluate below
        else:
            evaluate(s, model)
    if w is None:
        return torch.stack(losses).tolist()
    w.close()
    detach(s)
    return [r["loss"] for r in w.run.step_records]


def fit_loop(s, epochs: int, cadence, checkpoint: bool = False) -> list[float]:
    detach(s)
    if cadence != "none":
        attach(s, "default", every=None if cadence == "default" else cadence)
    run = s.fit(epochs=epochs, lr=1e-3, checkpoint=checkpoint)
    detach(s)
    return [r["loss"] for r in run.step_records]


def overhead(epochs: int, repeats: int, only: list[str] | None = None) -> list[dict]:
    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tempfile.mkdtemp(prefix="bench-inst-"))
    configs = {
        "plain PyTorch loop": lambda: plain_loop(s, epochs),
        "session.fit, no instruments": lambda: fit_loop(s, epochs, "none"),
        "session.fit + checkpoints, no instruments": lambda: fit_loop(s, epochs, "none", checkpoint=True),
        "all instruments, default cadence": lambda: fit_loop(s, epochs, "default"),
        "all instruments, every 16": lambda: fit_loop(s, epochs, 16),
        "all instruments, every 4": lambda: fit_loop(s, epochs, 4),
        "all instruments, every 1": lambda: fit_loop(s, epochs, 1),
        "your loop, losses on the device": lambda: user_loop(s, epochs),
        "your loop + wb.watch, no instruments": lambda: user_loop(s, epochs, instruments=[]),
        "your loop + wb.watch, all instruments": lambda: user_loop(s, epochs, instruments="default"),
    }
    if only:  # e.g. --only "your loop": the plain loop, bare fit and the rows named, for a quieter comparison
        keep = ("plain PyTorch loop", "session.fit, no instruments", "your loop, losses on the device")
        configs = {k: v for k, v in configs.items() if k in keep or any(o in k for o in only)}
    reference = configs["plain PyTorch loop"]()  # warm-up, and the losses every config must reproduce
    times = {k: [] for k in configs}
    order = random.Random(0)
    for _ in range(repeats):  # interleaved, so load from other processes hits every config alike
        # in a new order each round: a config that always follows a heavy one (its garbage, its cache
        # misses) measured up to 6% slow in a fixed order
        for name in order.sample(list(configs), len(configs)):
            fn = configs[name]
            gc.collect()
            t0 = time.perf_counter()
            losses = fn()
            times[name].append(time.perf_counter() - t0)
            assert losses == reference, f"{name}: per-step losses differ from the plain loop"
    base = statistics.median(times["plain PyTorch loop"])
    fit0 = statistics.median(times["session.fit, no instruments"])
    own = statistics.median(times["your loop, losses on the device"])
    # the fastest of the repeats too: on a shared machine the slow ones are other processes' time
    return [{"config": k, "median_s": statistics.median(v), "ratio": statistics.median(v) / base,
             "min_ratio": min(v) / min(times["plain PyTorch loop"]),
             "vs_fit": statistics.median(v) / fit0, "vs_own": statistics.median(v) / own, "steps": len(reference)}
            for k, v in times.items()]


def memory(steps: int, cadence) -> list[dict]:
    """Drive the session's events for ``steps`` steps (a hand loop, so only the instruments keep memory)."""
    train, test = wb.datasets.digits()
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tempfile.mkdtemp(prefix="bench-mem-"))
    attach(s, "default", every=cadence)
    model = s.new_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = s.loader("train", seed=0)
    run = SimpleNamespace(id="memory", log=lambda r: None, stop=lambda: None, model=model)
    trainer = SimpleNamespace(model=model, optimizer=opt, task=s.task, epoch=0, step=0,
                              steps_per_epoch=len(loader), session=s)
    proc = psutil.Process()
    marks = {1000, 2000, 5000, steps // 2, steps}
    rows = []
    tracemalloc.start()
    s.emit("run_start", run=run, trainer=trainer)
    step = 0
    while step < steps:
        for x, y in loader:
            step += 1
            trainer.step = step
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            s.emit("after_backward", run=run, trainer=trainer, step=step, model=model, optimizer=opt)
            opt.step()
            s.emit("step_end", run=run, trainer=trainer, step=step, epoch=step / len(loader), data_loss=loss.item(),
                   reg_loss=0.0, model=model, x=x, y=y, output=out)
            if step in marks:
                gc.collect()
                cur, _ = tracemalloc.get_traced_memory()
                rows.append({"step": step, "tracemalloc_MB": cur / 2**20, "rss_MB": proc.memory_info().rss / 2**20,
                             "records": sum(len(i.records) for i in s.instruments)})
            if step >= steps:
                break
        trainer.epoch += 1
        s.emit("epoch_end", run=run, trainer=trainer, epoch=trainer.epoch, step=None,
               row={"epoch": trainer.epoch, "step": step, "train_loss": 0.0, "val_loss": 0.0,
                    "train_metric": 0.0, "val_metric": 0.0, "lr": 1e-3})
    tracemalloc.stop()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory-steps", type=int, default=10000)
    ap.add_argument("--memory-cadence", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", action="append", default=None, help="configurations whose name contains this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = overhead(args.epochs, args.repeats, args.only)
    print(f"\n### Instrument overhead: tiny_cnn on digits, {args.epochs} epochs ({rows[0]['steps']} steps), "
          f"median of {args.repeats}, {torch.get_num_threads()} thread(s); per-step losses identical in every row\n")
    print("| configuration | median s | ratio to plain loop | fastest vs fastest plain | ratio to bare fit | "
          "ratio to your loop |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['median_s']:.3f} | {r['ratio']:.3f} | {r['min_ratio']:.3f} | {r['vs_fit']:.3f} "
              f"| {r['vs_own']:.3f} |")

    if args.memory_steps:
        mem = memory(args.memory_steps, args.memory_cadence)
        print(f"\n### Instrument memory over {args.memory_steps} steps (all instruments, every "
              f"{args.memory_cadence} steps; buffers fill, then stay flat)\n")
        print("| step | tracemalloc MB | RSS MB | buffered records |")
        print("|---:|---:|---:|---:|")
        for r in mem:
            print(f"| {r['step']} | {r['tracemalloc_MB']:.2f} | {r['rss_MB']:.1f} | {r['records']} |")
        half = next(r for r in mem if r["step"] == args.memory_steps // 2)
        growth = mem[-1]["tracemalloc_MB"] - half["tracemalloc_MB"]
        print(f"\ngrowth over the second half: {growth:+.3f} MB (tracemalloc), "
              f"{mem[-1]['rss_MB'] - half['rss_MB']:+.1f} MB (RSS)")


if __name__ == "__main__":
    main()
