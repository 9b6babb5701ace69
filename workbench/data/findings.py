"""The issue types (names are API) and the table of findings every finder appends to."""

from __future__ import annotations

import numpy as np
import pandas as pd

RECIPE = "I.2"

# name -> what a person should know about it; the order is the report's order.
ISSUE_TYPES = {
    "corrupt": "cannot be decoded or read, NaN/inf, blank, values out of range, odd shape, invalid label",
    "noise": "random values in place of a picture: neighbouring pixels hardly more alike than in pure noise",
    "exact_duplicate": "identical decoded pixels as another example of the same split",
    "train_test_leak": "identical decoded pixels in two splits: the evaluation sees training data",
    "near_duplicate": "resized, re-encoded, shifted or brightness-shifted copy of another example",
    "label_issue": "the label is likely wrong (cleanlab on out-of-sample predicted probabilities)",
    "outlier": "far from every other example in embedding space",
    "low_information": "far less detail (histogram entropy) than a typical example",
    "dark": "much darker than a typical example",
    "bright": "much brighter than a typical example",
    "class_imbalance": "an example of a class far rarer than the average class",
    "split_shift": "the class distribution of this split differs from the training split",
}
COLUMNS = ["split", "index", "issue", "score", "group", "detail"]


class Findings:
    """Rows of the issues table, appended by the finders; ``index`` -1 marks a finding about a whole split."""

    def __init__(self):
        self._rows: list[tuple] = []
        self._next_group = 0
        self.extra: dict[tuple[str, int], dict] = {}   # (split, index) -> e.g. suggested label

    def new_group(self) -> int:
        self._next_group += 1
        return self._next_group - 1

    def add(self, scan, g: int, issue: str, score: float, group=None, detail: str = ""):
        split, index = scan.where(g)
        self.add_at(split, index, issue, score, group, detail)

    def add_at(self, split: str, index: int, issue: str, score: float, group=None, detail: str = ""):
        assert issue in ISSUE_TYPES, issue
        self._rows.append((split, int(index), issue, float(score), group, detail))

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self._rows, columns=COLUMNS)
        df["group"] = pd.array([pd.NA if g is None else g for g in df["group"]], dtype="Int64")
        df["index"] = df["index"].astype(np.int64)
        df["score"] = df["score"].astype(float)
        order = {k: i for i, k in enumerate(ISSUE_TYPES)}
        df = df.assign(_o=df["issue"].map(order)).sort_values(["_o", "score", "split", "index"],
                                                                ascending=[True, False, True, True],
                                                                kind="stable")
        return df.drop(columns="_o").reset_index(drop=True)
