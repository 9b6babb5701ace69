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
import torch

from workbench.errors import ConfigError, DamagedRunError, RunError, StorageError, WorkbenchError
from workbench.records import RecordWindow, iter_records, read_records
from workbench.runlock import RunLock, owner_alive

STATUSES = ("running", "completed", "stopped", "diverged", "failed", "interrupted", "damaged")
TERMINAL = ("completed", "stopped", "diverged", "failed")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CKPT = re.compile(r"^(?:epoch-(\d+)|step-(\d+)-epoch-(\d+))\.pt$")


# -- writing files ------------------------------------------------------------------------------
def _storage_error(path: Path, e: OSError) -> StorageError:
    return StorageError.from_os_error(path, e)


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = _tmp_for(path)
    try:
        with open(tmp, "wb") as f:  # rename makes it atomic for a killed process; no fsync on the hot path
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _storage_error(path, e) from e


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=_jsonable, allow_nan=True).encode())


def atomic_torch_save(path: Path, obj) -> None:
    path = Path(path)
    tmp = _tmp_for(path)
    try:
        with open(tmp, "wb") as f:  # through a Python file, so the OSError behind torch's RuntimeError is kept
            torch.save(obj, f)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        tmp.unlink(missing_ok=True)
        cause = _os_error_in(e)
        if cause is None:
            raise  # not a storage problem (e.g. an object torch cannot save): torch's own error says it
        raise _storage_error(path, cause) from e


def _os_error_in(e: BaseException) -> OSError | None:
    while e is not None and not isinstance(e, OSError):
        e = e.__cause__ or e.__context__
    return e


def _write_in_place(path: Path, data: bytes) -> None:
    """Overwrite a small existing file in its own blocks: works on a full disk where a temp file cannot."""
    with open(path, "r+b") as f:
        f.write(data)
        f.truncate(len(data))


def read_jsonl(path: Path) -> list[dict]:
    """Every good line of a metrics file; bad ones (e.g. the half-written last line of a killed process) skipped."""
    return read_records(path)[0]


def _read_json_object(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedRunError(f"{path} is missing", fix=f"restore the run's {what} or delete the folder") from None
    except (OSError, ValueError) as e:
        raise DamagedRunError(f"{path} is not valid JSON ({e})",
                              fix=f"restore the run's {what} from a backup or delete the folder") from None
    if not isinstance(obj, dict):
        raise DamagedRunError(f"{path} holds a JSON {type(obj).__name__}, not an object",
                              fix=f"restore the run's {what} from a backup or delete the folder")
    return obj


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
        self.model = None  # the trained module while this process holds it

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
            _write_in_place(path, json.dumps(self._status, default=_jsonable).encode())

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
        data = "".join(json.dumps(r, default=_jsonable) + "\n" for r in records).encode()
        path = self.dir / "metrics.jsonl"
        try:
            if self._metrics_file is None:
                self._metrics_file = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(self._metrics_file, view):]
        except OSError as e:
            raise _storage_error(path, e) from e
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
        tmp = _tmp_for(path)
        try:  # streamed to the temp file: the step history may be long
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, columns, extrasaction="ignore", lineterminator="\n")
                writer.writeheader()
                writer.writerows(records)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _storage_error(path, e) from e

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
        paths = [p for p in d.iterdir() if _CKPT.match(p.name) and (mid_epoch or p.name.startswith("epoch-"))]
        return sorted(paths, key=_checkpoint_key)

    def load_checkpoint(self, path: Path | None = None) -> dict:
        """The newest good checkpoint (or ``path``), loaded with ``weights_only=True``.

        A damaged newest checkpoint (truncated, corrupt) is skipped for the one before it, with a
        warning; the returned dict then names the skipped files under ``"skipped_checkpoints"``.
        """
        if path is not None:
            return _load_checkpoint(Path(path))
        paths = self.checkpoints(mid_epoch=True)
        if not paths:
            raise RunError(f"run {self.id} has no checkpoint", fix="train it first, or resume it from scratch")
        skipped = []
        for p in reversed(paths):
            try:
                state = _load_checkpoint(p)
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


def _checkpoint_key(p: Path) -> tuple[int, int]:
    m = _CKPT.match(p.name)
    if m.group(1) is not None:
        return int(m.group(1)), -1  # the end of epoch N comes before any step taken after it
    return int(m.group(3)), int(m.group(2))


def _load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"no checkpoint {path}", fix="pick one of run.checkpoints()") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, unsafe global: all "damaged"
        raise DamagedRunError(f"checkpoint {path} is damaged ({type(e).__name__}: {str(e)[:200]})",
                              fix="delete it; resume falls back to the checkpoint before it") from None
    if not isinstance(state, dict):
        raise DamagedRunError(f"checkpoint {path} holds a {type(state).__name__}, not a checkpoint dict",
                              fix="delete it; resume falls back to the checkpoint before it")
    return state


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
            raise _storage_error(self.root, e) from e
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
        config = _read_json_object(d / "config.json", "config.json")
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
            status = _read_json_object(d / "status.json", "status.json")
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
                           "".join(json.dumps(r, default=_jsonable) + "\n" for r in keep).encode())
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


def _alive(pid, pid_start=None) -> bool:
    """Kept for callers of the old name: whether a recorded owner still runs."""
    return owner_alive(pid, pid_start)


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
