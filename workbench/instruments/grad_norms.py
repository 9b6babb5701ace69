"""Gradient norms per layer and in total, with a NaN/inf trap that names the layer where it appears.

Norms are recorded every ``every`` steps. Backprop runs from the loss to the input, so a NaN/inf
born in one layer spreads to every layer before it: the trap names the non-finite layer nearest
the output in *forward* order (learned from the first training step's call order), i.e. the first
one backprop reached.

The trap never syncs the device per step: after every backward one fused ``_foreach_norm`` marks,
on the device, the first step at which each parameter's gradient was non-finite. The marks are read
with the step losses (``steps_logged``, the engine's one read every N steps), every ``trap_every``
steps, and when the run ends. A gradient that went bad before the loss did names its layer
(``where="gradient"``, with that step); a loss that went NaN/inf first, with finite gradients
before it, is a bad sample or too high a learning rate (``where="loss"``). When it fires it logs a
``nan_trap`` record on the run and asks the run to stop. Without the per-step marks (a loop that
emits no ``after_backward``), the weights are looked at once when the run ends (``where="weights"``).
"""

from __future__ import annotations

import math
import warnings

import pandas as pd
import torch

from workbench.errors import WorkbenchError
from workbench.instruments.base import Instrument, layer_of


class GradNorms(Instrument):
    """Per-layer and total gradient L2 norms; a trap for the first NaN/inf gradient."""

    name, recipe, title = "grad_norms", "P.3", "Gradient norms"
    default_every = 25
    maxlen = 1000
    subscriptions = (("after_backward", True), ("steps_logged", False), ("run_end", False))

    def __init__(self, every: int | None = None, maxlen: int | None = None, trap: bool = True,
                 stop: bool = True, vanishing: float = 1e-8, trap_every: int | None = None):
        super().__init__(every, maxlen)
        self.trap, self.stop, self.vanishing = bool(trap), bool(stop), float(vanishing)
        if trap_every is not None and (isinstance(trap_every, bool) or not isinstance(trap_every, int)
                                       or trap_every < 1):
            raise WorkbenchError(f"grad_norms: trap_every must be a positive whole number of steps, got "
                                 f"{trap_every!r}")
        self.trap_every = self.every if trap_every is None else trap_every
        self.trapped: dict | None = None
        self.layers: list[str] = []
        self._order: list[str] = []
        self._hooks: list = []
        self._params: list | None = None
        self._first_step = None  # a bus handle on step_end, for the first step of a run only
        self._first_bad: torch.Tensor | None = None  # per parameter: first step with a non-finite gradient (-1: none)
        self._bad_names: list[str] = []

    def cadence(self, event: str) -> int:
        # the trap marks every step on the device (no sync); the norms are read on their cadence
        return 1 if event == "after_backward" and self.trap else self.every

    def reset(self) -> None:
        self.trapped = None
        self.layers = []
        self._order = []

    # -- forward order, learned once per run on the first training step ---------------------------
    def on_run_start(self, ev) -> None:
        self._remove_hooks()
        # walking the module tree costs more than the trap itself: list the parameters once per run
        self._params = list(ev.trainer.model.named_parameters())
        self._first_bad, self._bad_names = None, []
        order = self._order
        for name, module in ev.trainer.model.named_modules():
            if any(True for _ in module.parameters(recurse=False)):
                def pre(mod, args, name=name):
                    if mod.training and torch.is_grad_enabled() and name not in order:
                        order.append(name)
                self._hooks.append(module.register_forward_pre_hook(pre))
        self._first_step = self.session.on("step_end", self._after_first_step)
        self._handles.append(self._first_step)

    def _after_first_step(self, ev) -> None:
        # the call order is known after the first step: from now on neither hooks nor this handler run
        self._remove_hooks()

    def _remove_hooks(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._first_step is not None:
            self._first_step.remove()
            if self._first_step in self._handles:
                self._handles.remove(self._first_step)
            self._first_step = None

    # -- measuring -------------------------------------------------------------------------------
    @torch.no_grad()
    def on_after_backward(self, ev) -> None:
        cadence = ev.step % self.every == 0
        trap = self.trap and self.trapped is None
        if not (cadence or trap):
            return
        params = self._params if self._params is not None else list(ev.model.named_parameters())
        named = [(n, p.grad) for n, p in params if p.grad is not None]
        if not named:
            return
        norms = torch.stack(torch._foreach_norm([g for _, g in named])).double()
        if trap:
            self._mark(ev.step, [n for n, _ in named], norms)
            if ev.step % self.trap_every == 0:
                self._read_marks(ev.run)
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

    def _mark(self, step: int, names: list[str], norms: torch.Tensor) -> None:
        """On the device, no sync: remember the first step each parameter's gradient was non-finite."""
        if self._first_bad is None or len(names) != len(self._bad_names):
            self._first_bad = torch.full((len(names),), -1, dtype=torch.long, device=norms.device)
            self._bad_names = list(names)
        newly = (~torch.isfinite(norms)) & (self._first_bad < 0)
        self._first_bad = torch.where(newly, torch.full_like(self._first_bad, step), self._first_bad)

    def _read_marks(self, run, loss_step: int | None = None) -> None:
        """Read the marks (one small copy); spring when a gradient went bad before the loss did."""
        if self._first_bad is None or self.trapped is not None:
            return
        marks = self._first_bad.tolist()
        bad_steps = [m for m in marks if m >= 0]
        if not bad_steps or (loss_step is not None and min(bad_steps) >= loss_step):
            return  # finite gradients, or they went bad only with (after) the loss: the loss's verdict
        step = min(bad_steps)
        bad = [layer_of(n) for n, m in zip(self._bad_names, marks, strict=True) if m == step]
        first, bad = self._origin(bad, self._bad_names)
        self._report(run, {"kind": "nan_trap", "step": step, "where": "gradient", "layer": first, "layers": bad,
                           "message": f"NaN/inf gradient first appears in layer {first!r} at step {step} "
                                      f"(backprop carries it into {len(bad) - 1} layer(s) before it)"})

    def on_steps_logged(self, ev) -> None:
        if not self.trap or self.trapped is not None:
            return
        loss_step = next((r["step"] for r in ev.records if not math.isfinite(r["loss"])), None)
        self._read_marks(ev.run, loss_step)
        if self.trapped is None and loss_step is not None and self._first_bad is not None:
            self._report(ev.run, _loss_verdict(loss_step))

    @torch.no_grad()
    def on_run_end(self, ev) -> None:
        self._remove_hooks()
        self._params = None
        model = getattr(ev.run, "model", None)
        if not self.trap or self.trapped is not None or model is None or ev.status == "failed":
            return
        if self._first_bad is not None:  # the per-step marks are the evidence: read them a last time
            self._read_marks(None)
            if self.trapped is not None or ev.status != "diverged":
                return
        # a gradient trap between two tests shows in the weights: one pass over them, once per run
        named = list(model.named_parameters())
        bad = [layer_of(n) for n, p in named if not bool(torch.isfinite(p).all())]
        last = getattr(getattr(ev.run, "trainer", None), "step", None)  # the run's last step
        if bad:
            # a diverged step took no update: the weights were written by the step before it
            # (a run "diverged" only at its epoch-end evaluation took its last update: no diverged record)
            loss_diverged = any(r.get("kind") == "diverged" for r in getattr(ev.run, "extra_records", ()))
            step = last - 1 if ev.status == "diverged" and last and loss_diverged else last
            first, bad = self._origin(bad, [n for n, _ in named])
            self._report(None, {"kind": "nan_trap", "step": step, "where": "weights", "layer": first, "layers": bad,
                                "message": f"NaN/inf first appears in layer {first!r}: the update of step {step} "
                                           f"wrote non-finite weights there (and in {len(bad) - 1} layer(s) "
                                           "before it, where backprop carried it)"})
        elif ev.status == "diverged":
            self._report(None, _loss_verdict(last))

    def release(self) -> None:
        self._first_bad = None
        self._remove_hooks()

    def _origin(self, bad: list[str], names: list[str]) -> tuple[str, list[str]]:
        """The layer backprop reached first among ``bad`` (nearest the output), and ``bad`` in forward order."""
        bad = list(dict.fromkeys(bad))
        order = self._order or list(dict.fromkeys(layer_of(n) for n in names))
        rank = {name: i for i, name in enumerate(order)}
        return max(bad, key=lambda n: rank.get(n, -1)), sorted(bad, key=lambda n: rank.get(n, -1))

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


def _loss_verdict(step) -> dict:
    return {"kind": "nan_trap", "step": step, "where": "loss", "layer": None, "layers": [],
            "message": f"the loss went NaN/inf at step {step} with finite weights and gradients before it: "
                       "a bad sample or too high a learning rate (B.4)"}
