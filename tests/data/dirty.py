"""A fixed recipe that injects known issues into the digits data, and recall/precision against it.

Copies (exact, leak, near) are appended; corrupt, dark, bright, low-information and outlier images
replace originals in place; label flips change train labels in place. Each injection uses its own
examples, so one audit of the result can be scored per issue type.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from workbench.datasets import digits

NEAR_KINDS = ("resize", "jpeg", "shift1", "shift2", "brightness")


def jpeg(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    a = (x[0].numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    return torch.tensor(np.asarray(Image.open(buf)), dtype=torch.float32)[None] / 255


def shift(x: torch.Tensor, dx: int) -> torch.Tensor:
    """Shifted horizontally by ``dx`` pixels, background filled in (digits have empty side columns)."""
    y = torch.zeros_like(x)
    if dx > 0:
        y[..., dx:] = x[..., :-dx]
    else:
        y[..., :dx] = x[..., -dx:]
    return y


def near_copy(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "resize":  # up to 16x16 and back, as a resized-then-restored copy
        up = F.interpolate(x[None], size=16, mode="bilinear", antialias=True)
        return F.interpolate(up, size=8, mode="bilinear", antialias=True)[0].clamp(0, 1)
    if kind == "jpeg":
        return jpeg(x)
    if kind == "shift1":
        return shift(x, 1)
    if kind == "shift2":
        return shift(x, -2)
    if kind == "brightness":
        return (x + 0.15).clamp(0, 1)
    raise ValueError(kind)


def dirty_digits(seed: int = 0, label_noise: float = 0.05):
    """({"train": (X, Y), "test": (X, Y)}, truth {issue: set of (split, index)}, near kinds {(split, i): kind})."""
    tr, te = digits()
    X, Y = tr.X.clone(), tr.Y.clone()
    Xt, Yt = te.X.clone(), te.Y.clone()
    n, nt = len(X), len(Xt)
    rng = np.random.default_rng(seed)
    pick = iter(rng.permutation(n).tolist())
    take = lambda k: [next(pick) for _ in range(k)]  # noqa: E731 - disjoint draws
    truth = {k: set() for k in ("exact_duplicate", "train_test_leak", "near_duplicate", "corrupt", "dark",
                                "bright", "low_information", "outlier", "noise", "label_issue")}
    kinds = {}
    add_X, add_Y, add_Xt, add_Yt = [], [], [], []
    for i in take(30):                                   # exact duplicates within train
        add_X.append(X[i]), add_Y.append(Y[i])
        truth["exact_duplicate"] |= {("train", i), ("train", n + len(add_X) - 1)}
    for i in take(20):                                   # train examples copied into test
        add_Xt.append(X[i]), add_Yt.append(Y[i])
        truth["train_test_leak"] |= {("train", i), ("test", nt + len(add_Xt) - 1)}
    for k, i in enumerate(take(60)):                     # near copies within train
        kind = NEAR_KINDS[k % len(NEAR_KINDS)]
        add_X.append(near_copy(X[i], kind)), add_Y.append(Y[i])
        j = n + len(add_X) - 1
        truth["near_duplicate"] |= {("train", i), ("train", j)}
        kinds[("train", j)] = kinds[("train", i)] = kind
    corrupt = take(20)
    for k, i in enumerate(corrupt):                      # NaN, inf, blank, 0-255 instead of 0-1
        X[i] = [lambda x: x.masked_fill(x > 0.5, float("nan")), lambda x: x.masked_fill(x > 0.5, float("inf")),
                lambda x: torch.zeros_like(x), lambda x: x * 255][k % 4](X[i])
        truth["corrupt"].add(("train", i))
    for i in take(15):
        X[i] = X[i] * 0.15
        truth["dark"].add(("train", i))
    for i in take(15):
        X[i] = 0.85 + 0.15 * X[i]
        truth["bright"].add(("train", i))
    for i in take(15):                                    # a stray dot or two: nearly empty
        x = torch.zeros_like(X[i])
        x[0, 1 + i % 6, 1 + (i // 6) % 6] = 1.0
        x[0, 2 + i % 5, 2 + (i // 5) % 5] = 0.5
        X[i] = x
        truth["low_information"].add(("train", i))
    for i in take(15):                                    # uniform noise: far from every digit, and pure noise
        X[i] = torch.rand(X[i].shape, generator=torch.Generator().manual_seed(i))
        truth["outlier"].add(("train", i))
        truth["noise"].add(("train", i))
    for i in take(int(label_noise * n)):                  # wrong labels
        Y[i] = int((Y[i] + rng.integers(1, 10)) % 10)
        truth["label_issue"].add(("train", i))
    X = torch.cat([X, torch.stack(add_X)])
    Y = torch.cat([Y, torch.stack(add_Y)])
    Xt = torch.cat([Xt, torch.stack(add_Xt)])
    Yt = torch.cat([Yt, torch.stack(add_Yt)])
    return {"train": (X, Y), "test": (Xt, Yt)}, truth, kinds


def scores(report, truth) -> pd.DataFrame:
    """Recall and precision per injected issue type (flagged examples vs injected ones).

    ``on_clean``: share of the flags that fall on examples nothing was injected into (a noise image
    is also low in information, a near-empty one also an outlier: those are not counted here).
    """
    rows = []
    touched = set().union(*truth.values())
    for issue, want in truth.items():
        got = set(map(tuple, report.of(issue)[["split", "index"]].itertuples(index=False)))
        hit = len(want & got)
        rows.append({"issue": issue, "injected": len(want), "flagged": len(got),
                     "recall": hit / max(len(want), 1), "precision": hit / max(len(got), 1),
                     "on_clean": len(got - touched) / max(len(got), 1)})
    return pd.DataFrame(rows).set_index("issue")
