"""The LR range test (recipe B.1): a loss-vs-learning-rate curve with its suggestions marked.

One short training of a fresh copy of the session's model, the learning rate growing
exponentially from ``start`` to ``end`` step by step over the training data (a small weight decay,
as B.1 asks). The loss is smoothed with a debiased exponential moving average; the sweep stops when
the smoothed loss passes ``diverge`` times its best, and is cut at the first NaN/inf. Then the
recipe's own coarse test: from the same initialisation, ~100 iterations at each of 1e-1, 1e-2,
1e-3, 1e-4, and the pick is the largest rate that makes the loss fall. The session's model, its
optimizer and the global RNG are left exactly as they were.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from workbench.engine.loop import Engine
from workbench.errors import WorkbenchError

RECIPE = "B.1"
COARSE_LRS = (1e-1, 1e-2, 1e-3, 1e-4)
METHODS = ("middle", "valley", "min_div_10", "steepest", "coarse")


@dataclass
class LRFindResult:
    """What a person gets from the LR range test: the curve, the marked suggestions and the coarse pick.

    ``curve``: one row per step (lr, loss, smoothed). ``suggestions``: lr by method ("steepest",
    "min_div_10", "valley", "coarse"). ``coarse``: per-iteration losses of the B.1 coarse runs;
    ``coarse_summary``: one row per coarse LR (start loss, end loss, ratio, falls).
    """

    curve: pd.DataFrame
    suggestions: dict
    method: str = "middle"
    stopped: str = ""  # why the sweep ended: "end", "diverged" or "nan"
    coarse: pd.DataFrame = field(default_factory=pd.DataFrame)
    coarse_summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    config: dict = field(default_factory=dict)
    recipe: str = RECIPE

    @property
    def suggestion(self) -> float | None:
        """The suggested learning rate (by ``method``; falls back to the coarse pick, then min/10)."""
        for key in (self.method, "coarse", "min_div_10"):
            v = self.suggestions.get(key)
            if v is not None and math.isfinite(v):
                return float(v)
        return None

    lr = suggestion

    @property
    def message(self) -> str:
        s = self.suggestions
        parts = [f"{k} {v:.2g}" for k, v in s.items() if v is not None]
        pick = self.suggestion
        head = f"suggested LR {pick:.2g} ({self.method})" if pick else "no LR makes the loss fall"
        return f"{head}; " + ", ".join(parts) + f" (recipe {RECIPE}; sweep stopped: {self.stopped})"

    def to_frame(self) -> pd.DataFrame:
        """The suggestions as a table: method, lr, and the smoothed loss at that lr on the curve."""
        rows = []
        for k, v in self.suggestions.items():
            loss = float(np.interp(np.log10(v), np.log10(self.curve["lr"]), self.curve["smoothed"])) \
                if v is not None and len(self.curve) else None
            rows.append({"method": k, "lr": v, "smoothed_loss": loss, "recipe": RECIPE})
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        return f"LRFindResult({self.message})"


def lr_find(session, start: float = 1e-7, end: float = 10.0, steps: int = 100, weight_decay: float = 1e-4,
            optimizer="adam", smoothing: float = 0.98, diverge: float = 4.0, skip_start: int = 5,
            method: str = "middle", coarse=COARSE_LRS, coarse_iters: int = 100, min_drop: float = 0.1,
            batch_size: int | None = None, seed: int | None = None, model_kwargs: dict | None = None
            ) -> LRFindResult:
    """Sweep the LR exponentially from ``start`` to ``end`` and suggest one (recipe B.1).

    ``coarse``: the LRs of the recipe's coarse test (``None`` or ``()`` skips it); the pick is the
    largest whose mean loss over the last 10% of ``coarse_iters`` iterations is at least
    ``min_drop`` below the loss at initialisation. ``session.lr_find`` records it in the session's book.
    """
    _validate(start, end, steps, smoothing, diverge, method, coarse_iters)
    from workbench.train import make_optimizer

    model_kwargs = dict(model_kwargs or {})
    seed = session.seed if seed is None else int(seed)
    was_training = session.model.training
    try:
        model = session.new_model(seed=seed, **model_kwargs)  # a copy: the session's model is never trained
        engine = Engine.quiet(session, model, make_optimizer(optimizer, model.parameters(), start, weight_decay),
                              seed=seed)
        lrs = start * (end / start) ** (np.arange(steps) / max(steps - 1, 1))
        rows, sweep = [], {"avg": 0.0, "best": math.inf, "stopped": "end"}

        def follow(eng, x, y, out, loss) -> bool:
            i = eng.step - 1
            value = float(loss)  # the sweep reads every loss: each one decides whether it goes on
            if not math.isfinite(value):
                sweep["stopped"] = "nan"  # cut at the first NaN/inf: nothing after it is meaningful
                return True
            sweep["avg"] = smoothing * sweep["avg"] + (1 - smoothing) * value
            smoothed = sweep["avg"] / (1 - smoothing ** (i + 1))  # debiased: early values are not pulled to 0
            rows.append({"step": i, "lr": float(lrs[i]), "loss": value, "smoothed": smoothed})
            sweep["best"] = min(sweep["best"], smoothed)
            if smoothed > diverge * sweep["best"]:
                sweep["stopped"] = "diverged"
                return True
            if i + 1 < len(lrs):
                _set_lr(eng.optimizer, lrs[i + 1])
            return False

        _set_lr(engine.optimizer, lrs[0])
        engine.run_steps(_cycle(session, batch_size, seed), len(lrs), on_step=follow)
        stopped = sweep["stopped"]
        curve = pd.DataFrame(rows, columns=["step", "lr", "loss", "smoothed"])
        if len(curve) < 3:
            raise WorkbenchError(f"the LR range test produced only {len(curve)} finite losses from lr={start:g}; "
                                 "lower start= or check the model's initial loss (recipe II.4)")
        suggestions = suggest(curve, skip_start=skip_start)
        coarse_df, summary = pd.DataFrame(), pd.DataFrame()
        if coarse:
            coarse_df, summary = coarse_test(session, coarse, coarse_iters, weight_decay, optimizer, min_drop,
                                             batch_size, seed, model_kwargs)
            falls = summary[summary["falls"]]
            suggestions["coarse"] = float(falls["lr"].max()) if len(falls) else None
    finally:
        session.model.train(was_training)
    config = {"start": start, "end": end, "steps": steps, "weight_decay": weight_decay, "smoothing": smoothing,
              "diverge": diverge, "optimizer": str(optimizer), "seed": seed, "coarse": list(coarse or ()),
              "coarse_iters": coarse_iters, "min_drop": min_drop, "batch_size": batch_size or session.batch_size}
    return LRFindResult(curve, suggestions, method, stopped, coarse_df, summary, config)


def suggest(curve: pd.DataFrame, skip_start: int = 5) -> dict:
    """Steepest descent (d smoothed loss / d log10 lr), the minimum's lr / 10, the valley, and "middle"
    (the geometric mean of min/10 and valley)."""
    lr = curve["lr"].to_numpy()
    sm = curve["smoothed"].to_numpy()
    i_min = int(np.argmin(sm))
    out = {"steepest": None, "min_div_10": float(lr[i_min] / 10), "valley": valley(lr, sm)}
    # valley tends to land low and min/10 high (measured on digits with linear, mlp, tiny_cnn: each was
    # up to 16x off the best fixed LR of a sweep, their log-midpoint at most 5x): "middle" is the default
    out["middle"] = float(math.sqrt(out["min_div_10"] * out["valley"]))
    # the descent before the minimum only: past it the slope is the divergence, not learning
    lo, hi = min(skip_start, max(i_min - 2, 0)), i_min + 1
    if hi - lo >= 3:
        grad = np.gradient(sm[lo:hi], np.log10(lr[lo:hi]))
        out["steepest"] = float(lr[lo + int(np.argmin(grad))])
    return out


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The lr two thirds down the longest stretch of decreasing loss (fastai's "valley" heuristic)."""
    n = len(losses)
    lds = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[end] < lds[i]:
            end = i
            start = end - lds[end]
    third = (end - start) / 3
    idx = min(start + int(third) + int(third / 2), n - 1)
    return float(lrs[idx])


def coarse_test(session, lrs=COARSE_LRS, iters: int = 100, weight_decay: float = 1e-4, optimizer="adam",
                min_drop: float = 0.1, batch_size: int | None = None, seed: int | None = None,
                model_kwargs: dict | None = None):
    """Recipe B.1 literally: ``iters`` iterations at each LR from one initialisation and one data order.

    Returns (per-iteration losses, one summary row per LR). A rate "falls" when the mean loss of the
    last 10% of iterations is at least ``min_drop`` (relative) below the loss at initialisation.
    """
    from workbench.train import make_optimizer

    seed = session.seed if seed is None else int(seed)
    rows, summary = [], []
    for lr in sorted((float(v) for v in lrs), reverse=True):
        model = session.new_model(seed=seed, **(model_kwargs or {}))
        engine = Engine.quiet(session, model, make_optimizer(optimizer, model.parameters(), lr, weight_decay),
                              seed=seed)
        kept = []
        engine.run_steps(_cycle(session, batch_size, seed), iters,
                         on_step=lambda e, x, y, o, loss, kept=kept: kept.append(loss))
        losses = torch.stack(kept).tolist() if kept else []  # one read per learning rate
        if any(not math.isfinite(v) for v in losses):
            losses = losses[:next(i for i, v in enumerate(losses) if not math.isfinite(v)) + 1]
        rows.extend({"lr": lr, "iteration": it, "loss": loss} for it, loss in enumerate(losses))
        tail = losses[-max(1, iters // 10):]
        end = float(np.mean(tail)) if all(math.isfinite(v) for v in tail) else math.nan
        ratio = end / losses[0] if losses[0] else math.nan
        summary.append({"lr": lr, "start_loss": losses[0], "end_loss": end, "ratio": ratio,
                        "falls": bool(math.isfinite(ratio) and ratio <= 1 - min_drop), "iterations": len(losses),
                        "recipe": RECIPE})
    return pd.DataFrame(rows), pd.DataFrame(summary)


def _cycle(session, batch_size, seed):
    """Training batches forever: the sweep may be longer than one epoch (all training data, B.1)."""
    loader = session.loader("train", shuffle=True, batch_size=batch_size, seed=seed)
    dev = session.device
    return ((x.to(dev), y.to(dev)) for x, y in itertools.chain.from_iterable(itertools.repeat(loader)))


def _set_lr(opt, lr) -> None:
    for g in opt.param_groups:
        g["lr"] = float(lr)


def _validate(start, end, steps, smoothing, diverge, method, coarse_iters) -> None:
    if not (start > 0 and end > start):
        raise WorkbenchError(f"lr_find needs 0 < start < end, got start={start!r}, end={end!r}")
    if int(steps) < 10:
        raise WorkbenchError(f"lr_find needs at least 10 steps for a curve, got steps={steps!r}")
    if not 0 <= smoothing < 1:
        raise WorkbenchError(f"smoothing is an EMA factor in [0, 1), got {smoothing!r}")
    if diverge <= 1:
        raise WorkbenchError(f"diverge must be > 1 (stop when the loss passes diverge x its best), got {diverge!r}")
    if method not in METHODS:
        raise WorkbenchError(f"method must be one of {METHODS}, got {method!r}")
    if int(coarse_iters) < 10:
        raise WorkbenchError(f"coarse_iters must be at least 10, got {coarse_iters!r}")

