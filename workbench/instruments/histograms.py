"""Per-layer activation and gradient histograms over time, with dead and saturated layers flagged (recipe P.3).

On a cadence step forward hooks (registered on the step before, removed after the backward, so
off-cadence steps pay nothing) read each layer's output and hook its gradient. Each capture keeps
fixed-bin counts, the mean, the std, the fraction near zero and the fraction saturated; the bins of
a layer are fixed at its first capture in a run (bounded activations use their natural range; a
large layer is binned on an evenly strided subset of ``max_values`` values), so
the captures stack into the "colorful dimension" heat map of a distribution over time. A ReLU
layer whose units never fire on the batch is dead; tanh/sigmoid outputs pinned at their bounds are
saturated: both point at the initialisation (P.3).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.instruments.base import Instrument

# which outputs can die (exactly zero) and which saturate, and where: (low, high) of the range
DYING = (nn.ReLU, nn.ReLU6)
BOUNDED = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0), nn.Hardtanh: None, nn.Hardsigmoid: (0.0, 1.0),
           nn.Softsign: (-1.0, 1.0)}
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
               nn.Softplus, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softsign)


def bounds_of(module: nn.Module) -> tuple[float, float] | None:
    """The output range of a saturating activation, else None."""
    for cls, b in BOUNDED.items():
        if isinstance(module, cls):
            return (float(module.min_val), float(module.max_val)) if b is None else b
    return None


def default_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaf layers worth a histogram: those owning parameters and activation functions, in order."""
    out = []
    for name, m in model.named_modules():
        if next(m.children(), None) is not None:
            continue
        if isinstance(m, ACTIVATIONS) or any(True for _ in m.parameters(recurse=False)):
            out.append((name or type(m).__name__, m))
    return out


class Histograms(Instrument):
    """Activation and gradient distributions per layer every ``every`` steps (starting at step 1)."""

    name, recipe, title = "histograms", "P.3", "Activation and gradient histograms"
    default_every = 250  # a capture costs ~10 ms on tiny_cnn: every 250 steps keeps it near 1% of training
    maxlen = 200
    subscriptions = (("step_end", False), ("after_backward", False), ("run_end", False))

    def __init__(self, every: int | None = None, maxlen: int | None = None, bins: int = 40,
                 zero_eps: float = 1e-6, saturation: float = 0.99, dead_threshold: float = 0.5,
                 saturated_threshold: float = 0.5, headroom: float = 2.0, max_values: int = 4096):
        super().__init__(every, maxlen)
        # big layers are summarised on an evenly strided subset of ``max_values`` values (no RNG used):
        # histogram, mean, std and the zero/saturated fractions; dead units always use every value
        self.max_values = int(max_values)
        self.bins, self.zero_eps, self.saturation = int(bins), float(zero_eps), float(saturation)
        self.dead_threshold, self.saturated_threshold = float(dead_threshold), float(saturated_threshold)
        self.headroom = float(headroom)
        self.edges: dict[tuple[str, str], tuple[float, float]] = {}  # (layer, "act"|"grad") -> (lo, hi)
        self.kinds: dict[str, str] = {}
        self._hooks: list = []
        self._capture: dict | None = None  # layer -> stats while a capture step is in flight

    def reset(self) -> None:
        self.edges.clear()

    # -- arming: hooks only around cadence steps ---------------------------------------------------
    def on_run_start(self, ev) -> None:
        self._arm(ev.trainer.model, 1)

    def on_step_end(self, ev) -> None:
        if ev.step % self.every == 0:
            self._arm(ev.model, ev.step + 1)

    def on_run_end(self, ev) -> None:
        self._disarm()

    def release(self) -> None:
        self._disarm()

    def _arm(self, model: nn.Module, step: int) -> None:
        self._disarm()
        self._capture = {"step": step, "layers": {}}
        for name, module in default_layers(model):
            self.kinds[name] = type(module).__name__
            self._hooks.append(module.register_forward_hook(self._forward_hook(name)))

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._capture = None

    def _forward_hook(self, name: str):
        def hook(module, args, output):
            cap = self._capture
            # evaluation passes (no grad) and other readers of the model are not training steps
            if cap is None or not module.training or not torch.is_grad_enabled() or name in cap["layers"] \
                    or not isinstance(output, torch.Tensor):
                return
            with torch.no_grad():
                entry = {"act": self._stats(name, "act", output.detach(), module)}
            cap["layers"][name] = entry
            if output.requires_grad:
                def grad_hook(g, entry=entry):
                    with torch.no_grad():
                        entry["grad"] = self._stats(name, "grad", g.detach(), None)
                output.register_hook(grad_hook)  # returns None: the gradient passes through unchanged
        return hook

    def on_after_backward(self, ev) -> None:
        cap = self._capture
        if cap is None or cap["step"] != ev.step:
            return
        self._disarm()
        if cap["layers"]:
            self.push({"step": ev.step, "epoch": ev.trainer.epoch + (ev.step - 1) % ev.trainer.steps_per_epoch
                       / ev.trainer.steps_per_epoch, "layers": cap["layers"]})

    # -- one distribution --------------------------------------------------------------------------
    def _stats(self, layer: str, kind: str, x: torch.Tensor, module) -> dict:
        x = x.float()
        key = (layer, kind)
        if key not in self.edges:
            self.edges[key] = self._range(x, module)
        lo, hi = self.edges[key]
        flat = x.reshape(-1)
        sample = flat[::-(-flat.numel() // self.max_values)] if flat.numel() > self.max_values else flat
        counts = torch.histc(sample, bins=self.bins, min=lo, max=hi)
        nums = [sample.mean(), sample.std() if sample.numel() > 1 else sample.new_zeros(()),
                (sample.abs() <= self.zero_eps).float().mean(), (sample < lo).sum().float(),
                (sample > hi).sum().float()]
        b = bounds_of(module) if module is not None else None
        if b is not None:
            span = (b[1] - b[0]) / 2
            mid = (b[1] + b[0]) / 2
            nums.append(((sample - mid).abs() >= self.saturation * span).float().mean())
        if module is not None and isinstance(module, DYING) and x.dim() >= 2:
            # a unit (feature / channel) is dead when it is zero for every example (and position)
            per_unit = x.transpose(0, 1).reshape(x.shape[1], -1).amax(1)
            nums.append((per_unit <= 0).float().mean())
        vals = torch.stack(nums).tolist()
        out = {"mean": vals[0], "std": vals[1], "frac_zero": vals[2], "under": int(vals[3]), "over": int(vals[4]),
               "frac_saturated": vals[5] if b is not None else math.nan,
               "dead_units": vals[-1] if module is not None and isinstance(module, DYING) and x.dim() >= 2
               else math.nan, "n": flat.numel(), "n_hist": sample.numel(),
               "counts": counts.to(torch.int64).cpu().numpy().astype(np.int32)}
        return out

    def _range(self, x: torch.Tensor, module) -> tuple[float, float]:
        b = bounds_of(module) if module is not None else None
        if b is not None:
            return b
        r = float(x.abs().max()) if x.numel() else 0.0
        if not math.isfinite(r) or r == 0.0:
            r = 1.0
        hi = 2.0 ** math.ceil(math.log2(r)) * self.headroom  # a power of two with headroom: round edges
        return (0.0 if float(x.min()) >= 0 else -hi), hi

    # -- reading -----------------------------------------------------------------------------------
    def frame(self) -> pd.DataFrame:
        """Long: one row per capture, layer and kind ("act"/"grad") with the summary statistics."""
        rows = []
        for r in self.since(0):
            for layer, entry in r["layers"].items():
                for kind, st in entry.items():
                    rows.append({"step": r["step"], "epoch": r["epoch"], "layer": layer,
                                 "module": self.kinds.get(layer), "kind": kind,
                                 **{k: v for k, v in st.items() if k != "counts"}})
        return pd.DataFrame(rows)

    def heatmap(self, layer: str, kind: str = "act") -> dict:
        """The "colorful dimension": ``{"steps", "edges", "counts" (captures x bins)}`` for one layer."""
        recs = [r for r in self.since(0) if layer in r["layers"] and kind in r["layers"][layer]]
        lo, hi = self.edges.get((layer, kind), (0.0, 1.0))
        counts = np.stack([r["layers"][layer][kind]["counts"] for r in recs]) if recs else \
            np.zeros((0, self.bins), np.int32)
        return {"steps": [r["step"] for r in recs], "edges": np.linspace(lo, hi, self.bins + 1), "counts": counts}

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap.update(bins=self.bins, edges={f"{k[0]}:{k[1]}": v for k, v in self.edges.items()},
                    modules=dict(self.kinds))
        return snap

    def flags(self) -> list[dict]:
        """Dead and saturated layers at the latest capture, with their evidence."""
        recs = self.since(0)
        if not recs:
            return []
        last, out = recs[-1], []
        for layer, entry in last["layers"].items():
            st = entry["act"]
            if st["dead_units"] == st["dead_units"] and st["dead_units"] >= self.dead_threshold:
                out.append({"layer": layer, "module": self.kinds.get(layer), "flag": "dead", "value": st["dead_units"],
                            "message": f"dead layer {layer} ({self.kinds.get(layer)}): {st['dead_units']:.0%} of "
                                       f"its units never fire on the batch"})
            if st["frac_saturated"] == st["frac_saturated"] and st["frac_saturated"] >= self.saturated_threshold:
                out.append({"layer": layer, "module": self.kinds.get(layer), "flag": "saturated",
                            "value": st["frac_saturated"],
                            "message": f"saturated layer {layer} ({self.kinds.get(layer)}): "
                                       f"{st['frac_saturated']:.0%} of outputs at their bounds"})
        return out

    def summary(self) -> dict:
        recs = self.since(0)
        if not recs:
            return super().summary()
        flags = self.flags()
        step = recs[-1]["step"]
        if flags:
            return self._verdict("fail", "; ".join(f["message"] for f in flags)
                                 + f" at step {step}: an initialisation problem (P.3)", flags=flags, step=step)
        return self._verdict("ok", f"no dead or saturated layers at step {step} "
                                   f"({len(recs[-1]['layers'])} layers)", flags=[], step=step)
