"""First-layer weights as an image grid per epoch: what the network learned to look at (recipe P.4, III.R11).

The first ``Conv2d`` (or a ``Linear`` layer that reads the whole flattened image) is drawn with
``torchvision.utils.make_grid``, each filter scaled to its own range. Noise-like filters mean
trouble (III.R11): the verdict measures how far the filters moved from their initialisation and
how smooth they are (correlation of neighbouring weights; white noise gives ≈0). During training a
record keeps a copy of the filters; its ``"image"`` is drawn the first time someone reads it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torchvision.utils import make_grid

from workbench.errors import ModelError
from workbench.instruments.base import Instrument


def first_layer(model: nn.Module, input_shape: tuple | None = None) -> tuple[str, nn.Module] | None:
    """The first conv layer, or a linear layer taking the whole image (``input_shape`` = (C, H, W))."""
    n_in = math.prod(input_shape) if input_shape and len(input_shape) == 3 else None
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
        if isinstance(m, nn.Linear) and not isinstance(m, nn.LazyLinear):
            return (name, m) if n_in is not None and m.in_features == n_in else None
    return None


def filters_of(weight: torch.Tensor, module: nn.Module, input_shape) -> torch.Tensor:
    """Weights as images ``(N, C, H, W)``: conv filters as they are, linear rows reshaped to the input."""
    w = weight.detach().float().cpu()
    if isinstance(module, nn.Conv2d):
        if w.shape[1] in (1, 3):
            return w
        return w.reshape(-1, 1, *w.shape[2:])  # one grey tile per (filter, input channel)
    c, h, wd = input_shape
    return w.reshape(w.shape[0], c, h, wd)


def grid_of(filters: torch.Tensor, nrow: int = 8, padding: int = 1) -> torch.Tensor:
    """``make_grid`` with each filter min-max scaled on its own (``scale_each``), as (3, H, W) in [0, 1]."""
    return make_grid(filters, nrow=nrow, padding=padding, normalize=True, scale_each=True, pad_value=1.0)


def smoothness(filters: torch.Tensor) -> float:
    """Mean correlation of horizontally and vertically neighbouring weights (white noise ≈ 0)."""
    f = filters.double()
    f = f - f.mean(dim=(-2, -1), keepdim=True)
    pairs = [(f[..., :, :-1], f[..., :, 1:]), (f[..., :-1, :], f[..., 1:, :])]
    num = sum(float((a * b).sum()) for a, b in pairs if a.numel())
    den = sum(float(torch.sqrt((a * a).sum() * (b * b).sum())) for a, b in pairs if a.numel())
    return num / den if den > 0 else math.nan


class FilterRecord(dict):
    """One capture: ``"filters"`` (N, C, H, W), and the grid as ``"image"``, drawn when first read."""

    nrow = 8

    def __missing__(self, key):
        if key != "image" or "filters" not in self:
            raise KeyError(key)
        grid = grid_of(self["filters"], self.nrow)
        image = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        self["image"] = image
        return image


class FirstLayer(Instrument):
    """The first layer's filters as an image grid at the run's start and after each epoch."""

    name, recipe, title = "first_layer", "P.4", "First-layer filters"
    default_every = 1
    cadence_unit = "epoch"
    maxlen = 50
    subscriptions = (("epoch_end", False),)

    def __init__(self, every: int | None = None, maxlen: int | None = None, nrow: int = 8,
                 min_change: float = 0.05):
        super().__init__(every, maxlen)
        self.nrow, self.min_change = int(nrow), float(min_change)
        self.layer: str | None = None
        self._init: torch.Tensor | None = None

    def reset(self) -> None:
        self.layer, self._init = None, None

    def on_run_start(self, ev) -> None:
        self._record(ev.trainer.model, epoch=0, step=0)

    def on_epoch_end(self, ev) -> None:
        if ev.epoch % self.every == 0:
            self._record(ev.trainer.model, epoch=ev.epoch, step=ev.trainer.step)

    @torch.no_grad()
    def _record(self, model: nn.Module, epoch: int, step: int) -> None:
        shape = self.session.input_shape if self.session is not None else None
        found = first_layer(model, shape)
        if found is None:
            return
        name, module = found
        filters = filters_of(module.weight, module, shape)
        if self._init is None:
            self.layer, self._init = name, filters.clone()
        change = float((filters - self._init).norm() / self._init.norm().clamp_min(1e-12))
        record = FilterRecord(epoch=epoch, step=step, layer=name, filters=filters.clone(), change=change,
                              smoothness=smoothness(filters), shape=tuple(filters.shape))
        record.nrow = self.nrow
        self.push(record)

    @staticmethod
    def grid(model: nn.Module, input_shape=None, nrow: int = 8) -> torch.Tensor:
        """The grid for any model, now (raises ModelError when it has no image first layer)."""
        found = first_layer(model, input_shape)
        if found is None:
            raise ModelError("the model has no first Conv2d or image-input Linear layer to draw (P.4)")
        return grid_of(filters_of(found[1].weight, found[1], input_shape), nrow)

    # -- reading -----------------------------------------------------------------------------------
    def image(self, index: int = -1) -> np.ndarray | None:
        """The grid at one record (the latest by default) as an ``(H, W, 3)`` uint8 array."""
        recs = self.since(0)
        return recs[index]["image"] if recs else None

    def rgba(self, index: int = -1) -> np.ndarray | None:
        """The grid packed for Bokeh ``image_rgba``: ``(H, W)`` uint32, rows flipped (Bokeh's y is up)."""
        img = self.image(index)
        if img is None:
            return None
        rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
        return np.ascontiguousarray(rgba[::-1]).view(np.uint32)[..., 0]

    def frame(self):
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in r.items() if k not in ("image", "filters")} for r in self.since(0)])

    def summary(self) -> dict:
        recs = self.since(0)
        if not recs:
            return self._verdict("empty", "no image first layer seen yet (needs a Conv2d or an image-input Linear)")
        last = recs[-1]
        ev = {"layer": last["layer"], "epoch": last["epoch"], "change": last["change"],
              "smoothness": last["smoothness"]}
        if last["epoch"] >= 1 and last["change"] < self.min_change:
            return self._verdict("warn", f"first layer {last['layer']} barely moved from its random init "
                                         f"({last['change']:.1%} < {self.min_change:.0%} after epoch {last['epoch']}): "
                                         "noise-like filters, LR too low or the layer is not learning (III.R11)", **ev)
        return self._verdict("ok", f"first layer {last['layer']} moved {last['change']:.0%} from its init by epoch "
                                   f"{last['epoch']}; neighbour correlation {last['smoothness']:.2f}", **ev)
