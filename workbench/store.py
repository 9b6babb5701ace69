"""Runs on disk: ``<root>/<run-id>/`` with config.json, status.json, metrics.jsonl and checkpoints.

JSON and checkpoints are written atomically (temp file + rename; the temp file is removed when the
write fails); metrics are appended and flushed, a batch of records per write, so a killed process
loses at most the records in flight. Checkpoints hold only tensors and plain values and load with
``torch.load(weights_only=True)``; a damaged one is skipped for the one before it, and said so.
One live process owns a run at a time (``workbench.runlock``); a run whose owner died reads
"interrupted". A damaged file is named in the error, and the listing shows the run as "damaged".
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import secrets
import threading
import time
import warnings
from datetime import datetime
from pathlib import Path

import pandas as pd

from workbench.errors import ConfigError, DamagedRunError, RunError, StorageError, WorkbenchError
from workbench.records import RecordWindow, iter_records, read_records
from workbench.runfiles import (
    CHECKPOINT_NAME,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    checkpoint_key,
    jsonable,
    load_checkpoint_file,
    read_json_object,
    storage_error,
    tmp_for,
    write_in_place,
)
from workbench.runlock import RunLock, owner_alive

STATUSES = ("running", "completed", "stopped", "diverged", "failed", "interrupted", "damaged")
TERMINAL = ("completed", "stopped", "diverged", "failed")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def read_jsonl(path: Path) -> list[dict]:
    """Every good line of a metrics file; bad ones (e.g. the half-written last line of a killed process) skipped."""
    return read_records(path)[0]


# -- one run --------------------------------------------------------------------------------------
class Run:
    """One training run: its config, live metrics, status, checkpoints and controls.

    ``metrics`` is the per-epoch table (train/val loss and metric, examples evaluated), ``steps``
    the per-step table (data loss, reg loss), read from disk. ``step_records`` keeps the recent
    steps in memory (older ones come back from disk). ``stop()`` asks a background run to stop after
    the step in flight; ``wait()`` joins it.
    """

    def __init__(self, store: RunStore, run_id: str, config: dict, status: dict | None = None):
        self.store, self.id, self.config = store, run_id, config
        self.dir = store.root / run_id
        self._status = status or {"status": "running"}
        self.step_records = RecordWindow(self._disk_steps)
        self.epoch_records: list[dict] = []
        self.extra_records: list[dict] = []
        self.bad_lines: list[int] = []  # metrics.jsonl lines skipped when the run was read
        self._metrics_file = None
        self._lock = RunLock(self.dir, run_id)
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self._model = None  # the trained module while this process holds it
        # set by the session for a run read from disk: loads the weights it ended with when first asked
        self.model_loader = None
        self._model_lock = threading.Lock()

    @property
    def model(self):
        """The trained module: the live one while this process holds it, else (a finished run read from
        disk) the weights it ended with, loaded from its checkpoint on first use and kept by this Run."""
        if self._model is None and self.model_loader is not None and self.status != "running":
            with self._model_lock:  # a view's thread and the caller's may ask at once: one load
                if self.model_loader is not None:
                    self._model = self.model_loader(self)  # a damaged checkpoint raises here, and again if asked
                    self.model_loader = None  # loaded once; a run without weights stays None
        return self._model

    @model.setter
    def model(self, module) -> None:
        self._model = module

    # -- status ---------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        return self._status.get("status", "running")

    def set_status(self, status: str, **extra) -> None:
        """Record the status; a "completed" run whose last epoch has a NaN/inf loss is recorded "diverged"."""
        if status == "completed" and self._last_epoch_not_finite():
            status = "diverged"
            extra.setdefault("reason", "the last epoch's loss is NaN or infinite (the weights diverged)")
        self._status.update(status=status, **extra)
        if status != "running":
            self._status["ended"] = time.time()
        try:
            self._write_status()
        finally:
            if status in TERMINAL:
                self.release()

    def _write_status(self) -> None:
        path = self.dir / "status.json"
        try:
            atomic_write_json(path, self._status)
        except StorageError:
            if not path.exists():
                raise
            # a full disk has no room for a temp file, but status.json's own block can take the news
            write_in_place(path, json.dumps(self._status, default=jsonable).encode())

    def _last_epoch_not_finite(self) -> bool:
        last = self.epoch_records[-1] if self.epoch_records else {}
        vals = [last.get(k) for k in ("train_loss", "val_loss") if isinstance(last.get(k), (int, float))]
        return any(not math.isfinite(v) for v in vals)

    @contextlib.contextmanager
    def failing_on_error(self):
        """Mark the run "failed" (with the error) if the block raises while it is still "running"."""
        try:
            yield self
        except BaseException as e:
            if self.status == "running":
                self.error = str(e)
                with contextlib.suppress(WorkbenchError, OSError):
                    self.set_status("failed", error=f"{type(e).__name__}: {e}")
                self.close()
            raise

    @property
    def info(self) -> dict:
        return dict(self._status)

    # -- ownership ------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Own the run for training (RunLockedError naming the owner's PID when a live one has it);
        temp files left by a killed owner are removed."""
        owner = self._lock.acquire()
        self._status.update(pid=owner["pid"], pid_start=owner["pid_start"])
        for tmp in list(self.dir.glob(".*.tmp")) + list(self.dir.glob("checkpoints/.*.tmp")):
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        self._lock.release()

    @property
    def owned(self) -> bool:
        return self._lock.held

    # -- metrics --------------------------------------------------------------------------------
    def log(self, record: dict) -> None:
        """Append one record ("step", "epoch" or another kind) on disk and in memory."""
        self.log_many([record])

    def log_many(self, records: list[dict]) -> None:
        """Append several records in one write: on disk first, so memory never holds what disk lacks."""
        if not records:
            return
        data = "".join(json.dumps(r, default=jsonable) + "\n" for r in records).encode()
        path = self.dir / "metrics.jsonl"
        try:
            if self._metrics_file is None:
                self._metrics_file = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(self._metrics_file, view):]
        except OSError as e:
            raise storage_error(path, e) from e
        for r in records:
            self._remember(r)

    def _remember(self, record: dict) -> None:
        kind = record.get("kind")
        if kind == "step":
            self.step_records.append(record)
        else:
            (self.epoch_records if kind == "epoch" else self.extra_records).append(record)

    def _disk_steps(self):
        return (r for r in iter_records(self.dir / "metrics.jsonl") if r.get("kind") == "step")

    def _close_metrics(self) -> None:
        if self._metrics_file is not None:
            os.close(self._metrics_file)
            self._metrics_file = None

    def close(self) -> None:
        """Close the metrics file and give up ownership."""
        self._close_metrics()
        self.release()

    def export_csv(self) -> None:
        """metrics.csv (per epoch) and steps.csv (per step) beside metrics.jsonl, for spreadsheets.

        A write that fails (full disk) is a warning here: the JSONL file already holds every record.
        """
        try:
            for name, records in (("metrics.csv", self.epoch_records), ("steps.csv", self.step_records)):
                self._write_csv(self.dir / name, records)
        except StorageError as e:
            warnings.warn(f"run {self.id}: CSV export skipped: {e}", RuntimeWarning, stacklevel=2)

    @staticmethod
    def _write_csv(path: Path, records) -> None:
        columns = list(dict.fromkeys(k for r in records for k in r if k != "kind"))
        tmp = tmp_for(path)
        try:  # streamed to the temp file: the step history may be long
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
                writer.writeheader()
                writer.writerows(records)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise storage_error(path, e) from e

    @property
    def metrics(self) -> pd.DataFrame:
        return _frame(self.epoch_records)

    @property
    def steps(self) -> pd.DataFrame:
        return _frame(list(self.step_records))

    def records(self, kind: str) -> pd.DataFrame:
        return _frame([r for r in self.extra_records if r.get("kind") == kind])

    # -- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, state: dict, epoch: int, step: int | None = None) -> Path:
        """``epoch-0003.pt`` at the end of epoch 3; with ``step``, mid-epoch ``step-00001234-epoch-0003.pt``
        (``epoch`` = epochs completed before that step)."""
        d = self.dir / "checkpoints"
        d.mkdir(exist_ok=True)
        name = f"epoch-{epoch:04d}.pt" if step is None else f"step-{step:08d}-epoch-{epoch:04d}.pt"
        path = d / name
        atomic_torch_save(path, state)
        return path

    def checkpoints(self, mid_epoch: bool = False) -> list[Path]:
        """End-of-epoch checkpoints, oldest first; ``mid_epoch=True`` adds the mid-epoch ones in order."""
        d = self.dir / "checkpoints"
        if not d.exists():
            return []
        paths = [p for p in d.iterdir() if CHECKPOINT_NAME.match(p.name) and (mid_epoch or p.name.startswith("epoch-"))]
        return sorted(paths, key=checkpoint_key)

    def load_checkpoint(self, path: Path | None = None) -> dict:
        """The newest good checkpoint (or ``path``), loaded with ``weights_only=True``.

        A damaged newest checkpoint (truncated, corrupt) is skipped for the one before it, with a
        warning; the returned dict then names the skipped files under ``"skipped_checkpoints"``.
        """
        if path is not None:
            return load_checkpoint_file(Path(path))
        paths = self.checkpoints(mid_epoch=True)
        if not paths:
            raise RunError(f"run {self.id} has no checkpoint", fix="train it first, or resume it from scratch")
        skipped = []
        for p in reversed(paths):
            try:
                state = load_checkpoint_file(p)
            except DamagedRunError as e:
                skipped.append({"file": p.name, "error": e.problem})
                continue
            if skipped:
                warnings.warn(f"run {self.id}: skipped damaged checkpoint(s) "
                              f"{', '.join(s['file'] for s in skipped)}; using {p.name}", RuntimeWarning, stacklevel=2)
                state["skipped_checkpoints"] = [s["file"] for s in skipped]
                self._status["skipped_checkpoints"] = skipped
            return state
        raise DamagedRunError(f"every checkpoint of run {self.id} is damaged: "
                              + "; ".join(f"{s['file']} ({s['error']})" for s in skipped),
                              fix="start a new run with session.fit(...); the metrics on disk are kept")

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


# -- the folder of runs ---------------------------------------------------------------------------
class RunStore:
    """The folder of runs under a session's ``root``."""

    def __init__(self, root):
        self.root = Path(root)

    def create(self, config: dict, name: str | None = None) -> Run:
        """A new run folder, owned by this process, with config.json and status.json written."""
        if name is not None and not (isinstance(name, str) and RUN_NAME.match(name)):
            raise ConfigError(f"run name {name!r} cannot be part of a folder name",
                              fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            run_id = f"{stamp}-{name + '-' if name else ''}{secrets.token_hex(3)}"
            (self.root / run_id).mkdir()
        except OSError as e:
            raise storage_error(self.root, e) from e
        run = Run(self, run_id, config, {"status": "running", "started": time.time()})
        try:
            run.acquire()
            atomic_write_json(run.dir / "config.json", config)
            atomic_write_json(run.dir / "status.json", run._status)
        except BaseException:
            run.release()  # a run that could not be written is not left half on disk
            _remove_tree(run.dir)
            raise
        return run

    def _check_id(self, run_id) -> Path:
        if not isinstance(run_id, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", run_id):
            raise RunError(f"{run_id!r} is not a run id", fix="use an id from session.runs()")
        d = self.root / run_id
        if not (d / "config.json").exists():
            raise RunError(f"no run {run_id!r} under {self.root}", fix="use an id from session.runs()")
        return d

    def load(self, run_id: str) -> Run:
        """A run from disk: a damaged config is a DamagedRunError naming the file; a damaged status
        reads "damaged"; damaged metrics lines are skipped (their numbers in ``run.bad_lines``)."""
        d = self._check_id(run_id)
        config = read_json_object(d / "config.json", "config.json")
        status = self._read_status(d)
        if status.get("status") == "running" and not owner_alive(status.get("pid"), status.get("pid_start")):
            status["status"] = "interrupted"  # its owner died (or its PID now belongs to another process)
        run = Run(self, run_id, config, status)
        bad: list[int] = []
        for r in iter_records(d / "metrics.jsonl", bad):
            run._remember(r)
        run.bad_lines = bad
        return run

    @staticmethod
    def _read_status(d: Path) -> dict:
        if not (d / "status.json").exists():
            return {"status": "running"}  # killed before its first status write: no owner, so interrupted
        try:
            status = read_json_object(d / "status.json", "status.json")
        except DamagedRunError as e:
            return {"status": "damaged", "damaged": str(e)}
        if status.get("status", "running") not in STATUSES:
            return {"status": "damaged", "damaged": f"{d / 'status.json'} holds the unknown status "
                                                    f"{status.get('status')!r}"}
        return {"status": "running", **status}

    def truncate_after(self, run: Run, step: int, epoch: int) -> dict:
        """Drop records past a checkpoint so a resumed run continues a consistent history.

        Every good record up to the checkpoint is kept, also after a damaged line; the file is
        rewritten atomically and the damaged lines' numbers are recorded in status.json
        (``dropped_lines``) and a warning. Returns {"kept", "past_checkpoint", "dropped_lines"}.
        """
        run._close_metrics()
        records, bad = read_records(run.dir / "metrics.jsonl")
        keep = [r for r in records if not ((r.get("kind") == "step" and _num(r.get("step")) > step)
                                           or (r.get("kind") == "epoch" and _num(r.get("epoch")) > epoch))]
        atomic_write_bytes(run.dir / "metrics.jsonl",
                           "".join(json.dumps(r, default=jsonable) + "\n" for r in keep).encode())
        run.step_records.clear()
        run.epoch_records, run.extra_records, run.bad_lines = [], [], []
        for r in keep:
            run._remember(r)
        if bad:
            warnings.warn(f"run {run.id}: metrics.jsonl line(s) {_ranges(bad)} were damaged and dropped; "
                          f"the {len(keep)} good records up to the checkpoint are kept", RuntimeWarning, stacklevel=2)
            run._status["dropped_lines"] = run._status.get("dropped_lines", []) + bad
            run._write_status()
        return {"kept": len(keep), "past_checkpoint": len(records) - len(keep), "dropped_lines": bad}

    def ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "config.json").exists())

    def statuses(self) -> dict[str, str]:
        """Each run's status from its status.json alone (no metrics read): cheap enough for a page's stepper."""
        out = {}
        for rid in self.ids():
            status = self._read_status(self.root / rid)
            alive = status.get("status") != "running" or owner_alive(status.get("pid"), status.get("pid_start"))
            out[rid] = status["status"] if alive else "interrupted"
        return out

    def table(self, live: dict | None = None) -> pd.DataFrame:
        """One row per run on disk: id, status, epochs, last metrics and the main config values.

        A run whose files are damaged is a row with status "damaged" and the reason in ``error``.
        """
        rows = [self._row(rid, live) for rid in self.ids()]
        cols = list(TABLE_COLUMNS) + (["error"] if any(r.get("error") for r in rows) else [])
        return pd.DataFrame(rows, columns=cols)

    def _row(self, rid: str, live: dict | None) -> dict:
        try:
            run = live[rid] if live and rid in live else self.load(rid)
        except Exception as e:  # noqa: BLE001 - one broken run folder must not hide the others
            return {"id": rid, "status": "damaged", "error": str(e)}
        last = run.epoch_records[-1] if run.epoch_records else {}
        c = run.config
        return {
            "id": rid, "status": run.status, "model": c.get("model"), "seed": c.get("seed"),
            "epochs": last.get("epoch", 0), "steps": len(run.step_records),
            "lr": c.get("lr"), "optimizer": c.get("optimizer"), "weight_decay": c.get("weight_decay"),
            "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
            "train_metric": last.get("train_metric"), "val_metric": last.get("val_metric"),
            "parent": c.get("parent"), "name": c.get("name"), "started": run.info.get("started"),
            "error": run.info.get("damaged"),
        }


TABLE_COLUMNS = ("id", "status", "model", "seed", "epochs", "steps", "lr", "optimizer", "weight_decay",
                 "train_loss", "val_loss", "train_metric", "val_metric", "parent", "name", "started")


def _remove_tree(d: Path) -> None:
    import shutil

    shutil.rmtree(d, ignore_errors=True)


def _num(v) -> float:
    return v if isinstance(v, (int, float)) else 0


def _ranges(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers[:20]) + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")


def _frame(records) -> pd.DataFrame:
    if not records:
        return pd.DataFrame()
    return pd.DataFrame(records).drop(columns=["kind"], errors="ignore")
