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
    """Buffer step losses on the device; ``flush()`` reads them at once, writes the records, emits ``steps_logged``."""

    def __init__(self, run=None, emit=None, every: int = 32):
        self.run, self.emit, self.every = run, emit, max(1, int(every))
        self._steps: list[tuple[int, float, torch.Tensor, torch.Tensor | float, float]] = []
        self._lock = threading.Lock()
        self.diverged: dict | None = None  # the first non-finite step once a flush saw it
        self.last: dict | None = None  # the newest record read back

    def add(self, step: int, epoch: float, data_loss: torch.Tensor, reg_loss=0.0, lr: float | None = None) -> bool:
        """Keep one step's losses (detached, still on the device); True when the buffer is due to be read."""
        with self._lock:
            self._steps.append((step, epoch, data_loss.detach(), _detach(reg_loss), lr))
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
        data = torch.stack([p[2].float().reshape(()) for p in pending]).tolist()  # the one sync
        regs = [p[3] for p in pending]
        if any(isinstance(r, torch.Tensor) for r in regs):
            dev = pending[0][2].device
            regs = torch.stack([torch.as_tensor(r, device=dev).float().reshape(()) for r in regs]).tolist()
        records = []
        for (step, epoch, _, _, lr), dl, rl in zip(pending, data, regs, strict=True):
            rec = {"kind": "step", "step": step, "epoch": epoch, "data_loss": dl, "reg_loss": float(rl),
                   "loss": dl + float(rl), "lr": lr}
            records.append(rec)
            if not math.isfinite(rec["loss"]):
                self.diverged = {"kind": "diverged", "step": step, "epoch": epoch, "data_loss": dl,
                                 "reg_loss": float(rl)}
                break
        if self.run is not None:
            _log_many(self.run, records + ([self.diverged] if self.diverged else []))
        if records:
            self.last = records[-1]
        if self.emit is not None and records:
            self.emit("steps_logged", run=self.run, records=records)
        return records


def _detach(v):
    return v.detach() if isinstance(v, torch.Tensor) else float(v)


def _log_many(run, records: list[dict]) -> None:
    log_many = getattr(run, "log_many", None)
    if log_many is not None:
        log_many(records)
    else:
        for r in records:
            run.log(r)
