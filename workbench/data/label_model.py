"""Who judges the labels (recipe I.2): the model chosen by ``label_model``, its held-out accuracy, its findings.

The audit's ``label_model`` option picks the model deliberately: the leave-one-out neighbour vote
on the audit's own embedding by default (labels.py), the session's model by cross-validation when
asked (cross_val.py, run before the audit by ``audit_session``), or the caller's ``pred_probs``. A
model that does not beat guessing by half the remaining distance is skipped, with that reason.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import DataError

from . import labels
from .report import LabelModel


def judge_labels(scanned, task, usable, rep, reps, neighbours_of_reps, opts, out, skipped, note) -> LabelModel:
    """Run the label finder when it applies; returns which model judged the labels, and how well it did."""
    given = opts.pred_probs is not None
    model = (LabelModel(opts.pred_probs_model, None, opts.pred_probs_source) if given else
             LabelModel(labels.EMBEDDING_MODEL, None, f"leave-one-out vote of the {opts.neighbours} nearest "
                        "neighbours (distance-weighted) on the audit's embedding; deterministic"))
    if note:
        model.evaluation += f"; {note}"
    why = _label_skip(scanned, task, usable, opts)
    if why:
        skipped["label_issue"] = model.skipped = why
        return model
    rows = np.flatnonzero(usable & scanned.ok)
    if given:
        rows, P = _given_probs(scanned, rows, opts.pred_probs)
    elif neighbours_of_reps[0] is None:
        skipped["label_issue"] = model.skipped = "skipped: fewer than 3 distinct usable examples"
        return model
    classes, y = np.unique(scanned.labels[rows], return_inverse=True)
    counts = np.bincount(y)
    keep = counts[y] >= 2  # a class seen once cannot be judged by a model that did not see it
    rows, y = rows[keep], np.unique(y[keep], return_inverse=True)[1]
    classes = classes[counts >= 2]
    if len(rows) < 10 or len(classes) < 2:
        skipped["label_issue"] = model.skipped = (
            "skipped: fewer than 2 classes with 2 or more usable labelled examples" if len(classes) < 2
            else "skipped: fewer than 10 usable labelled examples")
        return model
    if given:
        P = P[keep]
        if P.shape[1] <= int(classes.max()):
            raise DataError(f"audit: pred_probs has {P.shape[1]} columns but the labels hold class "
                            f"{classes.max():g}; pass one column per class")
        P = P[:, classes.astype(int)]
        P = P / P.sum(1, keepdims=True).clip(1e-12)
        model.accuracy = float((P.argmax(1) == y).mean())
    else:
        dist, ind = neighbours_of_reps
        row_of = np.full(scanned.n, -1)
        row_of[reps] = np.arange(len(reps))
        P, model.accuracy = labels.neighbour_pred_probs(dist, ind, row_of[rep[rows]], y, len(classes), len(reps))
    if not labels.good_enough(model.accuracy, y):
        # A model that barely beats guessing calls every label wrong: its findings would be noise.
        majority = np.bincount(y).max() / len(y)
        skipped["label_issue"] = model.skipped = (
            f"skipped: the label model's held-out accuracy {model.accuracy:.0%} is too close to guessing "
            f"({majority:.0%}); pass pred_probs= from a better model")
        return model
    labels.find_label_issues(scanned, rows, y, P, classes, "the label model", out, opts.label_filter)
    return model


def _label_skip(scanned, task, usable, opts) -> str:
    """Why label issues cannot be looked for here ("" when they can)."""
    if "label_issue" not in opts.issues:
        return "not requested"
    if task != "classification":
        return f"skipped: {task} task"
    if scanned.labels is None:
        return "skipped: no labels"
    if opts.pred_probs is None and scanned.n - len(scanned.corrupt) < 3:
        return "skipped: fewer than 3 usable examples"
    return ""


def _given_probs(scanned, rows, pred_probs):
    """Rows and probabilities from an (N, K) array (all splits in order) or a {split: array} dict."""
    if isinstance(pred_probs, dict):
        parts, P = [], []
        for s, name in enumerate(scanned.split_names):
            if name in pred_probs:
                r = rows[scanned.split_id[rows] == s]
                p = np.asarray(pred_probs[name], float)
                n = int((scanned.split_id == s).sum())
                if len(p) != n:
                    raise DataError(f"audit: pred_probs[{name!r}] has {len(p)} rows, the split {n} examples")
                parts.append(r)
                P.append(p[scanned.index[r]])
        if not parts:
            raise DataError(f"audit: pred_probs names none of the splits {', '.join(scanned.split_names)}")
        return np.concatenate(parts), np.concatenate(P)
    p = np.asarray(pred_probs, float)
    if p.ndim != 2 or len(p) != scanned.n:
        raise DataError(f"audit: pred_probs must be an ({scanned.n}, K) array, got shape {p.shape}")
    return rows, p[rows]
