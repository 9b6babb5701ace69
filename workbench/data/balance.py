"""Class balance: counts per class and split, the imbalance ratio, rare classes, and shift between splits."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .findings import Findings


def class_table(scan, usable: np.ndarray, classes: np.ndarray) -> pd.DataFrame:
    """Counts per class (rows) and split (columns)."""
    cols = {}
    for s, name in enumerate(scan.split_names):
        y = scan.labels[usable & (scan.split_id == s)]
        if len(y):
            cols[name] = pd.Series(y).value_counts().reindex(classes, fill_value=0).astype(int).values
    t = pd.DataFrame(cols, index=pd.Index(classes, name="class"))
    t.index = t.index.map(lambda c: int(c) if float(c).is_integer() else c)
    return t


def find_imbalance(scan, usable, table: pd.DataFrame, ratio: float, out: Findings) -> dict:
    """class_imbalance rows: every example of a class with fewer than ``ratio`` x the average count."""
    meta = {}
    for name in table.columns:
        counts = table[name]
        expected = counts.sum() / len(counts)
        s = scan.split_names.index(name)
        nz = counts[counts > 0]
        meta[name] = {"imbalance_ratio": float(counts.max() / nz.min()) if len(nz) else np.nan,
                      "rare_classes": [c for c in counts.index if counts[c] < ratio * expected]}
        for c in meta[name]["rare_classes"]:
            score = float(1 - counts[c] / expected)
            detail = (f"class {c} has {counts[c]} examples in {name}, {counts[c] / expected:.0%} of the "
                      f"average {expected:.0f} (largest: {counts.max()})")
            if counts[c] == 0:
                out.add_at(name, -1, "class_imbalance", 1.0, None, detail)
                continue
            for g in np.flatnonzero(usable & (scan.split_id == s) & (scan.labels == c)):
                out.add(scan, g, "class_imbalance", score, None, detail)
    return meta


def find_shift(table: pd.DataFrame, alpha: float, min_tvd: float, out: Findings) -> dict:
    """split_shift rows (index -1): classes whose share differs between the first split and another one."""
    from scipy.stats import chi2_contingency

    meta = {}
    if table.shape[1] < 2:
        return meta
    ref = table.columns[0]
    for name in table.columns[1:]:
        t = table[[ref, name]]
        t = t[(t > 0).any(axis=1)]
        if len(t) < 2:
            continue
        p, q = t[ref] / t[ref].sum(), t[name] / t[name].sum()
        tvd = float(0.5 * (p - q).abs().sum())
        pval = float(chi2_contingency(t.values.T).pvalue)
        shifted = pval < alpha and tvd >= min_tvd
        meta[name] = {"vs": ref, "total_variation": tvd, "p_value": pval, "shifted": shifted}
        if not shifted:
            continue
        rel = (p - q).abs() / np.maximum(p, q)
        for c in rel.index[(rel >= 0.25) & ((p - q).abs() >= 0.01)]:
            out.add_at(name, -1, "split_shift", float(min(1.0, rel[c])), None,
                       f"class {c}: {p[c]:.1%} of {ref}, {q[c]:.1%} of {name} "
                       f"(total variation {tvd:.2f}, chi-square p={pval:.1e})")
    return meta
