"""The instrument shape: a session-event subscriber with a cadence, a bounded buffer and a verdict.

Like an ignite handler or a Lightning callback, an instrument does one thing: it listens to the
session's events every ``every`` steps, measures under ``torch.no_grad()`` without touching the
RNG or the gradients, and keeps what it measured in a ring buffer (``collections.deque(maxlen=)``)
so memory stays flat however long the run. Readers on another thread (the UI's periodic callback)
call ``since(version)`` to stream only new records, ``frame()`` for a DataFrame, ``snapshot()`` for
plain data and ``summary()`` for the verdict that diagnosis and the views show.
"""

from __future__ import annotations

import threading
from collections import deque

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.verdict import Verdict, status_of


class Instrument:
    """Base class: subclasses set ``name``, ``recipe``, ``default_every`` and ``subscriptions``."""

    name = ""
    recipe = ""
    title = ""
    default_every = 1
    cadence_unit = "step"  # or "epoch": then a session-wide ``every`` (in steps) does not apply
    maxlen = 2000
    # (event, cadenced): cadenced events fire every ``every`` steps, the others on each occurrence
    subscriptions: tuple[tuple[str, bool], ...] = ()

    def __init__(self, every: int | None = None, maxlen: int | None = None):
        every = self.default_every if every is None else every
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise WorkbenchError(f"{self.name}: every must be a positive whole number of steps, got {every!r}")
        self.every = every
        self.maxlen = int(maxlen or self.maxlen)
        self.records: deque = deque(maxlen=self.maxlen)
        self.version = 0  # grows by one per record, across runs: a reader streams ``since(version)``
        self.run_id: str | None = None
        self.session = None
        self._lock = threading.Lock()
        self._handles: list = []

    # -- wiring ----------------------------------------------------------------------------------
    def attach(self, session) -> InstrumentHandle:
        """Subscribe to ``session``'s events; the handle's ``remove()`` detaches it again."""
        if self.session is not None:
            raise WorkbenchError(f"instrument {self.name!r} is already attached to a session")
        self.session = session
        self._handles = [session.on("run_start", self._run_start)]
        for event, cadenced in self.subscriptions:
            every = self.cadence(event) if cadenced else 1
            self._handles.append(session.on(event, getattr(self, "on_" + event), every))
        session.instruments.append(self)
        return InstrumentHandle(self)

    def cadence(self, event: str) -> int:
        """How often (in steps) a cadenced subscription to ``event`` is called: ``every`` unless overridden."""
        return self.every

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self.release()
        if self.session is not None and self in self.session.instruments:
            self.session.instruments.remove(self)
        self.session = None

    @property
    def attached(self) -> bool:
        return self.session is not None

    def _run_start(self, ev) -> None:
        # a new run starts a new history; ``version`` keeps growing so readers notice the change
        with self._lock:
            self.records.clear()
            self.run_id = ev.run.id
            self.reset()
        self.on_run_start(ev)

    def reset(self) -> None:
        """Clear per-run state (called under the lock when a run starts)."""

    def release(self) -> None:
        """Remove whatever the instrument put on a model (module hooks); called on detach."""

    def on_run_start(self, ev) -> None:
        """Called after ``reset`` when a run starts."""

    # -- buffer ----------------------------------------------------------------------------------
    def push(self, record: dict) -> None:
        with self._lock:
            self.version += 1
            record["version"] = self.version
            self.records.append(record)

    def since(self, version: int = 0) -> list[dict]:
        """The records newer than ``version`` still in the buffer, oldest first (cheap: reads from the end)."""
        with self._lock:
            out = []
            for r in reversed(self.records):
                if r["version"] <= version:
                    break
                out.append(r)
        out.reverse()
        return out

    def frame(self) -> pd.DataFrame:
        """Every buffered record as a DataFrame (one row per record)."""
        return pd.DataFrame(self.since(0))

    def snapshot(self) -> dict:
        """Plain data for a view: name, recipe, run, version and the buffered records."""
        return {"name": self.name, "recipe": self.recipe, "run": self.run_id, "version": self.version,
                "every": self.every, "records": self.since(0)}

    def summary(self) -> dict:
        """The verdict: ``{"name", "recipe", "status" ("pass"|"warn"|"fail"|"skip"), "verdict", ...evidence}``."""
        return self._verdict("skip", f"{self.name}: nothing measured yet")

    def _verdict(self, status: str, verdict: str, **evidence) -> dict:
        # one status vocabulary with checks and findings (workbench/verdict.py): "ok" is "pass", "empty" is "skip"
        return {"name": self.name, "recipe": self.recipe, "status": status_of(status), "verdict": verdict,
                "run": self.run_id, **evidence}

    def as_verdict(self) -> Verdict:
        """``summary()`` as a Verdict: the status, the sentence and the numbers it rests on."""
        s = self.summary()
        measured = {k: v for k, v in s.items() if k not in ("name", "recipe", "status", "verdict", "run")
                    and isinstance(v, int | float | str | bool)}
        return Verdict(self.name, s["status"], measured, None, s["verdict"], self.recipe)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(every={self.every}, records={len(self.records)}, "
                f"{'attached' if self.attached else 'detached'})")


class InstrumentHandle:
    """What ``attach`` returns: ``.instrument`` and ``.remove()`` (detach; idempotent)."""

    def __init__(self, instrument: Instrument):
        self.instrument = instrument

    def remove(self) -> None:
        self.instrument.detach()

    @property
    def attached(self) -> bool:
        return self.instrument.attached

    def __repr__(self) -> str:
        return f"InstrumentHandle({self.instrument.name!r}, attached={self.attached})"


def named_layers(model) -> list[tuple[str, object]]:
    """``(name, module)`` for each module that owns parameters directly, in forward (registration) order."""
    return [(n or type(m).__name__, m) for n, m in model.named_modules()
            if any(True for _ in m.parameters(recurse=False))]


def layer_of(param_name: str) -> str:
    """The layer a parameter belongs to: ``features.0.weight`` -> ``features.0``."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name
