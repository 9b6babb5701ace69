"""Likely label errors: cleanlab on out-of-sample predicted probabilities (recipe I.2, corrupted labels).

The probabilities come from the caller (e.g. a cross-validated model of the session's) when given,
otherwise from a k-fold fit of a k-nearest-neighbour classifier on the audit's embeddings (as
cleanlab's Datalab does): every example is predicted by a model that never saw it, which is what
confident learning needs. On the digits with 5% flipped labels the k-NN model finds them with about
the recall of a logistic regression and far better precision (0.8 vs 0.6), at the same cost.
"""

from __future__ import annotations

import numpy as np

from .findings import Findings


def kfold_pred_probs(E: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0, k: int = 10):
    """(N, K) out-of-sample class probabilities from a k-fold k-NN classifier, its accuracy and the folds used."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    folds = max(2, min(folds, int(np.bincount(y).min())))
    model = KNeighborsClassifier(n_neighbors=min(k, len(y) - len(y) // folds - 1), weights="distance",
                                 algorithm="kd_tree")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    p = cross_val_predict(model, E, y, cv=cv, method="predict_proba")
    return p, float((p.argmax(1) == y).mean()), folds


def find_label_issues(scan, rows: np.ndarray, y: np.ndarray, pred_probs: np.ndarray, classes: np.ndarray,
                      source: str, out: Findings, filter_by: str = "prune_by_noise_rate") -> dict:
    """label_issue rows among ``rows`` (global positions) with labels ``y`` (0..K-1 into ``classes``)."""
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(y, pred_probs)
    flagged = cl_find(y, pred_probs, filter_by=filter_by)
    suggested = pred_probs.argmax(1)
    for j in np.flatnonzero(flagged):
        g, given, best = rows[j], classes[y[j]], classes[suggested[j]]
        out.add(scan, g, "label_issue", float(1 - quality[j]), None,
                f"labelled {given:g}, {source} says {best:g} (p={pred_probs[j, suggested[j]]:.2f}; "
                f"p of the given label {pred_probs[j, y[j]]:.2f})")
        out.extra[scan.where(g)] = {"suggested_label": int(best)}
    return {"flagged": int(flagged.sum())}
