"""Per-step losses kept on the device and read back in batches: no host sync per step (recipe P.1).

A ``loss.item()`` every step stalls a GPU until the step is done (measured +22 % wall time on an
H200 resnet18 loop). The log holds the step's 0-d loss tensors and reads them with one ``tolist()``
every ``every`` steps, at the end of an epoch, or when a view asks. Divergence (a NaN/inf loss) is
found at that cadence and reported with its exact step from the buffered values; the steps after it
are dropped. What a kill can lose: the steps of the unread buffer (at most ``every - 1``).

Used by the engine (``Session.fit`` and every training in the package) and by ``wb.watch`` for a
loop the user writes.
"""

from __future__ import annotations

import math
import threading

import torch


class StepLog:
    """Buffer step losses on the device; ``flush()`` reads them at once, writes the records, emits ``steps_logged``.

    A step's losses are named parts: ``data_loss`` (required), ``reg_loss`` and any others a loss
    function reports (distillation's ``soft_loss``/``hard_loss``); ``loss`` is data + reg.
    """

    def __init__(self, run=None, emit=None, every: int = 32):
        self.run, self.emit, self.every = run, emit, max(1, int(every))
        self._steps: list[tuple[int, float, dict, float | None]] = []
        self._lock = threading.Lock()
        self.diverged: dict | None = None  # the first non-finite step once a flush saw it
        self.last: dict | None = None  # the newest record read back
        self.values: list[float] = []  # every data loss read back, in order (kept only with keep=True)
        self.keep = False

    def add(self, step: int, epoch: float, parts: dict, lr: float | None = None) -> bool:
        """Keep one step's losses (detached, still on the device); True when the buffer is due to be read."""
        with self._lock:
            self._steps.append((step, epoch, {k: _detach(v) for k, v in parts.items()}, lr))
            return len(self._steps) >= self.every

    def __len__(self) -> int:
        return len(self._steps)

    def flush(self) -> list[dict]:
        """Read every buffered loss in one device->host copy; write and emit the records up to the first
        non-finite one (then ``self.diverged`` holds it). Returns the records written."""
        with self._lock:
            pending, self._steps = self._steps, []
        if not pending or self.diverged is not None:
            return []
        names = list(dict.fromkeys(k for p in pending for k in p[2]))
        dev = next((v.device for p in pending for v in p[2].values() if isinstance(v, torch.Tensor)), None)
        table = _read(pending, names, dev)  # the one sync: steps x parts
        records = []
        for (step, epoch, _, lr), row in zip(pending, table, strict=True):
            rec = {"kind": "step", "step": step, "epoch": epoch, **dict(zip(names, row, strict=True))}
            rec.setdefault("reg_loss", 0.0)
            rec["loss"] = rec["data_loss"] + rec["reg_loss"]
            rec["lr"] = lr
            records.append(rec)
            if not math.isfinite(rec["loss"]):
                self.diverged = {"kind": "diverged", "step": step, "epoch": epoch, "data_loss": rec["data_loss"],
                                 "reg_loss": rec["reg_loss"]}
                break
        if self.keep:
            self.values.extend(r["data_loss"] for r in records)
        if self.run is not None:
            _log_many(self.run, records + ([self.diverged] if self.diverged else []))
        if records:
            self.last = records[-1]
        if self.emit is not None and records:
            self.emit("steps_logged", run=self.run, records=records)
        return records


def _read(pending, names, dev) -> list[list[float]]:
    nan = float("nan")
    if dev is None:
        return [[float(p[2].get(n, nan)) for n in names] for p in pending]
    cols = [torch.as_tensor(p[2].get(n, nan), device=dev).float().reshape(()) for p in pending for n in names]
    flat = torch.stack(cols).tolist()
    w = len(names)
    return [flat[i * w:(i + 1) * w] for i in range(len(pending))]


def _detach(v):
    return v.detach() if isinstance(v, torch.Tensor) else float(v)


def _log_many(run, records: list[dict]) -> None:
    log_many = getattr(run, "log_many", None)
    if log_many is not None:
        log_many(records)
    else:
        for r in records:
            run.log(r)
