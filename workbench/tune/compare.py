"""One thing at a time (recipe III.M3): what changed between two runs, and what it did to the metrics.

``compare(session, a, b)`` gives the configuration diff and the metric deltas of two runs;
``annotate_runs(df, store)`` adds to a runs table what each run changed from its parent run
(``changed``) and whether that was at most one thing (``one_thing``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.errors import WorkbenchError
from workbench.store import Run, RunStore

RECIPE = "III.M3"
# bookkeeping, not an experimental choice: a different name or parent is not "a thing changed"
IGNORED = {"name", "parent", "tags", "device"}
METRICS = ("train_loss", "val_loss", "train_metric", "val_metric")
TABLE_CONFIG = ("model", "seed", "lr", "optimizer", "weight_decay")  # config columns of RunStore.table


@dataclass
class Comparison:
    """Two runs side by side: ``config`` (key, a, b) for what differs, ``metrics`` (name, a, b, delta),
    ``changed`` (the keys), ``one_thing`` (at most one changed) and ``curves`` (per-epoch, both runs)."""

    a: str
    b: str
    config: pd.DataFrame
    metrics: pd.DataFrame
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    metric_name: str = "metric"
    higher_is_better: bool = True
    recipe: str = RECIPE

    @property
    def changed(self) -> list[str]:
        return list(self.config["key"])

    @property
    def one_thing(self) -> bool:
        return len(self.changed) <= 1

    @property
    def message(self) -> str:
        what = ", ".join(f"{r.key} {_fmt(r.a)} -> {_fmt(r.b)}" for r in self.config.itertuples()) or "nothing"
        m = self.metrics.set_index("name")
        verdict = ""
        if "val_metric" in m.index and _finite(m.loc["val_metric", "delta"]):
            d = float(m.loc["val_metric", "delta"])
            better = d > 0 if self.higher_is_better else d < 0
            verdict = f"; val {self.metric_name} {d:+.4g} ({'better' if better else 'not better'})"
        warn = "" if self.one_thing else f" — {len(self.changed)} things changed at once, so the effect of " \
            f"each is unknown (recipe {RECIPE})"
        return f"{self.b} vs {self.a}: changed {what}{verdict}{warn}"

    def __repr__(self) -> str:
        return f"Comparison({self.message})"


def compare(session, run_a, run_b) -> Comparison:
    """The configuration diff and the metric deltas (b - a) of two runs (recipe III.M3)."""
    a, b = session.run(run_a), session.run(run_b)
    diff = config_diff(a.config, b.config)
    ea, eb = _last(a), _last(b)
    rows = []
    for k in METRICS:
        va, vb = ea.get(k), eb.get(k)
        rows.append({"name": k, "a": va, "b": vb,
                     "delta": (vb - va) if _finite(va) and _finite(vb) else None})
    higher = getattr(session.task, "higher_is_better", True)
    best = {"a": _best(a, higher), "b": _best(b, higher)}
    rows.append({"name": "best_val_metric", "a": best["a"], "b": best["b"],
                 "delta": best["b"] - best["a"] if _finite(best["a"]) and _finite(best["b"]) else None})
    rows.append({"name": "epochs", "a": len(a.epoch_records), "b": len(b.epoch_records),
                 "delta": len(b.epoch_records) - len(a.epoch_records)})
    rows.append({"name": "status", "a": a.status, "b": b.status, "delta": None})
    curves = _curves(a, b)
    return Comparison(a.id, b.id, diff, pd.DataFrame(rows), curves, session.task.metric, higher)


def config_diff(a: dict, b: dict) -> pd.DataFrame:
    """The keys whose values differ between two run configs (nested dicts flattened as ``outer.inner``)."""
    fa, fb = _flatten(a), _flatten(b)
    rows = [{"key": k, "a": fa.get(k), "b": fb.get(k)}
            for k in sorted(set(fa) | set(fb)) if k.split(".")[0] not in IGNORED and not _same(fa.get(k), fb.get(k))]
    return pd.DataFrame(rows, columns=["key", "a", "b"])


def annotate_runs(df: pd.DataFrame, store=None) -> pd.DataFrame:
    """Add ``changed`` (what each run changed from its parent, e.g. "lr, weight_decay") and ``one_thing``.

    ``store``: a Session, RunStore or root folder whose run configs are compared (every config key);
    without it, the table's own config columns (model, seed, lr, optimizer, weight_decay). A run
    without a parent (or whose parent is gone) gets ``changed`` = None and ``one_thing`` = True.
    """
    if not isinstance(df, pd.DataFrame):
        raise WorkbenchError(f"annotate_runs needs the runs DataFrame, got {type(df).__name__}")
    out = df.copy()
    if not len(out) or "id" not in out or "parent" not in out:
        out["changed"], out["one_thing"] = pd.Series(dtype=object), pd.Series(dtype=bool)
        return out
    configs = _configs(out, store)
    changed, one = [], []
    for rid, parent in zip(out["id"], out["parent"], strict=True):
        if not isinstance(parent, str) or parent not in configs or rid not in configs:
            changed.append(None)
            one.append(True)
            continue
        keys = list(config_diff(configs[parent], configs[rid])["key"])
        changed.append(", ".join(keys))
        one.append(len(keys) <= 1)
    out["changed"], out["one_thing"] = changed, one
    return out


# --------------------------------------------------------------------------------------- helpers
def _configs(df, store) -> dict:
    rs = _store(store)
    if rs is None:
        cols = [c for c in TABLE_CONFIG if c in df]
        return {r["id"]: {c: r[c] for c in cols} for r in df.to_dict("records")}
    out = {}
    for rid in set(df["id"]) | {p for p in df["parent"] if isinstance(p, str)}:
        try:  # config.json alone: loading whole runs would read every run's metrics for one column
            out[rid] = json.loads((rs.root / rid / "config.json").read_text())
        except (OSError, ValueError):
            continue
    return out


def _store(store):
    if store is None:
        return None
    if isinstance(store, RunStore):
        return store
    if isinstance(store, str | Path):
        return RunStore(store)
    if hasattr(store, "store") and isinstance(store.store, RunStore):
        return store.store
    raise WorkbenchError(f"store must be a Session, a RunStore or a folder, got {type(store).__name__}")


def _last(run: Run) -> dict:
    return run.epoch_records[-1] if run.epoch_records else {}


def _best(run: Run, higher: bool):
    vals = [r.get("val_metric") for r in run.epoch_records if _finite(r.get("val_metric"))]
    if not vals:
        return None
    return max(vals) if higher else min(vals)


def _curves(a: Run, b: Run) -> pd.DataFrame:
    frames = []
    for tag, run in (("a", a), ("b", b)):
        m = run.metrics
        if len(m):
            cols = [c for c in ("epoch", *METRICS) if c in m]
            frames.append(m[cols].assign(run=tag, run_id=run.id))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        elif not (isinstance(v, dict) and not v):  # an empty dict (no model kwargs) equals a missing one
            out[key] = v
    return out


def _same(x, y) -> bool:
    if _missing(x) and _missing(y):
        return True
    if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
        return math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=0.0)
    return x == y


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else repr(v)
