"""Runs on disk: ``<root>/<run-id>/`` with config.json, status.json, metrics.jsonl and checkpoints.

JSON and checkpoints are written atomically (temp file + rename); metrics are appended a line per
record and flushed, so a killed process loses at most the step in flight. Checkpoints hold only
tensors and plain values and load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
import threading
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch

from workbench.errors import RunError

STATUSES = ("running", "completed", "stopped", "diverged", "failed", "interrupted")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:  # rename makes it atomic for a killed process; no fsync on the hot path
        f.write(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=_jsonable, allow_nan=True).encode())


def atomic_torch_save(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    """Every complete line of a metrics file; a half-written last line (killed process) is skipped."""
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out


class Run:
    """One training run: its config, live metrics, status, checkpoints and controls.

    ``metrics`` is the per-epoch table (train/val loss and metric, examples evaluated), ``steps``
    the per-step table (data loss, reg loss). ``stop()`` asks a background run to stop after the
    step in flight; ``wait()`` joins it.
    """

    def __init__(self, store: RunStore, run_id: str, config: dict, status: dict | None = None):
        self.store, self.id, self.config = store, run_id, config
        self.dir = store.root / run_id
        self._status = status or {"status": "running"}
        self.step_records: list[dict] = []
        self.epoch_records: list[dict] = []
        self.extra_records: list[dict] = []
        self._metrics_file = None
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.model = None  # the trained module while this process holds it

    # -- status ---------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._status.get("status", "running")

    def set_status(self, status: str, **extra) -> None:
        self._status.update(status=status, **extra)
        if status != "running":
            self._status["ended"] = time.time()
        atomic_write_json(self.dir / "status.json", self._status)

    @property
    def info(self) -> dict:
        return dict(self._status)

    # -- metrics --------------------------------------------------------------------------------
    def log(self, record: dict) -> None:
        """Append one record ("step", "epoch" or another kind) in memory and on disk, flushed."""
        kind = record.get("kind")
        (self.step_records if kind == "step" else self.epoch_records if kind == "epoch"
         else self.extra_records).append(record)
        if self._metrics_file is None:
            self._metrics_file = os.open(self.dir / "metrics.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # one unbuffered write per record: the OS has it as soon as the step is done
        os.write(self._metrics_file, (json.dumps(record, default=_jsonable) + "\n").encode())

    def close(self) -> None:
        if self._metrics_file is not None:
            os.close(self._metrics_file)
            self._metrics_file = None

    def export_csv(self) -> None:
        """metrics.csv (per epoch) and steps.csv (per step) beside metrics.jsonl, for spreadsheets."""
        for name, records in (("metrics.csv", self.epoch_records), ("steps.csv", self.step_records)):
            columns = list(dict.fromkeys(k for r in records for k in r if k != "kind"))
            out = io.StringIO()
            writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
            atomic_write_bytes(self.dir / name, out.getvalue().encode())

    @property
    def metrics(self) -> pd.DataFrame:
        return _frame(self.epoch_records, "epoch")

    @property
    def steps(self) -> pd.DataFrame:
        return _frame(self.step_records, "step")

    def records(self, kind: str) -> pd.DataFrame:
        return _frame([r for r in self.extra_records if r.get("kind") == kind], None)

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, state: dict, epoch: int) -> Path:
        d = self.dir / "checkpoints"
        d.mkdir(exist_ok=True)
        path = d / f"epoch-{epoch:04d}.pt"
        atomic_torch_save(path, state)
        return path

    def checkpoints(self) -> list[Path]:
        d = self.dir / "checkpoints"
        return sorted(d.glob("epoch-*.pt")) if d.exists() else []

    def load_checkpoint(self, path: Path | None = None) -> dict:
        """A checkpoint (the last one by default), loaded with ``weights_only=True``."""
        paths = self.checkpoints()
        if path is None:
            if not paths:
                raise RunError(f"run {self.id} has no checkpoint")
            path = paths[-1]
        return torch.load(path, map_location="cpu", weights_only=True)

    # -- controls -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the run to stop after the step in flight (cooperative)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> Run:
        if self.thread is not None:
            self.thread.join(timeout)
        return self

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def __repr__(self) -> str:
        return f"Run({self.id!r}, status={self.status!r}, epochs={len(self.epoch_records)})"


class RunStore:
    """The folder of runs under a session's ``root``."""

    def __init__(self, root):
        self.root = Path(root)

    def create(self, config: dict, name: str | None = None) -> Run:
        self.root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{name + '-' if name else ''}{secrets.token_hex(3)}"
        (self.root / run_id).mkdir()
        run = Run(self, run_id, config, {"status": "running", "pid": os.getpid(), "started": time.time()})
        atomic_write_json(run.dir / "config.json", config)
        atomic_write_json(run.dir / "status.json", run._status)
        return run

    def load(self, run_id: str) -> Run:
        d = self.root / run_id
        if not (d / "config.json").exists():
            raise RunError(f"no run {run_id!r} under {self.root}")
        config = json.loads((d / "config.json").read_text())
        status = json.loads((d / "status.json").read_text()) if (d / "status.json").exists() else {}
        if status.get("status", "running") == "running" and not _alive(status.get("pid")):
            status["status"] = "interrupted"
        run = Run(self, run_id, config, status)
        for r in read_jsonl(d / "metrics.jsonl"):
            kind = r.get("kind")
            (run.step_records if kind == "step" else run.epoch_records if kind == "epoch"
             else run.extra_records).append(r)
        return run

    def truncate_after(self, run: Run, step: int, epoch: int) -> None:
        """Drop records past a checkpoint so a resumed run continues a consistent history."""
        run.close()
        keep = [r for r in read_jsonl(run.dir / "metrics.jsonl")
                if not ((r.get("kind") == "step" and r.get("step", 0) > step)
                        or (r.get("kind") == "epoch" and r.get("epoch", 0) > epoch))]
        atomic_write_bytes(run.dir / "metrics.jsonl",
                           "".join(json.dumps(r, default=_jsonable) + "\n" for r in keep).encode())
        run.step_records = [r for r in keep if r.get("kind") == "step"]
        run.epoch_records = [r for r in keep if r.get("kind") == "epoch"]
        run.extra_records = [r for r in keep if r.get("kind") not in ("step", "epoch")]

    def ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "config.json").exists())

    def table(self, live: dict | None = None) -> pd.DataFrame:
        """One row per run on disk: id, status, epochs, last metrics and the main config values."""
        rows = []
        for rid in self.ids():
            try:
                run = live[rid] if live and rid in live else self.load(rid)
            except Exception as e:  # noqa: BLE001 - one broken run folder must not hide the others
                rows.append({"id": rid, "status": "unreadable", "error": str(e)})
                continue
            last = run.epoch_records[-1] if run.epoch_records else {}
            c = run.config
            rows.append({
                "id": rid, "status": run.status, "model": c.get("model"), "seed": c.get("seed"),
                "epochs": last.get("epoch", 0), "steps": len(run.step_records),
                "lr": c.get("lr"), "optimizer": c.get("optimizer"), "weight_decay": c.get("weight_decay"),
                "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                "train_metric": last.get("train_metric"), "val_metric": last.get("val_metric"),
                "parent": c.get("parent"), "name": c.get("name"), "started": run.info.get("started"),
            })
        cols = ["id", "status", "model", "seed", "epochs", "steps", "lr", "optimizer", "weight_decay",
                "train_loss", "val_loss", "train_metric", "val_metric", "parent", "name", "started"]
        return pd.DataFrame(rows, columns=cols if rows and "error" not in rows[0] else None) \
            if rows else pd.DataFrame(columns=cols)


def _frame(records, index):
    if not records:
        return pd.DataFrame()
    df = pd.DataFrame(records).drop(columns=["kind"], errors="ignore")
    return df


def _alive(pid) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


def _jsonable(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return repr(o)
