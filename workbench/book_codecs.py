"""How each kind of result in the Book is written as JSON and read back (no pickle, no torch).

One ``Codec`` per kind: ``encode(value, directory)`` gives JSON-ready data (a large part may go to
its own file in ``directory``), ``decode(data, session, path)`` gives the result object again. A
result read back carries everything a view or the report shows; what only lived in memory (an
ensemble's member networks, a distilled student) stays with its runs on disk.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.verdict import Verdict, jsonable


@dataclass(frozen=True)
class Codec:
    encode: Callable[[Any, Path | None], Any]
    decode: Callable[[Any, Any, Path], Any]


def frame_out(df: pd.DataFrame | None) -> dict | None:
    """A DataFrame as JSON-ready data (pandas' "split" layout, attrs beside it)."""
    if df is None:
        return None
    return {"frame": df.to_json(orient="split", date_format="iso", default_handler=str, double_precision=15),
            "attrs": jsonable(dict(df.attrs))}


def frame_in(data: dict | None) -> pd.DataFrame | None:
    if data is None:
        return None
    # dtype=False: ids such as "0001" stay strings; numbers come back as numbers from the JSON itself
    df = pd.read_json(io.StringIO(data["frame"]), orient="split", dtype=False, convert_dates=False)
    df.attrs.update(data.get("attrs") or {})
    return df


# ------------------------------------------------------------------------------------------- kinds
def _audit_out(report, directory):
    if directory is None:
        raise ValueError("the audit report is written next to the book")
    directory.mkdir(parents=True, exist_ok=True)
    report.save(directory / "audit-report.json")  # AuditReport's own JSON form (everything but pictures)
    return {"file": "audit-report.json"}


def _audit_in(data, session, path):
    from workbench.data.report import AuditReport

    return AuditReport.load(path.parent / data["file"])


def _lr_out(r):
    return {"curve": frame_out(r.curve), "suggestions": jsonable(r.suggestions), "method": r.method,
            "stopped": r.stopped, "coarse": frame_out(r.coarse), "coarse_summary": frame_out(r.coarse_summary),
            "config": jsonable(r.config), "recipe": r.recipe}


def _lr_in(d, session, path):
    from workbench.tune.lr_find import LRFindResult

    sugg = {k: (float(v) if v is not None else None) for k, v in d["suggestions"].items()}
    return LRFindResult(frame_in(d["curve"]), sugg, d["method"], d["stopped"], frame_in(d["coarse"]),
                        frame_in(d["coarse_summary"]), d["config"], d["recipe"])


def _diag_out(diag):
    return {"run_id": diag.run_id, "findings": [f.to_dict() for f in diag.findings],
            "thresholds": jsonable(diag.thresholds), "stats": jsonable(diag.stats), "recipe": diag.recipe}


def _diag_in(d, session, path):
    from workbench.tune.diagnose import Diagnosis, Finding

    return Diagnosis(d["run_id"], [Finding.from_dict(f) for f in d["findings"]], d["thresholds"], d["stats"],
                     d["recipe"])


def _compare_out(c):
    return {"a": c.a, "b": c.b, "config": frame_out(c.config), "metrics": frame_out(c.metrics),
            "curves": frame_out(c.curves), "metric_name": c.metric_name, "higher_is_better": c.higher_is_better,
            "recipe": c.recipe}


def _compare_in(d, session, path):
    from workbench.tune.compare import Comparison

    return Comparison(d["a"], d["b"], frame_in(d["config"]), frame_in(d["metrics"]), frame_in(d["curves"]),
                      d["metric_name"], d["higher_is_better"], d["recipe"])


def _interpretation_out(r):
    return {"run_id": r.run_id, "split": r.split, "classes": list(r.classes), "table": frame_out(r.table),
            "recipe": r.recipe}


def _interpretation_in(d, session, path):
    from workbench.interpret import Interpretation

    return Interpretation(d["run_id"], d["split"], list(d["classes"]), frame_in(d["table"]), d["recipe"])


def _ensemble_out(r):
    return {**jsonable({k: v for k, v in r.to_dict().items() if k not in ("members", "gains")}),
            "members": frame_out(r.members), "gains": frame_out(r.gains),
            "path": str(r.path) if r.path else None}


def _ensemble_in(d, session, path):
    from workbench.ensemble.members import EnsembleResult

    # the member networks are not kept here: ``run_ids`` name the runs whose checkpoints hold them
    return EnsembleResult(d["kind"], d["recipe"], d["metric_name"], d["higher_is_better"], d["split"],
                          int(d["n_eval"]), frame_in(d["members"]), frame_in(d["gains"]), None,
                          list(d.get("notes") or []), Path(d["path"]) if d.get("path") else None)


def _distill_out(r):
    return {**jsonable({k: v for k, v in r.to_dict().items() if k != "table"}), "table": frame_out(r.table)}


def _distill_in(d, session, path):
    from workbench.ensemble.distill import DistillResult

    def run(rid):
        try:
            return session.store.load(rid) if rid and session is not None else None
        except Exception:  # noqa: BLE001 - a deleted run: the table still says what it scored
            return None

    return DistillResult(frame_in(d["table"]), run(d.get("run_id")), run(d.get("scratch_run_id")), None,
                         float(d["temperature"]), float(d["alpha"]), d["metric_name"], d["split"],
                         list(d.get("notes") or []))


def _search_out(df, directory):
    return frame_out(df)


def _plain_out(v, directory):
    return jsonable(v)


def _plain_in(v, session, path):
    return v


def _no_dir(fn):
    return lambda value, directory: fn(value)


CODECS: dict[str, Codec] = {
    "checks": Codec(lambda v, d: v.to_dict(), lambda v, s, p: Verdict.from_dict(v)),
    "audit": Codec(_audit_out, _audit_in),
    "lr_find": Codec(_no_dir(_lr_out), _lr_in),
    "search": Codec(_search_out, lambda v, s, p: frame_in(v)),
    "diagnosis": Codec(_no_dir(_diag_out), _diag_in),
    "compare": Codec(_no_dir(_compare_out), _compare_in),
    "interpretation": Codec(_no_dir(_interpretation_out), _interpretation_in),
    "ensemble": Codec(_no_dir(_ensemble_out), _ensemble_in),
    "distill": Codec(_no_dir(_distill_out), _distill_in),
    "human_baseline": Codec(_plain_out, _plain_in),
    "chosen_config": Codec(_plain_out, _plain_in),
}
