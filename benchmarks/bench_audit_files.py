"""Audit speed on folders of JPEG files (recipe I.2): 10k and 40k RGB JPEGs at 128 and 256 px, cleanvision beside it.

The benchmark makes the folders itself (smooth random colour images with noise, two classes, a
few exact copies), then audits each in a fresh process (every issue type except label_issue), so
the peak memory is that run's own: the main process's peak resident set plus the decoder workers'
unique memory, sampled. cleanvision runs on the same folders (``--cleanvision-max`` files at most).

    .venv/bin/python benchmarks/bench_audit_files.py [--sizes 10000 40000] [--px 128 256] [--cleanvision-max 10000]

Besides wall time the table gives images per CPU second (this process and its workers, user +
system), which a shared machine disturbs far less. Targets: >= 1,500 images/s on 2 cores at 128 px,
t(40k)/t(10k) <= 4.5, peak memory under 1.5 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from fresh import run_child  # noqa: E402


def _write_images(args):
    """Write JPEGs ``start..stop`` of a folder: every 500th is a copy of the one before (a duplicate)."""
    folder, px, start, stop = args
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(start)
    for i in range(start, stop):
        if i % 500 == 1 and i > start:
            shutil.copyfile(_name(folder, i - 1), _name(folder, i))
            continue
        base = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize((px, px), Image.BICUBIC)
        a = np.asarray(base, np.float32) + rng.normal(0, 8, (px, px, 3))
        Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(_name(folder, i), quality=90)
    return stop - start


def _name(folder, i) -> str:
    return os.path.join(folder, ("a", "b")[i % 2], f"{i:06d}.jpg")


def make_folder(folder: Path, n: int, px: int) -> Path:
    """A class-folder tree of ``n`` ``px`` x ``px`` JPEGs (made once, in parallel)."""
    done = folder / ".complete"
    if done.exists():
        return folder
    for c in ("a", "b"):
        (folder / c).mkdir(parents=True, exist_ok=True)
    step = 1000
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_images, [(str(folder), px, s, min(s + step, n)) for s in range(0, n, step)]))
    done.touch()
    return folder


class PeakMemory:
    """Peak of this process's resident memory plus its children's unique memory, sampled every 0.1 s."""

    def __init__(self):
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                total = self.proc.memory_info().rss
                for c in self.proc.children(recursive=True):
                    try:
                        total += c.memory_full_info().uss
                    except Exception:  # noqa: BLE001 - a worker that just exited
                        pass
                self.peak = max(self.peak, total)
            except Exception:  # noqa: BLE001
                pass
            self._stop.wait(0.1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the decoder workers)."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_workbench(folder: str) -> dict:
    import resource

    from workbench.data import ISSUE_TYPES, audit
    from workbench.data.decode import clear_cache

    issues = tuple(i for i in ISSUE_TYPES if i != "label_issue")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    clear_cache()
    with PeakMemory() as mem:
        t, cpu = time.perf_counter(), _cpu_seconds()
        report = audit(folder, issues=issues, previews=0)
        sec, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    counts = report.summary["count"].to_dict()
    main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": sec, "cpu_s": cpu, "peak_mib": max(mem.peak / 2**20, main_peak),
            "before_mib": before, "stages": report.meta["seconds"], "found": {k: v for k, v in counts.items() if v}}


def run_cleanvision(folder: str) -> dict | None:
    try:
        from cleanvision import Imagelab
    except ImportError:
        return None
    with PeakMemory() as mem:
        t, cpu = time.perf_counter(), _cpu_seconds()
        lab = Imagelab(data_path=folder)
        lab.find_issues()
        sec, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
    found = {k: int(v) for k, v in lab.issue_summary.set_index("issue_type")["num_images"].items() if v}
    return {"seconds": sec, "cpu_s": cpu, "peak_mib": mem.peak / 2**20, "found": found}


def _child(kind: str, folder: Path) -> dict | None:
    """One measurement in a fresh interpreter (its own peak memory, no warm cache)."""
    return run_child(__file__, kind, folder)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    p.add_argument("--px", type=int, nargs="+", default=[128, 256])
    p.add_argument("--cleanvision-max", type=int, default=10_000,
                   help="largest folder given to cleanvision (it manages ~100 images/s); 0 skips it")
    p.add_argument("--repeat", type=int, default=2, help="rounds; each folder's fastest run counts")
    p.add_argument("--dir", help="where to make the folders (kept for a rerun); default a temporary folder")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(run_workbench(a.child[1]) if a.child[0] == "workbench" else run_cleanvision(a.child[1])))
        return 0
    tmp = None if a.dir else tempfile.TemporaryDirectory()
    base = Path(a.dir or tmp.name)
    try:
        folders = {(px, n): make_folder(base / f"jpeg{px}-{n}", n, px) for px in a.px for n in a.sizes}
        best = {}
        for _ in range(a.repeat):
            for key, folder in folders.items():
                r = _child("workbench", folder)
                if key not in best or ("error" not in r and r["seconds"] < best[key].get("seconds", float("inf"))):
                    best[key] = r
        rows = []
        for (px, n), folder in folders.items():
            wb, first = best[(px, n)], best[(px, a.sizes[0])]
            cv = _child("cleanvision", folder) if n <= a.cleanvision_max else None
            if "error" in wb:
                rows.append(f"| {px} | {n:,} | error: {wb['error']} | | | | |")
                continue
            cv_cell = "skipped (size)" if n > a.cleanvision_max else "not installed"
            if cv and "error" not in cv:
                cv_cell = (f"{cv['seconds']:.1f} s ({n / cv['seconds']:,.0f} img/s, {n / cv['cpu_s']:,.0f} per "
                           f"CPU s, peak {cv['peak_mib']:,.0f} MiB); {cv['seconds'] / wb['seconds']:.1f}x slower")
            elif cv:
                cv_cell = f"error: {cv['error']}"
            rows.append(f"| {px} | {n:,} | {wb['seconds']:.2f} | {n / wb['seconds']:,.0f} | "
                        f"{n / wb['cpu_s']:,.0f} | {wb['seconds'] / first['seconds']:.2f} | {wb['peak_mib']:,.0f} "
                        f"| {cv_cell} |")
            print(f"{px}px {n}: stages {wb['stages']} found {wb['found']}"
                  + (f"; cleanvision found {cv['found']}" if cv and "found" in cv else ""), file=sys.stderr)
        print(f"| px | JPEG files | workbench s | images/s | images per CPU s | t / t({a.sizes[0]:,}) "
              "| peak MiB (all processes) | cleanvision |")
        print("|---:|---:|---:|---:|---:|---:|---:|---|")
        print("\n".join(rows))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
