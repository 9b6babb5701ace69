"""GPU speed: ``session.fit`` vs a plain PyTorch loop on torchvision resnet18, in one process, interleaved.

resnet18 with the small-input stem, 20,000 3x32x32 images (made here: class-dependent colour blobs
plus noise, no download), batch 256, 4 loader workers with pinned memory, the whole test set
evaluated each epoch, Adam. Rows, each the median over ``--repeats`` interleaved rounds:

- plain loop, float32: what a careful person writes (no ``.item()`` per step, losses read per epoch)
- ``session.fit`` (checkpoint at every epoch, as by default)
- ``session.fit`` with every default instrument
- plain loop, bf16 autocast, and ``session.fit(precision="bf16")``

Acceptance (the engine issue): fit <= 1.05x the plain loop, with the default instruments <= 1.10x,
bf16 fit <= 1.05x the plain bf16 loop. Skips (exit 0) without CUDA unless ``--device cpu``
(a smoke run of the script on a small configuration; its numbers mean nothing for a GPU).

    python benchmarks/bench_gpu.py [--epochs 3] [--repeats 3] [--n 20000] [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

import workbench as wb
from workbench.engine.evaluate import evaluate
from workbench.engine.precision import autocast
from workbench.instruments import attach, detach


def blobs(n: int, seed: int, size: int = 32, classes: int = 10):
    """CIFAR-shaped data with learnable structure: each class a colour and a blob position, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centres = torch.rand(classes, 2, generator=g) * (size - 8) + 4
    colours = torch.rand(classes, 3, generator=g)
    d2 = (yy[None] - centres[y, 0, None, None]) ** 2 + (xx[None] - centres[y, 1, None, None]) ** 2
    blob = torch.exp(-d2 / 30.0)[:, None] * colours[y][:, :, None, None]
    x = blob + 0.3 * torch.randn(n, 3, size, size, generator=g)
    return x.float(), y


def resnet18(num_classes=10, in_channels=3):
    return wb.models.torchvision_model("resnet18", num_classes=num_classes, in_channels=in_channels)


def plain(s, epochs: int, precision: str) -> float:
    """The hand-written loop: same model, data, loader (workers, pinned memory), Adam and per-epoch evaluation."""
    model = s.new_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = s.loader("train", shuffle=True, seed=s.seed)
    for _ in range(epochs):
        model.train()
        total = torch.zeros((), device=s.device)
        for x, y in loader:
            x, y = x.to(s.device, non_blocking=True), y.to(s.device, non_blocking=True)
            with autocast(s.device, precision):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
        float(total)  # the epoch's loss, read once
        evaluate(s, model, "eval", precision=precision)
    return time.perf_counter()


def fit(s, epochs: int, precision: str, instruments: bool) -> float:
    detach(s)
    if instruments:
        attach(s, "default")
    run = s.fit(epochs=epochs, lr=1e-3, precision=precision)
    detach(s)
    assert run.status == "completed", run.status
    return time.perf_counter()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; skipped (run it on a GPU machine)")
        return 0
    x, y = blobs(args.n, 0)
    xt, yt = blobs(max(args.n // 5, 1000), 1)
    s = wb.Session(resnet18, (x, y), (xt, yt), seed=0, device=args.device, batch_size=args.batch,
                   num_workers=args.workers, root=tempfile.mkdtemp(prefix="bench-gpu-"))
    configs = {
        "plain loop, float32": lambda: plain(s, args.epochs, "32"),
        "session.fit": lambda: fit(s, args.epochs, "32", False),
        "session.fit + default instruments": lambda: fit(s, args.epochs, "32", True),
        "plain loop, bf16": lambda: plain(s, args.epochs, "bf16"),
        'session.fit(precision="bf16")': lambda: fit(s, args.epochs, "bf16", False),
    }
    for fn in configs.values():  # warm-up: cuDNN autotuning, workers, allocator
        fn()
    times = {k: [] for k in configs}
    for _ in range(args.repeats):
        for name, fn in configs.items():  # interleaved: drift on the machine falls on every row alike
            gc.collect()
            if s.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            t1 = fn()
            if s.device.type == "cuda":
                torch.cuda.synchronize()
                t1 = time.perf_counter()
            times[name].append(t1 - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = {"32": med["plain loop, float32"], "bf16": med["plain loop, bf16"]}
    gpu = torch.cuda.get_device_name() if s.device.type == "cuda" else "CPU (smoke run)"
    print(f"\n{gpu}; resnet18 (small-input stem), {args.n} 3x32x32 images, batch {args.batch}, "
          f"{args.workers} workers, {args.epochs} epochs, median of {args.repeats}\n")
    print("| configuration | median s | ratio to its plain loop | target |")
    print("|---|---:|---:|---:|")
    targets = {"session.fit": 1.05, "session.fit + default instruments": 1.10, 'session.fit(precision="bf16")': 1.05}
    for name, t in med.items():
        ref = base["bf16"] if "bf16" in name else base["32"]
        target = targets.get(name)
        print(f"| {name} | {t:.2f} | {t / ref:.3f} | {'' if target is None else f'<= {target:.2f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
