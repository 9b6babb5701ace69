"""Interpretation of a finished run (recipe B.4, I.2): each example's prediction and loss, the confusion
matrix, and the top losses (the examples the model gets most wrong: hard, or mislabelled).

``interpret(session, run)`` evaluates the run's model on the whole evaluation split in eval mode and
returns an ``Interpretation``; ``session.interpret()`` records it in the result book, so the app, the
report and a notebook read the same result. Classification only: a confusion matrix needs classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from workbench.errors import WorkbenchError

RECIPE = "B.4"


@dataclass
class Interpretation:
    """One run judged example by example on one split; ``table`` has a row per example."""

    run_id: str
    split: str
    classes: list[str]
    table: pd.DataFrame  # split, index, label, pred, p_pred, p_label, loss
    recipe: str = RECIPE

    @property
    def matrix(self) -> np.ndarray:
        """Counts, rows = label, columns = prediction, in the order of ``classes``."""
        n = len(self.classes)
        cm = np.zeros((n, n), dtype=np.int64)
        np.add.at(cm, (self.table["label"].to_numpy(int), self.table["pred"].to_numpy(int)), 1)
        return cm

    @property
    def n(self) -> int:
        return len(self.table)

    @property
    def wrong(self) -> int:
        return int((self.table["label"] != self.table["pred"]).sum())

    @property
    def accuracy(self) -> float:
        return 1.0 - self.wrong / max(self.n, 1)

    def top_losses(self, k: int = 16, label: int | None = None, pred: int | None = None) -> pd.DataFrame:
        return top_losses(self.table, k, label, pred)

    def summary(self) -> str:
        return (f"run {self.run_id} on the {self.split} split: accuracy {self.accuracy:.4f}, {self.wrong} of "
                f"{self.n} wrong; the top losses are hard or mislabelled examples ({self.recipe}, I.2)")

    def __repr__(self) -> str:
        return f"Interpretation({self.summary()})"


def require_classes(session) -> None:
    """Refuse a task without classes: a confusion matrix needs them."""
    if session.task.name != "classification":
        raise WorkbenchError(f"the confusion matrix and top losses are for classification; this session's task "
                             f"is {session.task.name!r}")


@torch.no_grad()
def predictions(session, model, split: str | None = None) -> pd.DataFrame:
    """Every example of ``split`` (default: the evaluation split): label, prediction, its probability, loss."""
    require_classes(session)
    split = split or session.eval_split
    was = model.training
    model.eval()  # eval mode: batch-norm statistics and dropout as at evaluation
    rows = []
    try:
        for x, y in session.loader(split, shuffle=False):
            out = model(x.to(session.device)).float().cpu()
            rows.append((y.cpu(), out.softmax(1), F.cross_entropy(out, y.cpu(), reduction="none")))
    finally:
        model.train(was)
    y = torch.cat([r[0] for r in rows])
    p = torch.cat([r[1] for r in rows])
    loss = torch.cat([r[2] for r in rows])
    conf, pred = p.max(1)
    return pd.DataFrame({"split": split, "index": np.arange(len(y)), "label": y.numpy(), "pred": pred.numpy(),
                         "p_pred": conf.numpy(), "p_label": p[torch.arange(len(y)), y].numpy(),
                         "loss": loss.numpy()})


def top_losses(table: pd.DataFrame, k: int = 16, label: int | None = None, pred: int | None = None) -> pd.DataFrame:
    """The ``k`` examples with the highest loss, optionally those with one label and one prediction."""
    sel = table
    if label is not None:
        sel = sel[sel["label"] == label]
    if pred is not None:
        sel = sel[sel["pred"] == pred]
    return sel.sort_values(["loss", "index"], ascending=[False, True]).head(k).reset_index(drop=True)


def class_names(session) -> list[str]:
    return [str(c) for c in (getattr(session.train, "classes", None) or range(session.num_classes or 0))]


def run_model(session, run):
    """``run``'s weights as a module: its model (live, or loaded when first asked), else its checkpoint on disk."""
    model = getattr(run, "model", None)
    if model is None:  # a run from an earlier process (or one that let go of its model)
        model = session.load_run(run.id).model
    if model is None:
        raise WorkbenchError(f"run {run.id} kept no weights (no checkpoint): train it again in this session")
    return model


def interpret(session, run, split: str | None = None) -> Interpretation:
    """``run`` judged on every example of ``split`` (default: the evaluation split)."""
    require_classes(session)
    if run is None:
        raise WorkbenchError("no finished run to interpret: train one first (Live curves)")
    table = predictions(session, run_model(session, run), split)
    return Interpretation(run.id, str(table["split"].iloc[0]) if len(table) else (split or session.eval_split),
                          class_names(session), table)
