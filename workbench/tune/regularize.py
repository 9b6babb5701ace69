"""The regularization toolkit (recipe III.R): what the fit loop lacks, as small helpers.

``fit`` already has weight decay (III.R8), early stopping that restores the best weights (III.R9),
``augment=`` and ``lr_schedule=``; ``models.mlp`` has dropout and ``models.torchvision_model``
pretrained backbones (III.R4). Here: an augmentation preset on torchvision.transforms.v2 that says
what it does (III.R2, shown in the batch view), input downsampling (III.R6), the dropout/batch-norm
warning (III.R7), and ``toolkit()``: the table of every technique and how to switch it on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.datasets import Preprocessing, TensorPairDataset, labels_of
from workbench.errors import DataError, WorkbenchError

PRESETS = {
    # name -> (transforms.v2 factory arguments, words for the batch view)
    "shift": ({"translate": (0.125, 0.125)}, "random shift up to 1/8 of the image"),
    "light": ({"degrees": 10, "translate": (0.1, 0.1), "scale": (0.9, 1.1)},
              "random rotation ±10°, shift up to 10%, scale 0.9-1.1"),
    "strong": ({"degrees": 20, "translate": (0.15, 0.15), "scale": (0.8, 1.2), "shear": 10},
               "random rotation ±20°, shift up to 15%, scale 0.8-1.2, shear ±10°"),
}


class Augmentation:
    """A per-example random augmentation of a batch (recipe III.R2), usable as ``fit(augment=...)``.

    Built on ``torchvision.transforms.v2``; ``flip`` adds a horizontal flip (not for digits or text).
    ``description`` says in words what it does, for the batch view. Draws come from torch's RNG, so
    a seeded run augments the same way every time (recipe II.1, G.2).
    """

    def __init__(self, preset: str = "light", flip: bool = False, erase: float = 0.0):
        from torchvision.transforms import v2

        if preset not in PRESETS:
            raise WorkbenchError(f"augmentation preset must be one of {sorted(PRESETS)}, got {preset!r}")
        if not 0.0 <= erase <= 1.0:
            raise WorkbenchError(f"erase is a probability in [0, 1], got {erase!r}")
        kwargs, words = dict(PRESETS[preset][0]), PRESETS[preset][1]  # a copy: pop must not edit the preset
        steps = [v2.RandomAffine(degrees=kwargs.pop("degrees", 0), **kwargs)]
        parts = [words]
        if flip:
            steps.append(v2.RandomHorizontalFlip())
            parts.append("horizontal flip (p=0.5)")
        if erase:
            steps.append(v2.RandomErasing(p=erase, scale=(0.02, 0.1)))
            parts.append(f"random erasing (p={erase:g})")
        self.preset, self.flip, self.erase = preset, flip, erase
        self.transform = v2.Compose(steps)
        self.description = "; ".join(parts)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise DataError(f"augmentation needs image batches (N, C, H, W), got shape {tuple(x.shape)}")
        return torch.stack([self.transform(xi) for xi in x])  # per example: each gets its own draw

    def __repr__(self) -> str:  # the run config records repr(augment)
        return f"Augmentation({self.preset!r}, flip={self.flip}, erase={self.erase:g}: {self.description})"


def augmentation(preset: str = "light", flip: bool = False, erase: float = 0.0) -> Augmentation:
    """An augmentation preset ("shift", "light", "strong") for ``fit(augment=...)`` (recipe III.R2)."""
    return Augmentation(preset, flip=flip, erase=erase)


def downsample(data, factor: int = 2, restore_size: bool = False):
    """Smaller inputs (recipe III.R6): average-pool images by ``factor``.

    ``data``: a batch tensor (N, C, H, W) or a Dataset (its examples pooled into a new
    TensorPairDataset with the step recorded in its preprocessing). ``restore_size`` scales the
    result back up (nearest) so a model built for the full size still fits, with the detail gone.
    """
    factor = int(factor)
    if factor < 1:
        raise WorkbenchError(f"downsample factor must be >= 1, got {factor}")
    if isinstance(data, torch.Tensor):
        return _pool(data, factor, restore_size)
    X, Y = _tensors(data)
    prep = getattr(data, "preprocessing", None) or Preprocessing()
    step = f"downsampled {factor}x by average pooling" + (" (scaled back up)" if restore_size else "") + " (III.R6)"
    new_prep = Preprocessing(steps=[*prep.steps, step], mean=prep.mean, std=prep.std, value_range=prep.value_range)
    name = f"{getattr(data, 'name', '') or 'data'}-down{factor}"
    return TensorPairDataset(_pool(X, factor, restore_size), Y, preprocessing=new_prep,
                             classes=getattr(data, "classes", None), name=name)


def dropout_before_batchnorm(model: nn.Module) -> list[tuple[str, str]]:
    """(dropout, batch norm) module-name pairs where dropout feeds a batch norm (recipe III.R7).

    Dropout changes the variance a batch norm sees between training and evaluation, so its running
    statistics are wrong at test time ("variance shift"); put dropout after the last batch norm.
    """
    pairs, pending = [], None
    for name, m in model.named_modules():
        if isinstance(m, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.Dropout3d):
            pending = name
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and pending is not None:
            pairs.append((pending, name))
            pending = None
    return pairs


TOOLKIT = [
    ("III.R1", "more data", "the best regularizer: collect or label more; then ensembles (session.ensemble)"),
    ("III.R2", "data augmentation", "fit(augment=tune.augmentation('light')) or augment=True (random shifts)"),
    ("III.R4", "pretrained network", "models.torchvision_model(name, weights='IMAGENET1K_V1' or a .pt file)"),
    ("III.R6", "smaller input", "tune.downsample(dataset, factor=2) for a new Session"),
    ("III.R7", "dropout", "models.mlp(dropout=0.2); tune.dropout_before_batchnorm(model) finds bad placements"),
    ("III.R8", "weight decay", "fit(weight_decay=1e-4); search() tries {1e-4, 1e-5, 0}"),
    ("III.R9", "early stopping", "fit(early_stopping=3) stops after 3 epochs without progress, best weights back"),
    ("III.R10", "larger model, early-stopped", "session.fit(model_kwargs={'width': 32}, early_stopping=3)"),
]


def toolkit():
    """The regularization techniques of recipe III.R and how to switch each on here, as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(TOOLKIT, columns=["recipe", "technique", "how"])


def _pool(x: torch.Tensor, factor: int, restore: bool) -> torch.Tensor:
    if x.dim() != 4 or not x.is_floating_point():
        raise DataError(f"downsampling needs float image batches (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h < factor or w < factor:
        raise DataError(f"cannot downsample {h}x{w} images by {factor}")
    small = F.avg_pool2d(x, factor, ceil_mode=True)  # ceil: an odd edge keeps its last row instead of losing it
    return F.interpolate(small, size=(h, w), mode="nearest") if restore else small


def _tensors(ds):
    if isinstance(ds, TensorPairDataset):
        return ds.X, ds.Y
    if not hasattr(ds, "__len__") or not hasattr(ds, "__getitem__"):
        raise DataError(f"downsample needs a tensor batch or a map-style Dataset, got {type(ds).__name__}")
    xs = [torch.as_tensor(ds[i][0]) for i in range(len(ds))]
    return torch.stack(xs), labels_of(ds)
