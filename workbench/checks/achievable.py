"""The best loss and accuracy a batch allows (recipe II.8, L.3): what "overfit one batch" can reach.

Examples whose inputs are identical but whose targets differ cannot all be right. For a causal
sequence model the input of position t is the prefix x[:t+1], so sequences that share a prefix and
then continue differently ("the cat", "the dog") make the next token ambiguous. Grouping positions
by their context gives the floor of cross-entropy (the empirical conditional entropy of the targets
given the context), the ceiling of accuracy (each context's most frequent target) and, for real
targets, the floor of MSE (the spread of the targets within a context).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import torch


def contexts(x: torch.Tensor, causal: bool) -> list:
    """One hashable key per prediction: per example, or per (example, step) of the prefix when ``causal``."""
    xc = x.detach().cpu()
    if not causal:
        return [hash(xc[i].numpy().tobytes()) for i in range(len(xc))]
    keys = []
    for row in xc:
        h = 0
        for t in range(row.shape[0]):
            h = hash((h, row[t].numpy().tobytes()))  # rolling: the key of the prefix x[:t+1]
            keys.append(h)
    return keys


def achievable(x: torch.Tensor, y: torch.Tensor, *, causal: bool, real: bool) -> dict:
    """``loss_floor`` (cross-entropy, or MSE when ``real``), ``max_accuracy`` (None when ``real``), and how many
    predictions share a context with a different target (``ambiguous``)."""
    keys = contexts(x, causal)
    yt = y.detach().cpu()
    targets = yt.reshape(len(keys), -1) if real else yt.reshape(-1)
    if len(targets) != len(keys):
        return {"loss_floor": 0.0, "max_accuracy": None if real else 1.0, "ambiguous": 0, "contexts": len(keys)}
    groups = defaultdict(list)
    for k, i in zip(keys, range(len(keys)), strict=True):
        groups[k].append(i)
    n = len(keys)
    if real:
        t = targets.double()
        sse = sum(float(((t[idx] - t[idx].mean(0)) ** 2).sum()) for idx in groups.values() if len(idx) > 1)
        ambiguous = sum(len(idx) for idx in groups.values() if len(idx) > 1 and not bool((t[idx] == t[idx[0]]).all()))
        return {"loss_floor": sse / t.numel(), "max_accuracy": None, "ambiguous": ambiguous, "contexts": len(groups)}
    entropy, best, ambiguous = 0.0, 0, 0
    labels = targets.tolist()
    for idx in groups.values():
        counts = Counter(labels[i] for i in idx)
        m = len(idx)
        entropy -= sum(c * math.log(c / m) for c in counts.values())
        best += max(counts.values())
        if len(counts) > 1:
            ambiguous += m
    return {"loss_floor": entropy / n, "max_accuracy": best / n, "ambiguous": ambiguous, "contexts": len(groups)}
