"""The audit's answer: every flagged example with a score and a reason, a summary per issue type, what to drop.

``issues`` columns: split, index (-1: about the whole split), issue, score (0-1, higher is worse),
group (duplicate-set id), detail. ``summary`` rows: every issue type with count, share, the score
threshold, the rule in words and status. Everything cites recipe step I.2.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import DataError

from .findings import COLUMNS, ISSUE_TYPES, RECIPE

# What exclude_list() acts on by default: sure-footed findings. Property outliers are for review.
DEFAULT_EXCLUDE = ("corrupt", "noise", "exact_duplicate", "train_test_leak", "near_duplicate", "label_issue")


@dataclass
class LabelModel:
    """Which model judged the labels (recipe I.2) and its accuracy on labels it did not see."""

    name: str                       # e.g. "embedding k-NN", "tiny_cnn (configuration of run ...)"
    accuracy: float | None          # held-out accuracy (leave-one-out or cross-validated); None: not run
    evaluation: str                 # how its probabilities were made out of sample
    skipped: str = ""               # why label issues were not looked for ("" when they were)

    def words(self) -> str:
        """One line for the report: the model, its held-out accuracy and how, or why it was skipped."""
        if self.accuracy is None:
            return self.skipped or "not run"
        head = f"{self.name}, held-out accuracy {self.accuracy:.1%} ({self.evaluation})"
        return f"{head}; {self.skipped}" if self.skipped else head


@dataclass
class AuditReport:
    """Findings of a data audit (recipe I.2): ``.issues``, ``.summary``, ``.balance``, ``.source``."""

    issues: pd.DataFrame
    summary: pd.DataFrame
    balance: pd.DataFrame | None = None
    source: str = ""                      # how label issues were found
    meta: dict = field(default_factory=dict)
    previews: dict = field(default_factory=dict, repr=False)   # (split, index) -> uint8 image
    suggestions: dict = field(default_factory=dict, repr=False)  # (split, index) -> {suggested_label}
    recipe: str = RECIPE
    label_model: LabelModel | None = None  # who judged the labels, and how well

    # ------------------------------------------------------------------------------ what to act on
    def exclude_list(self, issues=DEFAULT_EXCLUDE) -> pd.DataFrame:
        """Examples to drop (or relabel): split, index, action, issue, reason, suggested_label.

        One copy of every duplicate set is kept (the first); of a set shared between splits the
        copies in the training split (the first split) are dropped, so the test set stays intact.
        """
        df = self.issues[self.issues["issue"].isin(issues) & (self.issues["index"] >= 0)]
        first_split = next(iter(self.meta.get("splits") or {"": 0}))
        rows = []
        for issue, part in df.groupby("issue", sort=False):
            if issue in ("exact_duplicate", "near_duplicate"):
                order = part.sort_values(["group", "split", "index"])
                dropped = order[order.duplicated(["group", "split"] if issue == "exact_duplicate" else ["group"])]
                rows += [(r.split, r.index, "drop", issue, r.detail) for r in dropped.itertuples()]
            elif issue == "train_test_leak":
                rows += [(r.split, r.index, "drop", issue, r.detail) for r in part.itertuples()
                         if r.split == first_split]
            elif issue == "label_issue":
                rows += [(r.split, r.index, "relabel", issue, r.detail) for r in part.itertuples()]
            else:
                rows += [(r.split, r.index, "drop", issue, r.detail) for r in part.itertuples()]
        out = pd.DataFrame(rows, columns=["split", "index", "action", "issue", "reason"])
        out["suggested_label"] = [self.suggestions.get((s, i), {}).get("suggested_label")
                                  for s, i in zip(out["split"], out["index"], strict=True)]
        # One row per example: a drop wins over a relabel, reasons are kept side by side.
        out = out.sort_values(["split", "index", "action"]).groupby(["split", "index"], as_index=False).agg(
            action=("action", "first"), issue=("issue", ", ".join), reason=("reason", " | ".join),
            suggested_label=("suggested_label", "first"))
        return out.reset_index(drop=True)

    def exclude_indices(self, split: str, issues=DEFAULT_EXCLUDE) -> list[int]:
        """Indices of ``split`` to drop, e.g. for ``torch.utils.data.Subset`` with the complement."""
        ex = self.exclude_list(issues)
        return sorted(ex.loc[(ex["split"] == split) & (ex["action"] == "drop"), "index"].tolist())

    def of(self, issue: str) -> pd.DataFrame:
        """The rows of one issue type."""
        if issue not in ISSUE_TYPES:
            raise DataError(f"unknown issue type {issue!r}; known: {', '.join(ISSUE_TYPES)}")
        return self.issues[self.issues["issue"] == issue].reset_index(drop=True)

    # ------------------------------------------------------------------------------ saving
    def to_dict(self) -> dict:
        """Everything but the pictures, JSON-ready (NaN as null)."""
        summary = self.summary.reset_index().to_dict("records")
        bal = None
        if self.balance is not None:
            bal = {"classes": [_plain(c) for c in self.balance.index],
                   "counts": {k: self.balance[k].astype(int).tolist() for k in self.balance.columns}}
        issues = self.issues.astype({"group": object}).to_dict("records")
        sugg = [{"split": s, "index": i, **v} for (s, i), v in self.suggestions.items()]
        lm = asdict(self.label_model) if self.label_model is not None else None
        return _clean({"recipe": self.recipe, "source": self.source, "meta": self.meta, "summary": summary,
                       "balance": bal, "issues": issues, "suggestions": sugg, "label_model": lm})

    def save(self, path) -> Path:
        """Write the report as .json (everything), .csv (the issues table) or .html (the page), by suffix."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=1))
        elif suffix == ".csv":
            self.issues.assign(recipe=self.recipe).to_csv(path, index=False)
        elif suffix in (".html", ".htm"):
            path.write_text(self.to_html(), encoding="utf-8")
        else:
            raise DataError(f"cannot save an audit report as {path.name}: use .json, .csv or .html")
        return path

    @classmethod
    def load(cls, path) -> AuditReport:
        """A report saved as .json, back as an AuditReport (without pictures)."""
        d = json.loads(Path(path).read_text())
        issues = pd.DataFrame(d["issues"], columns=COLUMNS)
        issues["group"] = issues["group"].astype("Int64")
        issues["score"] = issues["score"].astype(float)
        summary = pd.DataFrame(d["summary"]).set_index("issue")
        bal = None
        if d.get("balance"):
            bal = pd.DataFrame(d["balance"]["counts"], index=pd.Index(d["balance"]["classes"], name="class"))
        sugg = {(r["split"], r["index"]): {k: v for k, v in r.items() if k not in ("split", "index")}
                for r in d.get("suggestions") or []}
        lm = LabelModel(**d["label_model"]) if d.get("label_model") else None
        return cls(issues, summary, bal, d.get("source", ""), d.get("meta", {}), {}, sugg, d.get("recipe", RECIPE), lm)

    # ------------------------------------------------------------------------------ looking at it
    def to_html(self, per_issue: int = 24) -> str:
        """One self-contained HTML page: summary, class balance, and the worst examples of each issue with pictures."""
        h = [f"<h1>Data audit <small>(recipe {self.recipe}: duplicates, corrupt data and labels, "
             "imbalance)</small></h1>",
             f"<p>{html.escape(_splits_words(self.meta))}. "
             f"Labels judged by: {html.escape(self.source or 'not run')}.</p>",
             "<h2>Summary</h2>", self.summary.to_html(classes="t", na_rep="", float_format=_fmt)]
        if self.balance is not None:
            h += ["<h2>Classes per split</h2>", self.balance.T.to_html(classes="t")]
        for issue in ISSUE_TYPES:
            part = self.issues[self.issues["issue"] == issue]
            if part.empty:
                continue
            h.append(f"<h2 id='{issue}'>{issue} <small>{len(part)} — {html.escape(ISSUE_TYPES[issue])}</small></h2>")
            h.append("<table class='t'><tr><th></th><th>split</th><th>index</th><th>score</th><th>group</th>"
                     "<th>detail</th></tr>")
            for r in part.head(per_issue).itertuples():
                img = _img_tag(self.previews.get((r.split, r.index)))
                grp = "" if pd.isna(r.group) else r.group
                h.append(f"<tr><td>{img}</td><td>{html.escape(r.split)}</td><td>{r.index}</td>"
                         f"<td>{r.score:.2f}</td><td>{grp}</td><td>{html.escape(r.detail)}</td></tr>")
            h.append("</table>")
            if len(part) > per_issue:
                h.append(f"<p>… and {len(part) - per_issue} more (see the JSON or CSV export).</p>")
        style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
                 "table.t{border-collapse:collapse;margin:.5em 0}"
                 ".t td,.t th{border:1px solid #ccc;padding:2px 6px;font-size:90%;text-align:left}"
                 "img{image-rendering:pixelated;width:48px;height:48px;object-fit:contain;background:#888}"
                 "small{color:#666;font-weight:normal}")
        return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Data audit</title>"
                f"<style>{style}</style></head><body>{''.join(h)}</body></html>")

    def _repr_html_(self) -> str:
        return self.to_html(per_issue=6)

    def __repr__(self) -> str:
        s = self.summary[self.summary["count"] > 0][["count", "share"]]
        body = s.to_string(float_format=_fmt) if len(s) else "no issues found"
        return f"AuditReport(recipe {self.recipe}; {_splits_words(self.meta)})\n{body}"


def summary_frame(issues: pd.DataFrame, n_examples: int, rules: dict, skipped: dict) -> pd.DataFrame:
    """Per issue type: count (examples; split-level findings count once), share, threshold, rule, status."""
    rows = []
    for issue in ISSUE_TYPES:
        part = issues[issues["issue"] == issue]
        count = int(part.drop_duplicates(["split", "index"]).shape[0])
        thr, rule = rules.get(issue, (np.nan, ""))
        rows.append({"issue": issue, "count": count, "share": count / max(n_examples, 1), "threshold": thr,
                     "rule": rule, "status": skipped.get(issue, "ran"), "recipe": RECIPE})
    return pd.DataFrame(rows).set_index("issue")


# ---------------------------------------------------------------------------------- helpers
def _img_tag(a) -> str:
    if a is None:
        return ""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(a)).save(buf, format="PNG")
    return f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def _splits_words(meta) -> str:
    splits = meta.get("splits") or {}
    return ", ".join(f"{k}: {v} examples" for k, v in splits.items()) or "no data"


def _fmt(v) -> str:
    return f"{v:.3g}"


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


def _clean(o):
    """JSON-safe: numpy scalars to Python, NaN/inf and pandas NA to None, tuples to lists."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, np.ndarray)):
        return [_clean(v) for v in o]
    if isinstance(o, np.generic):
        o = o.item()
    if o is pd.NA or o is None:
        return None
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
