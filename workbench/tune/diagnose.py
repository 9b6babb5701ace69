"""Curve diagnosis (recipe B.4, P.1-P.5): what a run's curves say is wrong, with evidence and the advice.

Reads a run's per-epoch and per-step tables (and the attached instruments' summaries when there are
any) and returns findings, each with the numbers it rests on, the recipe's advice and its step ID:
plateau while the loss is high -> LR decay; train and val close and low -> underfit; a large gap ->
overfit; a sudden divergence -> bad samples or LR too high; a noisy loss -> batch too small; update
ratio out of band -> LR; dead or saturated units -> initialisation. Every threshold is an option.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.store import Run
from workbench.verdict import ALIASES, STATUSES, Verdict, status_of

RECIPE = "B.4"
THRESHOLDS = {
    "high_loss": 0.3,        # a plateau is "high" above this fraction of the initial loss
    "plateau_tol": 0.05,     # relative fall of the loss over the last quarter of steps that counts as flat
    "underfit_metric": 0.9,  # train accuracy below this (or the human baseline - 0.05) is low
    "underfit_loss": 0.3,    # for lower-is-better metrics: train loss above this fraction of the initial one
    "close_gap": 0.05,       # train and val metric this close count as "close"
    "overfit_gap": 0.1,      # train - val metric above this is overfitting
    "val_rise": 0.25,        # val loss this much (relative) above its best while train loss falls: overfitting
    "spike": 3.0,            # a step loss this many times the running median of the steps before it
    "spike_window": 20,      # steps in that running median
    "no_progress": 0.9,      # final loss above this fraction of the initial one: the loss did not go down
    "noise": 0.1,            # std of the step loss around its running mean, as a fraction of the initial loss
    "noise_window": 10,      # steps in that running mean
}
OK_VERDICTS = {"ok", "healthy", "pass", "good", "fine", "", None}
STATUS_ORDER = ("error", "fail", "warn", "skip", "pass")


# findings speak the one verdict vocabulary (workbench/verdict.py); ``severity`` keeps the older words readable
SEVERITY_STATUS = {"error": "fail", "warn": "warn", "info": "skip"}
STATUS_SEVERITY = {"fail": "error", "error": "error", "warn": "warn", "skip": "info", "pass": "info"}


class Finding(Verdict):
    """One thing a run's curves show, as a Verdict: the evidence (``measured``), the recipe's advice, its step."""

    def __init__(self, name: str, severity: str, message: str, advice: str = "", recipe: str = RECIPE,
                 evidence: dict | None = None, status: str | None = None):
        status = status or SEVERITY_STATUS.get(severity) or status_of(severity)
        super().__init__(name, status, dict(evidence or {}), None, message, recipe, advice=advice)

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        return cls(d["name"], "", d.get("message", ""), d.get("advice", ""), d.get("recipe", RECIPE),
                   d.get("measured") or {}, status=d["status"])

    @property
    def severity(self) -> str:
        """The older word for ``status``: error (fail), warn, info (skip or pass)."""
        return STATUS_SEVERITY[self.status]

    @property
    def evidence(self) -> dict:
        return self.measured

    def __str__(self) -> str:
        return f"[{self.status}] {self.name}: {self.message} -> {self.advice} (recipe {self.recipe})"


@dataclass
class Diagnosis:
    """The findings on one run; empty when the curves look healthy. ``to_frame()`` gives a table."""

    run_id: str
    findings: list[Finding]
    thresholds: dict
    stats: dict = field(default_factory=dict)
    recipe: str = RECIPE

    def __iter__(self):
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.findings]

    @property
    def healthy(self) -> bool:
        return not any(f.status in ("fail", "error", "warn") for f in self.findings)

    def get(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)

    @property
    def message(self) -> str:
        if not self.findings:
            return f"run {self.run_id}: no problem found in the curves (recipe {RECIPE})"
        return f"run {self.run_id}: " + "; ".join(f"{f.name} ({f.status})" for f in self.findings)

    def to_frame(self) -> pd.DataFrame:
        """One row per finding: name, status, message, advice, recipe, evidence."""
        cols = ["name", "status", "message", "advice", "recipe", "evidence"]
        return pd.DataFrame([{c: getattr(f, c) for c in cols} for f in self.findings], columns=cols)

    def __repr__(self) -> str:
        return "Diagnosis(" + "\n  ".join([self.message, *map(str, self.findings)]) + ")"


def diagnose(session, run=None, **thresholds) -> Diagnosis:
    """Findings on ``run`` (a Run or run id; the last run by default) with the recipe's advice (B.4).

    Keyword options override ``THRESHOLDS``. ``session.diagnose`` records it in the session's book.
    """
    unknown = set(thresholds) - set(THRESHOLDS)
    if unknown:
        raise WorkbenchError(f"diagnose: unknown threshold(s) {sorted(unknown)}; known: {sorted(THRESHOLDS)}")
    th = {**THRESHOLDS, **thresholds}
    run = _resolve(session, run)
    steps, epochs = run.steps, run.metrics
    if not len(steps) and not len(epochs):
        raise WorkbenchError(f"run {run.id} has no logged steps or epochs to diagnose")
    loss = steps["loss"].to_numpy(dtype=float) if "loss" in steps else np.array([])
    stats = _stats(session, loss, epochs)
    findings: list[Finding] = []
    for finder in (_divergence, _no_progress, _plateau, _underfit, _overfit, _noise):
        f = finder(run, loss, epochs, stats, th, session)
        if f is not None:
            findings.append(f)
    if "no_progress" in {f.name for f in findings}:  # the LR is the cause: "bigger model" would mislead
        findings = [f for f in findings if f.name != "underfit"]
    findings += _from_instruments(session, run.id)
    findings.sort(key=lambda f: STATUS_ORDER.index(f.status))
    return Diagnosis(run.id, findings, th, stats)


# --------------------------------------------------------------------------------------- finders
def _divergence(run, loss, epochs, stats, th, session):
    if run.status == "diverged" or (len(loss) and not np.isfinite(loss[-1])):
        bad = int(np.argmax(~np.isfinite(loss))) if len(loss) and not np.isfinite(loss).all() else len(loss) - 1
        return Finding("divergence", "error", f"the loss became NaN/inf at step {bad + 1}",
                       "look for bad samples (corrupt data, recipe I.2) or lower the LR; check for vanishing or "
                       "exploding gradients", "B.4", {"step": bad + 1, "last_finite_loss": _last_finite(loss)})
    w = int(th["spike_window"])
    if len(loss) <= w:
        return None
    med = pd.Series(loss).rolling(w).median().shift(1).to_numpy()  # the typical loss just before each step
    ratio = loss[w:] / np.maximum(med[w:], 1e-12)
    i = int(np.nanargmax(ratio))
    after = loss[w + i + 1:w + i + 1 + max(3, w // 4)]
    sustained = not len(after) or np.median(after) >= 2 * med[w + i]  # an isolated outlier batch is noise
    if ratio[i] >= th["spike"] and sustained and loss[w + i] > 0.5 * stats["init_loss"]:
        return Finding("divergence", "warn", f"the loss jumped to {loss[w + i]:.3g} at step {w + i + 1}, "
                       f"{ratio[i]:.1f}x the running median {med[w + i]:.3g} of the {w} steps before",
                       "a sudden jump: bad samples in that batch (recipe I.2) or an LR too high; lower the LR or "
                       "inspect the batch", "B.4",
                       {"step": w + i + 1, "loss": float(loss[w + i]), "median_before": float(med[w + i]),
                        "ratio": float(ratio[i])})
    return None


def _no_progress(run, loss, epochs, stats, th, session):
    if not np.isfinite(stats["end_loss"]) or stats["end_loss"] < th["no_progress"] * stats["init_loss"]:
        return None
    return Finding("no_progress", "error", f"the training loss went from {stats['init_loss']:.3g} to "
                   f"{stats['end_loss']:.3g}: it did not go down", "the LR is far off (usually too high, or far "
                   "too low): run session.lr_find() and take an LR that makes the loss fall within 100 iterations",
                   "B.1", {"init_loss": stats["init_loss"], "end_loss": stats["end_loss"]})


def _plateau(run, loss, epochs, stats, th, session):
    n = len(loss)
    if n < 40:
        return None
    q = n // 4
    prev, last = np.nanmean(loss[-2 * q:-q]), np.nanmean(loss[-q:])
    fall = (prev - last) / max(prev, 1e-12)
    level = last / stats["init_loss"]
    if fall < th["plateau_tol"] and level > th["high_loss"]:
        return Finding("plateau_high", "warn", f"the loss is flat ({fall:+.1%} over the last quarter of steps) at "
                       f"{last:.3g}, {level:.0%} of the initial loss", "a plateau while the loss is high: decay "
                       "the LR (lr_schedule='step' or 'plateau') or lower it", "B.4",
                       {"relative_fall": float(fall), "loss": float(last), "fraction_of_initial": float(level)})
    return None


def _underfit(run, loss, epochs, stats, th, session):
    if not len(epochs) or "train_metric" not in epochs:
        return None
    tr, va = float(epochs["train_metric"].iloc[-1]), float(epochs["val_metric"].iloc[-1])
    higher = getattr(session.task, "higher_is_better", True)
    if higher:
        bar = th["underfit_metric"]
        if session.human_baseline is not None:
            bar = float(session.human_baseline) - 0.05  # "low" means below what a person reaches (II.6)
        low = tr < bar
        evidence = {"train_metric": tr, "val_metric": va, "bar": bar}
    else:
        tl = float(epochs["train_loss"].iloc[-1])
        low = tl > th["underfit_loss"] * stats["init_loss"]
        evidence = {"train_loss": tl, "init_loss": stats["init_loss"], "train_metric": tr, "val_metric": va}
    close = abs(tr - va) <= th["close_gap"] * (1 if higher else max(abs(tr), 1e-12))
    if low and close:
        return Finding("underfit", "warn", f"train {session.task.metric} {tr:.3g} and val {va:.3g} are close "
                       "and low", "underfitting: a bigger model (recipe II.9, III.R10), train longer, or a higher "
                       "LR", "B.4", evidence)
    return None


def _overfit(run, loss, epochs, stats, th, session):
    if len(epochs) < 1 or "train_metric" not in epochs:
        return None
    tr, va = float(epochs["train_metric"].iloc[-1]), float(epochs["val_metric"].iloc[-1])
    higher = getattr(session.task, "higher_is_better", True)
    gap = (tr - va) if higher else (va - tr) / max(abs(tr), 1e-12)
    vl = epochs["val_loss"].to_numpy(dtype=float)
    best = int(np.nanargmin(vl)) if np.isfinite(vl).any() else len(vl) - 1
    rise = (vl[-1] - vl[best]) / max(abs(vl[best]), 1e-12) if len(vl) else 0.0
    train_fell = len(epochs) > 1 and epochs["train_loss"].iloc[-1] < epochs["train_loss"].iloc[best]
    if gap > th["overfit_gap"] or (rise > th["val_rise"] and train_fell):
        return Finding("overfit", "warn", f"train {session.task.metric} {tr:.3g} vs val {va:.3g} (gap {gap:.3g}); "
                       f"val loss {vl[-1]:.3g} is {rise:+.0%} from its best {vl[best]:.3g} at epoch {best + 1}",
                       "overfitting: more data (III.R1), augmentation (III.R2), weight decay (III.R8), early "
                       "stopping (III.R9), dropout, a smaller input (III.R6)", "B.4",
                       {"gap": float(gap), "train_metric": tr, "val_metric": va, "val_loss": float(vl[-1]),
                        "best_val_loss": float(vl[best]), "best_epoch": best + 1, "val_loss_rise": float(rise)})
    return None


def _noise(run, loss, epochs, stats, th, session):
    w = int(th["noise_window"])
    tail = loss[len(loss) // 2:]
    if len(tail) < 2 * w or not np.isfinite(tail).all():
        return None
    resid = tail - pd.Series(tail).rolling(w, center=True, min_periods=1).mean().to_numpy()
    noise = float(np.std(resid)) / stats["init_loss"]
    stats["noise"] = noise
    if noise > th["noise"]:
        bs = run.config.get("batch_size")
        return Finding("noisy_loss", "warn", f"the step loss swings by {np.std(resid):.3g} around its running mean "
                       f"({noise:.0%} of the initial loss) with batch size {bs}", "too much up-and-down: a larger "
                       "batch (or a lower LR)", "P.1", {"noise": noise, "std": float(np.std(resid)), "batch_size": bs})
    return None


# Instruments (the other half of issue 5) summarise themselves with a verdict; map their kind to advice.
INSTRUMENT_ADVICE = (
    ("update", "P.5", "update/weight ratio out of the ~1e-3 band: lower the LR if above, raise it if below"),
    ("activation", "P.3", "dead or saturated units: fix the initialisation (recipe II.5) or the LR"),
    ("histogram", "P.3", "dead or saturated units: fix the initialisation (recipe II.5) or the LR"),
    ("grad", "P.3", "vanishing or exploding gradients: check the initialisation and normalisation"),
    ("nan", "P.3", "a NaN/inf appeared: look at the named layer, the LR and the data"),
    ("wiggle", "II.11", "fixed-batch predictions wiggle: training is unstable, lower the LR"),
    ("predict", "II.11", "fixed-batch predictions wiggle: training is unstable, lower the LR"),
    ("first", "III.R11", "first-layer filters look like noise: train longer, regularize, or check the LR"),
)


def _from_instruments(session, run_id: str) -> list[Finding]:
    """A finding per attached instrument whose summary is not ok, for this run (an instrument that
    last watched another run says nothing about this one).

    Instruments summarise as ``{"name", "recipe", "status": "pass"|"warn"|"fail"|"skip", "verdict", ...}``;
    without a ``status``, a ``verdict`` such as "ok" or "healthy" counts as fine.
    """
    out = []
    for inst in getattr(session, "instruments", None) or []:
        name = getattr(inst, "name", None) or type(inst).__name__
        if getattr(inst, "run_id", None) not in (None, run_id):
            continue
        try:
            summary = inst.summary() if hasattr(inst, "summary") else None
        except Exception as e:  # noqa: BLE001 - a broken instrument must not hide the curve findings
            out.append(Finding(f"instrument:{name}", "info", f"summary() raised {type(e).__name__}: {e}",
                               "look at the instrument", "B.4", {}))
            continue
        if not isinstance(summary, dict):
            continue
        status, verdict = summary.get("status"), summary.get("verdict")
        if status is not None:
            status = status_of(status) if str(status).lower() in ALIASES or status in STATUSES else "warn"
            if status in ("pass", "skip"):
                continue
            severity = "error" if status in ("fail", "error") else "warn"
        elif verdict is None or str(verdict).strip().lower() in OK_VERDICTS:
            continue
        else:
            severity = "warn"
        recipe, advice = next(((r, a) for key, r, a in INSTRUMENT_ADVICE if key in name.lower()),
                              ("B.4", "see the instrument's plot"))
        evidence = {k: v for k, v in summary.items() if isinstance(v, int | float | str | bool)
                    and k not in ("name", "recipe", "status", "verdict", "run")}
        out.append(Finding(name, severity, f"{name}: {verdict}", advice, summary.get("recipe") or recipe, evidence))
    return out


# --------------------------------------------------------------------------------------- helpers
def _resolve(session, run) -> Run:
    if run is None:
        run = session.last_run
        if run is None:
            raise WorkbenchError("no run to diagnose: train one with session.fit() or pass run=")
    return session.run(run)


def _stats(session, loss, epochs) -> dict:
    finite = loss[np.isfinite(loss)] if len(loss) else loss
    k = max(1, min(10, len(finite) // 10 or 1))
    init = float(np.mean(finite[:1])) if len(finite) else math.nan
    if not (init > 0 and math.isfinite(init)):  # fall back on the epoch table / the task's expectation
        expected = session.task.expected_init_loss(session.labels("train"))
        init = float(expected) if expected else 1.0
    end = float(np.mean(finite[-k:])) if len(finite) else math.nan
    if len(loss) and not np.isfinite(loss[-1]):
        end = math.inf
    return {"init_loss": init, "end_loss": end, "steps": int(len(loss)), "epochs": int(len(epochs))}


def _last_finite(loss) -> float | None:
    finite = loss[np.isfinite(loss)]
    return float(finite[-1]) if len(finite) else None
