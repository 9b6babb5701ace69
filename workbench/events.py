"""The session's event bus: a small, named set of events; handlers attached and removable.

A handler that raises is reported (a warning, and an ``"callback_error"`` record on the bus) and
detached; it never kills the training.
"""

from __future__ import annotations

import threading
import traceback
import warnings
from collections import defaultdict
from collections.abc import Callable

EVENTS = (
    "run_start",       # a run begins: run
    "step_end",        # after optimizer.step(): run, trainer, step, epoch, data_loss and reg_loss (0-d tensors
                       # still on the device: read them on a cadence, not every step), model, x, y, output
    "steps_logged",    # a batch of step records read back from the device: run, records (list of dicts of floats)
    "after_backward",  # gradients are in .grad, before optimizer.step(): run, step, model, optimizer
    "epoch_end",       # after the whole-set evaluation: run, epoch, row (the epoch's metrics)
    "run_end",         # the run is over: run, status
    "check_done",      # a sanity check finished: result
    "audit_progress",  # the data audit advanced: done, total, stage
    "audit_done",      # the data audit finished: report
    "result_done",     # a result was recorded in the session's book: kind, key (a check's name, else None), result
    "callback_error",  # a handler raised and was detached: event, callback, error
)


class Event:
    """What a handler receives: the event's ``name`` and its payload as attributes."""

    __slots__ = ("name", "data")

    def __init__(self, name: str, data: dict):
        self.name = name
        self.data = data

    def __getattr__(self, key):
        try:
            return self.data[key]
        except KeyError:
            raise AttributeError(f"event {self.name!r} carries no {key!r}") from None

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {sorted(self.data)})"


class Handle:
    """Returned by ``session.on``; ``remove()`` detaches the handler."""

    def __init__(self, bus: EventBus, name: str, callback: Callable, every: int):
        self.bus, self.name, self.callback, self.every = bus, name, callback, every

    def remove(self) -> None:
        self.bus._remove(self)

    @property
    def attached(self) -> bool:
        return self in self.bus._handlers.get(self.name, [])

    def __repr__(self) -> str:
        return f"Handle({self.name!r}, {getattr(self.callback, '__name__', self.callback)!r})"


class EventBus:
    """Named events to handlers; ``every=N`` on step events calls the handler every N steps."""

    def __init__(self):
        self._handlers: dict[str, list[Handle]] = defaultdict(list)
        self._lock = threading.Lock()
        self.errors: list[dict] = []

    def on(self, name: str, callback: Callable, every: int = 1) -> Handle:
        if name not in EVENTS:
            raise ValueError(f"unknown event {name!r}; events are {', '.join(EVENTS)}")
        if not callable(callback):
            raise TypeError("callback must be callable")
        h = Handle(self, name, callback, max(1, int(every)))
        with self._lock:
            self._handlers[name] = self._handlers[name] + [h]
        return h

    def has(self, name: str) -> bool:
        return bool(self._handlers.get(name))

    def emit(self, name: str, **data) -> None:
        handlers = self._handlers.get(name)
        if not handlers:
            return
        step = data.get("step")
        ev = Event(name, data)
        for h in handlers:
            if h.every > 1 and step is not None and step % h.every:
                continue
            try:
                h.callback(ev)
            except Exception as e:  # noqa: BLE001 - a handler must never kill the training
                h.remove()
                record = {"event": name, "callback": repr(h.callback), "error": f"{type(e).__name__}: {e}",
                          "traceback": traceback.format_exc()}
                self.errors.append(record)
                warnings.warn(f"event handler {h.callback!r} for {name!r} raised {type(e).__name__}: {e}; "
                              "it was detached", RuntimeWarning, stacklevel=2)
                if name != "callback_error":
                    self.emit("callback_error", **record)

    def _remove(self, h: Handle) -> None:
        with self._lock:
            self._handlers[h.name] = [x for x in self._handlers.get(h.name, []) if x is not h]
