"""Outliers: examples far from all others in embedding space (mean distance to their k nearest neighbours)."""

from __future__ import annotations

import numpy as np

from .findings import Findings


def find_outliers(scan, reps, dist, ratio: float, out: Findings, members=None) -> dict:
    """outlier rows for examples whose neighbours are ``ratio`` x farther than the typical example's."""
    if dist.shape[1] == 0:
        return {"threshold": np.nan, "typical": np.nan}
    far = dist.mean(1)
    typical = float(np.median(far))
    if typical <= 0:
        return {"threshold": np.nan, "typical": typical}
    score = np.clip(1 - typical / np.maximum(far, 1e-12), 0, 1)
    cut = 1 - 1 / ratio
    for j in np.flatnonzero(score >= cut):
        # An outlier's exact copies are just as far from everything else: flag them all.
        for g in (members(reps[j]) if members else [reps[j]]):
            out.add(scan, g, "outlier", float(score[j]), None,
                    f"mean distance to its {dist.shape[1]} nearest neighbours {far[j]:.3g}, "
                    f"{far[j] / typical:.1f}x the typical {typical:.3g}")
    return {"threshold": cut, "typical": typical}
