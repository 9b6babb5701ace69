"""Predictions on a fixed test batch during training, and their wiggle (recipe II.11).

Every ``every`` steps the model (in eval mode, so batch-norm statistics and dropout are untouched,
and without gradients) predicts the same ``k`` held-out examples. The per-class probabilities over
time show the dynamics: the wiggle score is the mean absolute change of the true-class probability
between consecutive updates. Too much wiggle means unstable training (LR too high or batch too
small: the verdict counts only the back-and-forth part, not steady progress); a true-class
probability that hardly moves while still low means the LR is too low.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from workbench.instruments.base import Instrument


def wiggle(p_true: np.ndarray) -> float:
    """Mean absolute change between consecutive rows of a (time, examples) array of true-class probabilities."""
    p = np.asarray(p_true, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        return math.nan
    return float(np.abs(np.diff(p, axis=0)).mean())


def back_and_forth(p_true: np.ndarray) -> float:
    """The part of the wiggle that is not progress: (total variation - |net change|) per update, averaged.

    A probability climbing steadily from 0.1 to 0.9 has a large wiggle but no back-and-forth; one
    jumping up and down around the same level has both.
    """
    p = np.asarray(p_true, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2:
        return math.nan
    tv = np.abs(np.diff(p, axis=0)).sum(axis=0)
    net = np.abs(p[-1] - p[0])
    return float(((tv - net) / (p.shape[0] - 1)).mean())


class Predictions(Instrument):
    """Per-class probabilities for ``k`` fixed held-out examples every ``every`` steps, and the wiggle."""

    name, recipe, title = "predictions", "II.11", "Fixed test batch predictions"
    default_every = 25
    maxlen = 500
    subscriptions = (("step_end", True),)

    def __init__(self, every: int | None = None, maxlen: int | None = None, k: int = 16,
                 split: str = "eval", high: float = 0.05, low: float = 1e-3, window: int = 20):
        super().__init__(every, maxlen)
        self.k, self.split = int(k), split
        self.high, self.low, self.window = float(high), float(low), int(window)
        self._x = self._y = None
        self.labels: np.ndarray | None = None
        self.classification = True

    def reset(self) -> None:
        self._x = self._y = None

    def on_run_start(self, ev) -> None:
        s = self.session
        x, y = s.batch(self.split, self.k)  # the first k examples: the same batch in every run
        self._x, self._y = x.to(s.device), y.to(s.device)
        self.labels = y.cpu().numpy()
        self.classification = s.task.name == "classification"
        self._measure(ev.trainer.model, step=0, epoch=0.0)

    def on_step_end(self, ev) -> None:
        self._measure(ev.model, ev.step, ev.epoch)

    @torch.no_grad()
    def _measure(self, model, step: int, epoch: float) -> None:
        if self._x is None:
            return
        was = model.training
        model.eval()  # eval mode: no batch-norm update, no dropout draw — training is untouched
        try:
            out = model(self._x).float()
        finally:
            model.train(was)
        if self.classification:
            probs = torch.softmax(out, dim=1).cpu().numpy()  # one copy; the rest is numpy on 16 rows
            rows = np.arange(len(probs))
            self.push({"step": step, "epoch": epoch, "probs": probs, "p_true": probs[rows, self.labels],
                       "accuracy": float((probs.argmax(1) == self.labels).mean())})
        else:
            pred = out.reshape(len(self._x), -1).cpu().numpy()
            self.push({"step": step, "epoch": epoch, "probs": pred, "p_true": pred.mean(axis=1), "accuracy": math.nan})

    # -- reading -----------------------------------------------------------------------------------
    def p_true(self) -> np.ndarray:
        """(records, k) true-class probabilities (regression: the predictions)."""
        recs = self.since(0)
        return np.stack([r["p_true"] for r in recs]) if recs else np.zeros((0, self.k))

    def wiggle(self, window: int | None = None) -> float:
        """Mean |Δ p_true| between consecutive updates over the last ``window`` records (all by default)."""
        p = self.p_true()
        return wiggle(p[-(window + 1):] if window else p)

    def frame(self) -> pd.DataFrame:
        """Long: step, epoch, example, label, p_true and the class probabilities (p0, p1, ...)."""
        rows = []
        for r in self.since(0):
            for i, (pt, pr) in enumerate(zip(r["p_true"], r["probs"], strict=True)):
                rows.append({"step": r["step"], "epoch": r["epoch"], "example": i,
                             "label": None if self.labels is None else self.labels[i].tolist(), "p_true": float(pt),
                             **{f"p{c}": float(v) for c, v in enumerate(np.atleast_1d(pr))}})
        return pd.DataFrame(rows)

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update(labels=None if self.labels is None else self.labels.tolist(), wiggle=self.wiggle(self.window),
                    back_and_forth=back_and_forth(self.p_true()[-(self.window + 1):]))
        return snap

    def summary(self) -> dict:
        p = self.p_true()
        if len(p) < 2:
            return super().summary()
        w = self.wiggle(self.window)
        bf = back_and_forth(p[-(self.window + 1):])
        level = float(p[-1].mean())
        ev = {"wiggle": w, "back_and_forth": bf, "p_true": level, "updates": len(p) - 1, "every": self.every}
        if not self.classification:
            return self._verdict("ok", f"prediction wiggle {w:.3g} per update (II.11)", **ev)
        if bf > self.high:
            return self._verdict("warn", f"unstable: the true-class probability wiggles {w:.3f} per update, "
                                         f"{bf:.3f} of it back and forth > {self.high:g}: LR too high or batch "
                                         "too small (II.11)", **ev)
        if w < self.low and level < 0.5:
            return self._verdict("warn", f"stuck: the true-class probability moves {w:.1e} per update while it "
                                         f"is still {level:.2f}: LR too low (II.11)", **ev)
        return self._verdict("ok", f"stable: wiggle {w:.3f} per update ({bf:.3f} back and forth); mean "
                                   f"true-class probability {level:.2f} (II.11)", **ev)
