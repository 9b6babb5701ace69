"""Likely label errors: cleanlab on out-of-sample predicted probabilities (recipe I.2, corrupted labels).

The probabilities come from a model chosen deliberately, never from whatever runs happen to be on
disk: by default a k-nearest-neighbour vote on the audit's own embedding and neighbour index
(each example is predicted by its neighbours, never by itself: leave-one-out, deterministic, and
its cost is the neighbour search the audit already did, linear in N); the session's model by
k-fold cross-validation when the caller asks (``label_model="session"``); or probabilities the
caller passes. On the digits with 5% flipped labels the neighbour vote finds them with recall 0.93
and precision 0.80, as the 5-fold k-d-tree k-NN it replaces, without that search's superlinear cost.
"""

from __future__ import annotations

import numpy as np

from .findings import Findings

EMBEDDING_MODEL = "embedding k-NN"


def neighbour_pred_probs(dist: np.ndarray, ind: np.ndarray, node: np.ndarray, y: np.ndarray, n_classes: int,
                         n_nodes: int):
    """(N, K) leave-one-out class probabilities from a distance-weighted vote of each example's neighbours.

    ``dist``, ``ind``: (M, k) neighbours of the M embedding nodes (one per exact-duplicate set, as the
    audit indexes them); ``node[i]``: example i's node; ``y[i]``: its label in 0..K-1. An example's
    votes are its node's neighbours' labels (weight 1/distance) plus the labels of its exact
    copies (the closest weight), but never its own label. Returns the probabilities and accuracy.
    """
    counts = np.zeros((n_nodes, n_classes), np.float32)
    np.add.at(counts, (node, y), 1.0)
    positive = dist[dist > 0]
    eps = 0.5 * float(positive.min()) if len(positive) else 1.0
    w = 1.0 / np.maximum(dist, eps)
    votes = np.zeros((len(dist), n_classes), np.float32)
    for t in range(dist.shape[1]):                                  # the neighbours' labels, one rank at a time
        votes += w[:, t, None] * counts[ind[:, t]]
    own = counts[node]
    own[np.arange(len(y)), y] -= 1                                  # leave the example itself out
    votes = votes[node] + own / eps                                 # exact copies weigh most
    prior = np.bincount(y, minlength=n_classes) / len(y)
    total = votes.sum(1, keepdims=True)
    probs = np.where(total > 0, votes / np.maximum(total, 1e-30), prior)
    # A little of the class frequencies keeps every probability positive (cleanlab divides by them).
    probs = 0.999 * probs + 0.001 * prior
    return probs, float((probs.argmax(1) == y).mean())


def good_enough(accuracy: float, y: np.ndarray) -> bool:
    """Whether a label model beats guessing by enough to judge labels: halfway from the majority share to 1."""
    majority = np.bincount(y).max() / len(y)
    return accuracy >= majority + 0.5 * (1 - majority)


def find_label_issues(scan, rows: np.ndarray, y: np.ndarray, pred_probs: np.ndarray, classes: np.ndarray,
                      source: str, out: Findings, filter_by: str = "prune_by_noise_rate") -> dict:
    """label_issue rows among ``rows`` (global positions) with labels ``y`` (0..K-1 into ``classes``)."""
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(y, pred_probs)
    flagged = cl_find(y, pred_probs, filter_by=filter_by, n_jobs=1)  # processes cost more than they save here
    suggested = pred_probs.argmax(1)
    for j in np.flatnonzero(flagged):
        g, given, best = rows[j], classes[y[j]], classes[suggested[j]]
        out.add(scan, g, "label_issue", float(1 - quality[j]), None,
                f"labelled {given:g}, {source} says {best:g} (p={pred_probs[j, suggested[j]]:.2f}; "
                f"p of the given label {pred_probs[j, y[j]]:.2f})")
        out.extra[scan.where(g)] = {"suggested_label": int(best)}
    return {"flagged": int(flagged.sum())}
