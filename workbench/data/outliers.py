"""Outliers: examples far from all others in embedding space, measured against their own class (recipe I.2).

The measure is the mean distance to the k nearest neighbours. Classes differ in how spread out
they are (a class of small, varied shapes is sparser than one of large ones), so an example is
compared with the typical example of its own class, not of the whole dataset; unlabelled data and
classes with fewer than ``MIN_CLASS`` examples use the dataset's typical value.
"""

from __future__ import annotations

import numpy as np

from .findings import Findings

MIN_CLASS = 5


def find_outliers(scan, reps, dist, ratio: float, out: Findings, members=None) -> dict:
    """outlier rows for examples whose neighbours are ``ratio`` x farther than the typical example's of their class."""
    if dist.shape[1] == 0:
        return {"threshold": np.nan, "typical": np.nan}
    far = dist.mean(1)
    typical = float(np.median(far))
    if typical <= 0:
        return {"threshold": np.nan, "typical": typical}
    ref, names = _class_typical(scan, reps, far, typical)
    score = np.clip(1 - ref / np.maximum(far, 1e-12), 0, 1)
    cut = 1 - 1 / ratio
    for j in np.flatnonzero(score >= cut):
        # An outlier's exact copies are just as far from everything else: flag them all.
        for g in (members(reps[j]) if members else [reps[j]]):
            out.add(scan, g, "outlier", float(score[j]), None,
                    f"mean distance to its {dist.shape[1]} nearest neighbours {far[j]:.3g}, "
                    f"{far[j] / ref[j]:.1f}x the typical {ref[j]:.3g} {names[j]}")
    return {"threshold": cut, "typical": typical}


def _class_typical(scan, reps, far, typical):
    """Per rep: the median ``far`` of its class (or the dataset's), and words naming which."""
    ref = np.full(len(reps), typical, np.float64)
    names = np.full(len(reps), "of the dataset", dtype=object)
    y = scan.labels[reps] if scan.labels is not None else None
    if y is None or not np.isfinite(y).any():
        return ref, names
    for c in np.unique(y[np.isfinite(y)]):
        sel = y == c
        if sel.sum() >= MIN_CLASS:
            ref[sel] = max(float(np.median(far[sel])), 1e-12)
            names[sel] = f"of class {c:g}"
    return ref, names
