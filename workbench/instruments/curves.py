"""Loss and metric curves per step and per epoch, x in epochs, with a log-scale option (recipe P.1, P.2).

The x axis is the epoch (a float for steps) because iterations depend on the batch size (P.1); a
log-scale loss turns exponential convergence into roughly a line. The verdict names a loss that
jumps up and down too much (batch too small, P.1) and the train/validation gap (P.2).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd

from workbench.instruments.base import Instrument


class Curves(Instrument):
    """Per-step loss and per-epoch train/val loss and metric, streamed from the run as it trains."""

    name, recipe, title = "curves", "P.1", "Loss and metric curves"
    default_every = 1
    maxlen = 12000  # hard bound of the stream; step points are thinned well before it (max_points)
    # step losses arrive in batches read off the device (steps_logged), never one host sync per step
    subscriptions = (("steps_logged", False), ("epoch_end", False))

    def __init__(self, every: int | None = None, maxlen: int | None = None, log: bool = True,
                 noise_threshold: float = 0.3, gap_threshold: float = 0.1, max_points: int = 2000):
        super().__init__(every, maxlen)
        # the whole run in bounded memory: when max_points step points are held, every other one is
        # dropped and the stride doubles (the recent past stays dense enough for the noise verdict)
        self.max_points, self.stride, self._n_steps = int(max_points), 1, 0
        self.log = bool(log)
        self.noise_threshold, self.gap_threshold = float(noise_threshold), float(gap_threshold)
        self.epochs: deque = deque(maxlen=10000)
        self.metric = ""
        self.higher_is_better = True

    def reset(self) -> None:
        self.epochs.clear()
        self.stride, self._n_steps = 1, 0

    def on_run_start(self, ev) -> None:
        self.metric = ev.trainer.task.metric
        self.higher_is_better = getattr(ev.trainer.task, "higher_is_better", True)

    def on_steps_logged(self, ev) -> None:
        # the instrument's cadence, counted in the run's steps
        self._add_steps(r for r in ev.records if r["step"] % self.every == 0)

    def _add_steps(self, records) -> None:
        for r in records:
            self._n_steps += 1
            if self._n_steps % self.stride:
                continue
            self.push({"kind": "step", "step": r["step"], "epoch": r["epoch"], "loss": r["loss"],
                       "data_loss": r["data_loss"], "reg_loss": r["reg_loss"], "n": self._n_steps})
            if self._n_steps // self.stride >= self.max_points:
                self._thin()

    def _thin(self) -> None:
        with self._lock:
            self.stride *= 2
            kept = [r for r in self.records if r["kind"] != "step" or r["n"] % self.stride == 0]
            self.records.clear()
            self.records.extend(kept)

    def on_epoch_end(self, ev) -> None:
        row = ev.row
        rec = {"kind": "epoch", "epoch": row["epoch"], "step": row["step"]}
        for k in ("train_loss", "val_loss", "train_metric", "val_metric", "lr"):
            rec[k] = row.get(k)
        with self._lock:
            self.epochs.append(rec)
        self.push(dict(rec))

    @classmethod
    def from_run(cls, run, **options) -> Curves:
        """The curves of a finished (or loaded) run, read from its metrics."""
        c = cls(**options)
        c.run_id = run.id
        c._add_steps(run.step_records)
        for r in run.epoch_records:
            rec = {"kind": "epoch", **{k: r.get(k) for k in ("epoch", "step", "train_loss", "val_loss",
                                                             "train_metric", "val_metric", "lr")}}
            c.epochs.append(rec)
            c.push(dict(rec))
        c.metric = run.epoch_records[0].get("metric", "") if run.epoch_records else ""
        return c

    # -- reading ---------------------------------------------------------------------------------
    def frame(self, kind: str = "step", log: bool | None = None) -> pd.DataFrame:
        """``kind="step"``: step, epoch, loss...; ``"epoch"``: train/val loss and metric per epoch.

        With ``log`` (default: the instrument's ``log``) the loss columns gain ``log10_`` twins.
        """
        log = self.log if log is None else log
        if kind == "epoch":
            with self._lock:
                df = pd.DataFrame(list(self.epochs))
        else:
            df = pd.DataFrame([r for r in self.since(0) if r["kind"] == "step"])
        if log and not df.empty:
            for col in [c for c in df.columns if c.endswith("loss")]:
                v = pd.to_numeric(df[col], errors="coerce")
                df["log10_" + col] = np.log10(v.where(v > 0))
        return df

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update(log=self.log, metric=self.metric, x="epoch")
        return snap

    def noise(self, window: int = 200) -> float | None:
        """How much the step loss jumps: median |loss - rolling median| / median loss over the last steps."""
        losses = [r["loss"] for r in self.since(0) if r["kind"] == "step"][-window:]
        if len(losses) < 21:
            return None
        s = pd.Series(losses)
        trend = s.rolling(21, center=True, min_periods=5).median()
        level = float(trend.median())
        return float((s - trend).abs().median() / level) if level > 0 else None

    def summary(self) -> dict:
        steps = [r for r in self.since(0) if r["kind"] == "step"]
        with self._lock:
            epochs = list(self.epochs)
        if not steps and not epochs:
            return super().summary()
        parts, status = [], "ok"
        ev: dict = {}
        if steps:
            first, last = steps[0]["loss"], steps[-1]["loss"]
            ev.update(first_loss=first, last_loss=last)
            parts.append(f"loss {first:.3g} → {last:.3g} by epoch {steps[-1]['epoch']:.2f}")
            noise = self.noise()
            ev["noise"] = noise
            if noise is not None and noise > self.noise_threshold:
                status = "warn"
                parts.append(f"noisy: the step loss jumps {noise:.0%} around its trend > "
                             f"{self.noise_threshold:.0%}: batch too small (P.1)")
        if epochs:
            e = epochs[-1]
            tm, vm = e.get("train_metric"), e.get("val_metric")
            if tm is not None and vm is not None and math.isfinite(tm) and math.isfinite(vm):
                gap = (tm - vm) if self.higher_is_better else (vm - tm)
                ev.update(train_metric=tm, val_metric=vm, gap=gap)
                parts.append(f"train/val {self.metric or 'metric'} {tm:.3g}/{vm:.3g}, gap {gap:.3g} (P.2)")
                if gap > self.gap_threshold:
                    status = "warn"
                    parts.append(f"gap > {self.gap_threshold:g}: overfitting, regularize (III.R)")
        return self._verdict(status, "; ".join(parts), **ev)
