"""Gradient norms per layer and in total, with a NaN/inf trap that names the layer where it appears.

Norms are recorded every ``every`` steps; the trap looks at every step (one fused ``_foreach_norm``
and one finiteness test, a few microseconds). Backprop runs from the loss to the input, so a
NaN/inf born in one layer spreads to every layer before it: the trap names the non-finite layer
nearest the output in *forward* order (learned from the first training step's call order), i.e.
the first one backprop reached. It logs a ``nan_trap`` record on the run and asks it to stop.
A NaN loss ends the run as ``diverged`` before any backward: at ``run_end`` the trap then names the
first layer whose weights are non-finite, if any.
"""

from __future__ import annotations

import math
import warnings

import pandas as pd
import torch

from workbench.instruments.base import Instrument, layer_of


class GradNorms(Instrument):
    """Per-layer and total gradient L2 norms; a trap for the first NaN/inf gradient."""

    name, recipe, title = "grad_norms", "P.3", "Gradient norms"
    default_every = 25
    maxlen = 1000
    subscriptions = (("after_backward", False), ("step_end", False), ("run_end", False))

    def __init__(self, every: int | None = None, maxlen: int | None = None, trap: bool = True,
                 stop: bool = True, vanishing: float = 1e-8):
        super().__init__(every, maxlen)
        self.trap, self.stop, self.vanishing = bool(trap), bool(stop), float(vanishing)
        self.trapped: dict | None = None
        self.layers: list[str] = []
        self._order: list[str] = []
        self._hooks: list = []
        self._params: list | None = None

    def reset(self) -> None:
        self.trapped = None
        self.layers = []
        self._order = []

    # -- forward order, learned once per run on the first training step ---------------------------
    def on_run_start(self, ev) -> None:
        self._remove_hooks()
        # walking the module tree costs more than the trap itself: list the parameters once per run
        self._params = list(ev.trainer.model.named_parameters())
        order = self._order
        for name, module in ev.trainer.model.named_modules():
            if any(True for _ in module.parameters(recurse=False)):
                def pre(mod, args, name=name):
                    if mod.training and torch.is_grad_enabled() and name not in order:
                        order.append(name)
                self._hooks.append(module.register_forward_pre_hook(pre))

    def on_step_end(self, ev) -> None:
        if self._hooks:  # the call order is known after the first step: the hooks cost nothing from now on
            self._remove_hooks()

    def _remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    # -- measuring -------------------------------------------------------------------------------
    @torch.no_grad()
    def on_after_backward(self, ev) -> None:
        cadence = ev.step % self.every == 0
        if not (cadence or (self.trap and self.trapped is None)):
            return
        params = self._params if self._params is not None else list(ev.model.named_parameters())
        named = [(n, p.grad) for n, p in params if p.grad is not None]
        if not named:
            return
        norms = torch.stack(torch._foreach_norm([g for _, g in named])).double()
        finite = bool(torch.isfinite(norms).all())
        if not finite and self.trap and self.trapped is None:
            self._spring(ev, [n for n, _ in named], norms)
        if cadence:
            values = norms.cpu().tolist()
            layers: dict[str, float] = {}
            for (n, _), v in zip(named, values, strict=True):
                layers[layer_of(n)] = layers.get(layer_of(n), 0.0) + v * v
            layers = {k: math.sqrt(v) for k, v in layers.items()}
            if not self.layers:
                self.layers = list(layers)
            total = math.sqrt(sum(v * v for v in values))
            self.push({"step": ev.step, "total": total, "layers": layers})

    def _spring(self, ev, names: list[str], norms: torch.Tensor) -> None:
        bad = [layer_of(n) for n, ok in zip(names, torch.isfinite(norms).tolist(), strict=True) if not ok]
        bad = list(dict.fromkeys(bad))
        order = self._order or list(dict.fromkeys(layer_of(n) for n in names))
        rank = {name: i for i, name in enumerate(order)}
        first = max(bad, key=lambda n: rank.get(n, -1))
        self._report(ev.run, {"kind": "nan_trap", "step": ev.step, "where": "gradient", "layer": first,
                              "layers": sorted(bad, key=lambda n: rank.get(n, -1)),
                              "message": f"NaN/inf gradient first appears in layer {first!r} at step {ev.step} "
                                         f"(backprop carries it into {len(bad) - 1} layer(s) before it)"})

    @torch.no_grad()
    def on_run_end(self, ev) -> None:
        self._remove_hooks()
        self._params = None
        if not self.trap or self.trapped is not None or ev.status != "diverged":
            return
        model = getattr(ev.run, "model", None)
        if model is None:
            return
        order = self._order or [n for n, _ in model.named_modules()]
        bad = list(dict.fromkeys(layer_of(n) for n, p in model.named_parameters()
                                 if not bool(torch.isfinite(p).all())))
        if bad:
            rank = {name: i for i, name in enumerate(order)}
            first = min(bad, key=lambda n: rank.get(n, len(rank)))
            msg = f"the loss diverged; the first layer with NaN/inf weights is {first!r}"
        else:
            first, msg = None, ("the loss went NaN/inf with finite weights and gradients: a bad sample "
                                "or too high a learning rate (B.4)")
        self._report(None, {"kind": "nan_trap", "step": None, "where": "weights", "layer": first,
                            "layers": bad, "message": msg})

    def _report(self, run, record: dict) -> None:
        self.trapped = record
        self.push(dict(record))
        warnings.warn(record["message"], RuntimeWarning, stacklevel=3)
        if run is not None:
            run.log(dict(record))
            if self.stop:
                run.stop()

    # -- reading ---------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """Wide: step, total and one column per layer (trap records excluded)."""
        return pd.DataFrame([{"step": r["step"], "total": r["total"], **r["layers"]}
                             for r in self.since(0) if "total" in r])

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update(layers=list(self.layers), trapped=self.trapped)
        return snap

    def summary(self) -> dict:
        if self.trapped is not None:
            return self._verdict("fail", self.trapped["message"], trapped=self.trapped)
        recs = [r for r in self.since(0) if "total" in r]
        if not recs:
            return super().summary()
        last = recs[-1]
        vanished = [k for k, v in last["layers"].items() if v < self.vanishing]
        ev = {"total": last["total"], "layers": last["layers"], "step": last["step"], "vanishing_layers": vanished}
        if vanished:
            return self._verdict("warn", f"vanishing gradients (< {self.vanishing:g}) in {', '.join(vanished)} "
                                         f"at step {last['step']}: check the initialisation (P.3)", **ev)
        return self._verdict("ok", f"total gradient norm {last['total']:.3g} at step {last['step']}; "
                                   f"no NaN/inf", **ev)
