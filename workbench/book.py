"""The result Book: every result of the recipe, recorded by the session whoever asked, kept on disk.

The audit (I.2), each sanity check by name (part II), the LR finder (B.1), the search (B.2/B.3),
the diagnosis and a run's interpretation (B.4), comparisons (III.M3), ensembles and distillation
(IV), the human baseline (II.6) and the chosen configuration are entries of one typed book. A
notebook call, the CLI and a button in the app all go through the session, which records the
result here; views only read it.

Each record emits ``result_done`` on the session's bus and is written as JSON (DataFrames through
pandas' JSON, never pickle) under ``<root>/book/<data key>/``, so a new browser tab or a new
Session on the same root and data sees the same results. ``session.results`` and
``session.reports`` are dict-shaped views onto the book for older code.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path

from workbench.book_codecs import CODECS
from workbench.errors import WorkbenchError
from workbench.store import atomic_write_json

log = logging.getLogger("workbench.book")

KINDS = ("audit", "checks", "lr_find", "search", "diagnosis", "compare", "interpretation", "ensemble", "distill",
         "human_baseline", "chosen_config")


class Book:
    """Typed, thread-safe results of one session; ``directory`` is found lazily (the data key needs the session)."""

    def __init__(self, locate: Callable[[], Path | None] | Path | None = None,
                 emit: Callable[..., None] | None = None, context=None):
        self._locate = locate if callable(locate) else (lambda: locate)
        self._emit = emit
        self.context = context  # the session: decoders use its run store (ensembles, distillation)
        self._lock = threading.RLock()
        self._entries: dict[str, object] = {}
        self._checks: dict[str, object] = {}
        self._times: dict[str, float] = {}
        self.extras: dict[str, object] = {}  # keys older code writes that are no kind of result: memory only
        self._directory: Path | None = None
        self._loaded = False

    # -- where it lives --------------------------------------------------------------------------
    @property
    def directory(self) -> Path | None:
        self._load()
        return self._directory

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            d = self._locate()
            self._directory = Path(d) if d is not None else None
            if self._directory is None or not self._directory.is_dir():
                return
            for path in sorted(self._directory.glob("*.json")):
                self._read(path)

    def _read(self, path: Path) -> None:
        kind = path.stem
        if kind not in CODECS:
            return
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if kind == "checks":
                self._checks = {n: CODECS[kind].decode(v, self.context, path) for n, v in doc["value"].items()}
            else:
                self._entries[kind] = CODECS[kind].decode(doc["value"], self.context, path)
            self._times[kind] = float(doc.get("time", 0.0))
        except Exception as e:  # noqa: BLE001 - one unreadable entry must not hide the others
            log.warning("the result book could not read %s (%s: %s); that entry starts empty",
                        path, type(e).__name__, e)

    # -- writing ---------------------------------------------------------------------------------
    def record(self, kind: str, value, name: str | None = None):
        """Keep ``value`` as the latest ``kind`` (a check under its ``name``), write it, emit ``result_done``."""
        _known(kind)
        if kind == "checks" and not name:
            name = getattr(value, "name", None)
            if not name:
                raise WorkbenchError("a check result needs a name: record('checks', verdict, name='init_loss')")
        self._load()
        with self._lock:
            if kind == "checks":
                self._checks[name] = value
            else:
                self._entries[kind] = value
            self._times[kind] = time.time()
            self._write(kind)
        if self._emit is not None:
            self._emit("result_done", kind=kind, key=name, result=value)
        return value

    def forget(self, kind: str, name: str | None = None) -> None:
        """Drop an entry (one check by ``name``, or the whole kind), on disk too."""
        _known(kind)
        self._load()
        with self._lock:
            if kind == "checks" and name is not None:
                self._checks.pop(name, None)
            elif kind == "checks":
                self._checks = {}
            else:
                self._entries.pop(kind, None)
            self._write(kind)

    def _write(self, kind: str) -> None:
        if self._directory is None:
            return
        path = self._directory / f"{kind}.json"
        present = self._checks if kind == "checks" else self._entries.get(kind)
        if kind == "checks" and not present or kind != "checks" and kind not in self._entries:
            path.unlink(missing_ok=True)
            return
        if kind == "checks":  # one by one: a verdict the codec cannot write must not drop the others
            value = {n: v for n, v in ((n, self._encode(kind, v)) for n, v in present.items()) if v is not None}
        else:
            value = self._encode(kind, present)
            if value is None:
                path.unlink(missing_ok=True)  # never leave an older result on disk under a newer one
                return
        self._directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"kind": kind, "time": self._times.get(kind, time.time()), "value": value})

    def _encode(self, kind: str, value):
        try:
            return CODECS[kind].encode(value, self._directory)
        except Exception as e:  # noqa: BLE001 - a value the codec cannot write (a test double) stays in memory
            log.info("the result book keeps %s in memory only (%s: %s)", kind, type(e).__name__, e)
            return None

    # -- reading ---------------------------------------------------------------------------------
    def get(self, kind: str, default=None):
        _known(kind)
        self._load()
        with self._lock:
            if kind == "checks":
                return dict(self._checks) or default
            return self._entries.get(kind, default)

    def check(self, name: str, default=None):
        """The latest verdict of the check ``name``."""
        self._load()
        with self._lock:
            return self._checks.get(name, default)

    def checks(self) -> dict:
        """Every check's latest verdict, by name."""
        self._load()
        with self._lock:
            return dict(self._checks)

    def has(self, kind: str) -> bool:
        # "is not None": a healthy Diagnosis has no findings and a DataFrame has no truth value
        return bool(self.checks()) if kind == "checks" else self.get(kind) is not None

    def time(self, kind: str) -> float | None:
        """When ``kind`` was last recorded (seconds since the epoch), None when never."""
        self._load()
        return self._times.get(kind)

    def kinds(self) -> list[str]:
        """The kinds that hold a result now."""
        return [k for k in KINDS if self.has(k)]

    def __repr__(self) -> str:
        return f"Book({', '.join(self.kinds()) or 'empty'}; {self._directory or 'not on disk'})"


def _known(kind: str) -> None:
    if kind not in KINDS:
        raise WorkbenchError(f"the result book has no kind {kind!r}; kinds are: {', '.join(KINDS)}")


class ResultsView(MutableMapping):
    """``session.results``: the latest verdict per check name, read from and written to the book."""

    def __init__(self, book: Book):
        self.book = book

    def __getitem__(self, name):
        v = self.book.check(name)
        if v is None:
            raise KeyError(name)
        return v

    def __setitem__(self, name, verdict):
        self.book.record("checks", verdict, name=name)

    def __delitem__(self, name):
        if self.book.check(name) is None:
            raise KeyError(name)
        self.book.forget("checks", name)

    def __iter__(self):
        return iter(self.book.checks())

    def __len__(self):
        return len(self.book.checks())

    def __repr__(self) -> str:
        return f"results({list(self)})"


class ReportsView(MutableMapping):
    """``session.reports``: the book's kinds by name; ``"chosen_lr"`` reads and sets the chosen configuration's LR."""

    def __init__(self, book: Book):
        self.book = book

    def __getitem__(self, key):
        if key == "chosen_lr":
            cfg = self.book.get("chosen_config") or {}
            if cfg.get("lr") is None:
                raise KeyError(key)
            return cfg["lr"]
        if key in KINDS and key != "checks":
            v = self.book.get(key)
            if v is None:
                raise KeyError(key)
            return v
        return self.book.extras[key]

    def __setitem__(self, key, value):
        if key == "chosen_lr":
            cfg = dict(self.book.get("chosen_config") or {})
            self.book.record("chosen_config", {**cfg, "lr": float(value), "source": "chosen by hand (B.1)"})
        elif key in KINDS and key != "checks":
            self.book.record(key, value)
        else:
            self.book.extras[key] = value

    def __delitem__(self, key):
        if key in KINDS and key != "checks":
            self.book.forget(key)
        else:
            del self.book.extras[key]

    def _keys(self) -> list[str]:
        keys = [k for k in self.book.kinds() if k != "checks"] + list(self.book.extras)
        if (self.book.get("chosen_config") or {}).get("lr") is not None:
            keys.append("chosen_lr")
        return keys

    def __iter__(self):
        return iter(self._keys())

    def __len__(self):
        return len(self._keys())

    def __repr__(self) -> str:
        return f"reports({self._keys()})"


def book_key(session, samples: int = 16) -> str:
    """A short name for "this data, task, model and seed": a hash of their description and of
    ``samples`` evenly spaced examples of each split (their bytes and labels), so defects added to
    the data, another split or another model start another book."""
    import hashlib

    import numpy as np
    import torch

    h = hashlib.sha256()
    h.update(repr((session.name, session.task.name, session.num_classes, session.model_name, session.seed,
                   tuple(session.input_shape))).encode())
    for split in ("train", "val", "test"):
        ds = getattr(session, split, None)
        if ds is None:
            continue
        n = len(ds)
        h.update(f"{split}:{n}".encode())
        for i in sorted({int(i) for i in np.linspace(0, n - 1, num=min(samples, n))}):
            try:
                x, y = ds[i][:2]
            except Exception:  # noqa: BLE001 - a file damaged on disk: the book is still this data's
                h.update(f"unreadable:{i}".encode())
                continue
            for t in (x, y):
                h.update(np.ascontiguousarray(torch.as_tensor(t).detach().cpu().numpy()).tobytes())
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(session.name))[:40] or "data"
    return f"{slug}-{h.hexdigest()[:12]}"
