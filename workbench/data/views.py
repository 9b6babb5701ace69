"""Acting on the audit (recipe I.2): a session over the same data with marked examples left out or relabelled.

``session.with_data(report.exclude_list())`` (or the data browser's marks) gives a new Session
whose splits are views of the old ones; its ``data_view`` — which files or indices were left out
and why, which were relabelled from what to what — goes into every run's config, so the next run
is known to have trained without them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from workbench.datasets import TensorPairDataset, labels_of, preprocessing_of
from workbench.errors import DataError

_SPLITS = ("train", "val", "test")
_DROP = ("drop", "exclude")


class DataView(Dataset):
    """A split with some examples left out and some relabelled; an image-folder split stays one (files, classes)."""

    def __init__(self, base: Dataset, keep: list[int], relabel: dict[int, int], name: str = ""):
        self.base, self.keep, self.relabel = base, list(keep), dict(relabel)
        self.preprocessing = preprocessing_of(base)
        self.classes = getattr(base, "classes", None)
        self.name = name or getattr(base, "name", "")
        y = labels_of(base).clone()
        for i, c in self.relabel.items():
            y[i] = c
        self.targets = y[torch.as_tensor(self.keep, dtype=torch.long)]
        if getattr(base, "reads_files", False):
            # still a folder of files: the audit reads (and caches) the kept files, the HTML names them
            self.reads_files, self.root = True, base.root
            self.samples = [(base.samples[i][0], int(self.targets[k])) for k, i in enumerate(self.keep)]
            self.stamps = [base.stamps[i] for i in self.keep] if getattr(base, "stamps", None) else None
            self.skipped = list(getattr(base, "skipped", ()))
            self.size, self.gray = getattr(base, "size", None), getattr(base, "gray", False)  # for like=view

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, i):
        x, _ = self.base[self.keep[i]]
        return x, self.targets[i]


def changes_of(changes=None, exclude=None, relabel=None) -> tuple[dict, dict]:
    """({split: {index: why}}, {split: {index: new label}}) from a table, a report or plain dicts.

    ``changes``: ``report.exclude_list()`` (split, index, action drop|relabel, reason,
    suggested_label), the data browser's ``export_marks()`` (action exclude|relabel, new_label),
    or an AuditReport. ``exclude``: {split: indices}; ``relabel``: {split: {index: label}}.
    """
    drops: dict[str, dict[int, str]] = {}
    moves: dict[str, dict[int, object]] = {}
    if changes is not None:
        if hasattr(changes, "exclude_list"):
            changes = changes.exclude_list()
        if not isinstance(changes, pd.DataFrame) or not {"split", "index", "action"} <= set(changes.columns):
            raise DataError("with_data: changes must be report.exclude_list(), the data browser's marks "
                            "(split, index, action) or an AuditReport")
        for r in changes.to_dict("records"):
            split, i, act = str(r["split"]), int(r["index"]), str(r["action"])
            why = str(r.get("reason") or r.get("issue") or "marked in the data browser")
            if act in _DROP:
                drops.setdefault(split, {})[i] = why
            elif act == "relabel":
                new = r.get("new_label", r.get("suggested_label"))
                if new is None or (isinstance(new, float) and np.isnan(new)):
                    raise DataError(f"with_data: {split} #{i} is to be relabelled but has no new label; "
                                    "give one (new_label) or drop it")
                moves.setdefault(split, {})[i] = new
            else:
                raise DataError(f"with_data: unknown action {act!r} for {split} #{i}; use drop, exclude or relabel")
    for split, idx in (exclude or {}).items():
        for i in idx:
            drops.setdefault(split, {})[int(i)] = "excluded by hand"
    for split, m in (relabel or {}).items():
        for i, new in m.items():
            moves.setdefault(split, {})[int(i)] = new
    return drops, moves


def view_of(ds: Dataset, split: str, drops: dict[int, str], moves: dict[int, object], num_classes):
    """The split as a view, and its record: {excluded: [...], relabelled: [...]} by file or index."""
    n = len(ds)
    bad = sorted(i for i in set(drops) | set(moves) if not 0 <= i < n)
    if bad:
        raise DataError(f"with_data: {split} has {n} examples; index {bad[0]} does not exist "
                        "(were the marks made on another session?)")
    classes = list(getattr(ds, "classes", None) or [])
    old = labels_of(ds)
    relabel = {i: _label_index(new, classes, num_classes, split, i) for i, new in moves.items() if i not in drops}
    keep = [i for i in range(n) if i not in drops]
    if not keep:
        raise DataError(f"with_data: every example of {split} would be left out")
    record = {"excluded": [{**_where(ds, i), "why": why} for i, why in sorted(drops.items())],
              "relabelled": [{**_where(ds, i), "from": _name(int(old[i]), classes), "to": _name(c, classes)}
                             for i, c in sorted(relabel.items())],
              "n_before": n, "n_after": len(keep)}
    if isinstance(ds, TensorPairDataset):  # stay a tensor pair: batched reads, the audit's fast path
        Y = ds.Y.clone()
        for i, c in relabel.items():
            Y[i] = c
        k = torch.as_tensor(keep, dtype=torch.long)
        view = TensorPairDataset(ds.X[k], Y[k], preprocessing=ds.preprocessing, classes=ds.classes, name=ds.name)
    else:
        view = DataView(ds, keep, relabel)
    return view, record


def session_with_view(session, changes=None, exclude=None, relabel=None):
    """A new Session over views of ``session``'s splits; its ``data_view`` adds to the old one's."""
    from workbench.session import Session

    drops, moves = changes_of(changes, exclude, relabel)
    unknown = sorted((set(drops) | set(moves)) - {s for s in _SPLITS if getattr(session, s) is not None})
    if unknown:
        raise DataError(f"with_data: the session has no split {unknown[0]!r}")
    record = {k: list(v) for k, v in (getattr(session, "data_view", None) or {}).items()}
    splits = {}
    for s in _SPLITS:
        ds = getattr(session, s)
        if ds is None or (s not in drops and s not in moves):
            splits[s] = ds
            continue
        splits[s], rec = view_of(ds, s, drops.get(s, {}), moves.get(s, {}), session.num_classes)
        record.setdefault(s, []).append(rec)
    new = Session(session._template if session._template is not None else session._factory,
                  splits["train"], splits["test"], val=splits["val"], task=session.task.name,
                  num_classes=session.num_classes, loss=session.task.custom_loss,
                  regularizer=session.regularizer, reg_strength=session.reg_strength, seed=session.seed,
                  device=str(session.device), root=session.store.root, batch_size=session.batch_size,
                  name=session.name, num_workers=session.num_workers, deterministic=session.deterministic)
    new.model_name = session.model_name
    new.init_hooks = dict(session.init_hooks)
    new.human_baseline = session.human_baseline
    new.data_view = record
    return new


def data_view_of(session) -> dict | None:
    """What a run's config records about its data: the session's view and files its image folders left out."""
    out = {k: list(v) for k, v in (getattr(session, "data_view", None) or {}).items()}
    for s in _SPLITS:
        skipped = getattr(getattr(session, s, None), "skipped", None)
        if skipped:
            out[f"{s}_files_left_out"] = [{"file": f, "why": why} for f, why in skipped]
    return out or None


def _where(ds, i: int) -> dict:
    samples = getattr(ds, "samples", None)
    if samples is not None and getattr(ds, "root", None) is not None:
        import os

        return {"index": i, "file": os.path.relpath(samples[i][0], ds.root)}
    return {"index": i}


def _label_index(new, classes, num_classes, split, i) -> int:
    if isinstance(new, str) and new in classes:
        return classes.index(new)
    if isinstance(new, str) and not new.lstrip("-").isdigit():
        raise DataError(f"with_data: {split} #{i}: no class named {new!r}; the classes are {classes}")
    c = int(float(new))
    if num_classes is not None and not 0 <= c < num_classes:
        raise DataError(f"with_data: {split} #{i}: label {c} is not one of the {num_classes} classes")
    return c


def _name(c: int, classes) -> object:
    return classes[c] if classes and 0 <= c < len(classes) else c
