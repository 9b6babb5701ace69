"""Corrupt examples and labels: undecodable files, NaN/inf, blank images, out-of-range values, odd shapes, bad labels.

Also what the file listing refused: FIFOs, symlink loops, empty class folders (split-level rows).

The scanner already recorded why an input is unusable (it decodes every example once); this module
turns that into findings and adds the label checks, which need the task and the number of classes.
"""

from __future__ import annotations

import numpy as np

from .findings import Findings


def find_corrupt(scan, label_reasons: dict[int, str], out: Findings) -> None:
    """One corrupt row per broken example, with every reason in plain words."""
    reasons = dict(scan.corrupt)
    for g, why in label_reasons.items():
        reasons[g] = f"{reasons[g]}; {why}" if g in reasons else why
    for g, why in sorted(reasons.items()):
        out.add(scan, g, "corrupt", 1.0, None, why)
    # files the listing refused (FIFOs, symlink loops, empty class folders) are no example: split-level rows
    for split, notes in getattr(scan, "notes", {}).items():
        for why in notes:
            out.add_at(split, -1, "corrupt", 1.0, None, why)


def check_labels(scan, task: str, num_classes: int | None) -> tuple[np.ndarray, dict[int, str]]:
    """Which labels are usable, and why the others cannot be right for the task ({position: reason})."""
    if scan.labels is None:
        return np.zeros(scan.n, bool), {}
    y = scan.labels
    usable = np.isfinite(y)
    labelled = np.zeros(len(scan.split_names), bool)
    np.logical_or.at(labelled, scan.split_id, usable)
    # an example that could not be read has no label either; its reading error says it all
    reasons = {int(g): "label is missing (NaN)" for g in np.flatnonzero(~usable & labelled[scan.split_id])
               if g not in scan.corrupt}
    if task != "classification":
        return usable, reasons
    frac = usable & (y != np.round(y))
    neg = usable & ~frac & (y < 0)
    high = usable & ~frac & (y >= num_classes) if num_classes is not None else np.zeros_like(usable)
    for g in np.flatnonzero(frac | neg | high):
        v = y[g]
        reasons[int(g)] = (f"label {v:g} is not a whole number (classification)" if frac[g] else
                           f"label {v:g} is negative" if neg[g] else
                           f"label {v:g} is not below the {num_classes} classes")
    return usable & ~(frac | neg | high), reasons
