"""Update-to-weight ratio per parameter tensor, against the healthy ≈1e-3 band (recipe P.5).

The ratio is ``||w_after - w_before|| / ||w_before||`` for the step the optimizer actually took:
the weights are copied in ``after_backward`` (gradients ready, before ``optimizer.step()``) on a
cadence step and compared in that same step's ``step_end``. So momentum, Adam's scaling, weight
decay and clipping are all in it, unlike ``lr * ||grad||``. About 1e-3 is healthy; far lower
means the learning rate is too low, far higher that it is too high.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from workbench.instruments.base import Instrument


class UpdateRatio(Instrument):
    """Per-tensor ``||Δw|| / ||w||`` every ``every`` steps, with a verdict on the learning rate."""

    name, recipe, title = "update_ratio", "P.5", "Update / weight ratio"
    default_every = 25
    maxlen = 1000
    subscriptions = (("after_backward", True), ("step_end", True))

    def __init__(self, every: int | None = None, maxlen: int | None = None, low: float = 1e-4,
                 high: float = 1e-2, window: int = 20):
        super().__init__(every, maxlen)
        if not 0 < low < high:
            from workbench.errors import WorkbenchError

            raise WorkbenchError(f"update_ratio: the band needs 0 < low < high, got low={low}, high={high}")
        self.low, self.high, self.window = float(low), float(high), int(window)
        self._before = None  # (step, names, tensors) between after_backward and step_end
        self.names: list[str] = []
        self.weight_names: list[str] = []

    def reset(self) -> None:
        self._before = None

    @torch.no_grad()
    def on_after_backward(self, ev) -> None:
        named = [(n, p) for n, p in ev.model.named_parameters() if p.requires_grad]
        self._before = (ev.step, [n for n, _ in named], [p.detach().clone() for _, p in named],
                        [p for _, p in named])

    @torch.no_grad()
    def on_step_end(self, ev) -> None:
        if self._before is None or self._before[0] != ev.step:
            return
        _, names, before, params = self._before
        self._before = None
        delta = torch._foreach_sub([p.detach() for p in params], before)
        dn = torch.stack(torch._foreach_norm(delta))
        wn = torch.stack(torch._foreach_norm(before))
        # a tensor that is all zeros (a fresh bias) has no scale to compare against: NaN, not inf
        ratio = torch.where(wn > 0, dn / wn.clamp_min(torch.finfo(wn.dtype).tiny), torch.nan)
        values = ratio.double().cpu().tolist()
        if not self.names:
            self.names = names
            self.weight_names = [n for n, p in zip(names, params, strict=True) if p.dim() > 1] or names
        ratios = dict(zip(names, values, strict=True))
        w = [ratios[n] for n in self.weight_names if n in ratios and math.isfinite(ratios[n])]
        self.push({"step": ev.step, "epoch": ev.epoch, "median": float(np.median(w)) if w else math.nan,
                   "ratios": ratios})

    # -- reading ---------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """Wide: step, epoch, median (over weight tensors) and one column per parameter tensor."""
        recs = self.since(0)
        return pd.DataFrame([{"step": r["step"], "epoch": r["epoch"], "median": r["median"], **r["ratios"]}
                             for r in recs])

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update(band=(self.low, self.high), target=1e-3, weights=list(self.weight_names))
        return snap

    def summary(self) -> dict:
        recs = self.since(0)[-self.window:]
        if not recs:
            return super().summary()
        med = float(np.nanmedian([r["median"] for r in recs])) if any(
            math.isfinite(r["median"]) for r in recs) else math.nan
        per = {n: float(np.nanmedian([r["ratios"].get(n, math.nan) for r in recs])) for n in self.weight_names}
        below = [n for n, v in per.items() if v < self.low]
        above = [n for n, v in per.items() if v > self.high]
        ev = {"median": med, "band": (self.low, self.high), "per_tensor": per, "below": below, "above": above,
              "steps": [recs[0]["step"], recs[-1]["step"]]}
        if not math.isfinite(med):
            return self._verdict("warn", "update ratio undefined: weights are zero or non-finite", **ev)
        if med > self.high:
            return self._verdict("fail", f"LR too high: median update/weight ratio {med:.1e} > {self.high:.0e} "
                                         f"(healthy ≈1e-3, P.5)", **ev)
        if med < self.low:
            return self._verdict("fail", f"LR too low: median update/weight ratio {med:.1e} < {self.low:.0e} "
                                         f"(healthy ≈1e-3, P.5)", **ev)
        extra = ""
        if below or above:
            extra = f"; out of band: {', '.join(above + below)}"
        return self._verdict("warn" if extra else "ok",
                             f"LR in band: median update/weight ratio {med:.1e} within "
                             f"[{self.low:.0e}, {self.high:.0e}] (healthy ≈1e-3, P.5){extra}", **ev)
