"""Ensembles of seeds, search configurations or checkpoints, scored on the whole test set (recipe IV.1-IV.3).

``ensemble(session, kind, n)`` gathers ``n`` members, evaluates each member and every prefix of the
ensemble (members 1..k for k = 1..n) on every example of the test split (II.3), and returns an
``EnsembleResult``: per-member metrics, the ensemble's metric, the marginal gain of each added member
(the recipe's III.R1: gains fade after about five) and an ``Ensemble`` module usable as a teacher
for distillation (IV.5).

Classification and sequence members are combined by averaging their softmax probabilities (not
their logits: the mean of probabilities is the ensemble's predictive distribution); regression
members by averaging their predictions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from workbench.errors import ModelError, RunError, WorkbenchError
from workbench.store import atomic_write_json

KINDS = {"seeds": "IV.1", "configs": "IV.2", "checkpoints": "IV.3", "models": "IV.1"}
_TINY = torch.finfo(torch.float32).tiny  # keeps log(mean probability) finite when every member says 0


class EnsembleError(WorkbenchError, ValueError):
    """The ensemble cannot be built as asked: bad n, unknown kind, an empty search, a run without checkpoints."""


class Ensemble(nn.Module):
    """Several trained networks as one module: ``forward`` returns the LOG of the mean member probability.

    Returning log-probabilities (not probabilities) keeps the module a drop-in classifier: its
    ``argmax`` is the ensemble's prediction and ``cross_entropy(forward(x), y)`` is exactly the
    ensemble's negative log-likelihood, because log_softmax leaves log-probabilities unchanged. Use
    ``probs(x)`` for the probabilities themselves, ``probs(x, temperature=T)`` for the softened
    targets of distillation. For regression ``forward`` returns the mean prediction.
    """

    def __init__(self, members, task: str = "classification"):
        super().__init__()
        members = list(members)
        if not members:
            raise EnsembleError("an ensemble needs at least one member")
        for i, m in enumerate(members):
            if not isinstance(m, nn.Module):
                raise EnsembleError(f"ensemble member {i} is a {type(m).__name__}, not an nn.Module")
        self.members = nn.ModuleList(members)
        self.task = getattr(task, "name", task)
        # real-valued sequences average like regression: a task object says so, a bare name only for "regression"
        self.real_valued = bool(getattr(task, "real_valued", self.task == "regression"))
        self.eval()  # an ensemble is for prediction: BatchNorm running statistics, no dropout

    def __len__(self) -> int:
        return len(self.members)

    def member_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's raw output (logits or predictions), checked to have one common shape."""
        outs = [m(x) for m in self.members]
        shapes = [tuple(o.shape) for o in outs]
        if len(set(shapes)) > 1:
            listing = ", ".join(f"member {i}: {s}" for i, s in enumerate(shapes))
            raise ModelError(f"ensemble members give outputs of different shapes ({listing}); every member "
                             f"must predict the same classes/targets to be averaged")
        return outs

    def probs(self, x: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        """Mean of the members' softmax(logits / temperature) over the last dimension (IV.1)."""
        if self.real_valued:
            raise EnsembleError(f"a {self.task} ensemble with real-valued targets has no probabilities; call the "
                                "module for its mean prediction")
        return torch.stack([F.softmax(o / temperature, dim=-1) for o in self.member_outputs(x)]).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.real_valued:
            return torch.stack(self.member_outputs(x)).mean(0)
        return self.probs(x).clamp_min(_TINY).log()


@dataclass
class EnsembleResult:
    """What an ensemble is worth: each member, the ensemble, and the gain of every member added."""

    kind: str
    recipe: str
    metric_name: str
    higher_is_better: bool
    split: str
    n_eval: int
    members: pd.DataFrame        # member, run_id, source, loss, metric
    gains: pd.DataFrame          # k, loss, metric, gain (metric(k) - metric(k-1); NaN for k = 1)
    module: Ensemble
    notes: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def metric(self) -> float:
        """The full ensemble's metric on the whole test split."""
        return float(self.gains["metric"].iloc[-1])

    @property
    def loss(self) -> float:
        return float(self.gains["loss"].iloc[-1])

    @property
    def mean_member_metric(self) -> float:
        return float(self.members["metric"].mean())

    @property
    def improvement(self) -> float:
        """How much better the ensemble is than the average member (positive = better, either metric sense)."""
        d = self.metric - self.mean_member_metric
        return d if self.higher_is_better else -d

    @property
    def run_ids(self) -> list[str]:
        return [r for r in self.members["run_id"].tolist() if r]

    def summary(self) -> str:
        m = self.metric_name
        return (f"{self.recipe} {self.kind} ensemble of {len(self.members)}: {m} {self.metric:.4f} vs mean member "
                f"{self.mean_member_metric:.4f} (best member {self._best_member():.4f}) on all {self.n_eval} "
                f"{self.split} examples")

    def _best_member(self) -> float:
        col = self.members["metric"]
        return float(col.max() if self.higher_is_better else col.min())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "recipe": self.recipe, "metric_name": self.metric_name,
                "higher_is_better": self.higher_is_better, "split": self.split, "n_eval": self.n_eval,
                "metric": self.metric, "loss": self.loss, "mean_member_metric": self.mean_member_metric,
                "improvement": self.improvement, "run_ids": self.run_ids,
                "members": self.members.to_dict("records"), "gains": self.gains.to_dict("records"),
                "notes": self.notes, "summary": self.summary(), "time": time.time()}

    def __repr__(self) -> str:
        return f"EnsembleResult({self.summary()})"


# ------------------------------------------------------------------------------------------- entry point
def ensemble(session, kind: str = "seeds", n: int = 5, epochs: int | None = None, run=None, search=None, seeds=None,
             models=None, **fit_options) -> EnsembleResult:
    """Build an ensemble of ``n`` members and score it on the whole test split (IV.1-IV.3).

    ``kind="seeds"``: ``session.fit(seed=s)`` for ``n`` seeds (``seeds`` or session.seed + 0..n-1), with
    the hyper-parameters of ``run`` when given, else ``session.chosen_config()`` (the LR finder's pick,
    the best search trial or your last completed run, IV.1), ``epochs`` (default: theirs) and
    ``fit_options`` on top.
    ``kind="configs"``: the best ``n`` rows (``run_id``, ``value``, best first) of ``search`` or the
    session's recorded search, each run's last checkpoint (IV.2).
    ``kind="checkpoints"``: the last ``n`` epoch checkpoints of ``run`` (default: the session's last
    run), newest first (IV.3). ``kind="models"``: the given trained ``models``.
    """
    if kind not in KINDS:
        raise EnsembleError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise EnsembleError(f"n (the number of members) must be a positive integer, got {n!r}")
    if kind == "seeds":
        members, ids, sources = _seed_members(session, n, epochs, run, seeds, fit_options)
    elif kind == "configs":
        members, ids, sources = _config_members(session, n, search)
    elif kind == "checkpoints":
        members, ids, sources = _checkpoint_members(session, n, run)
    else:
        if not models:
            raise EnsembleError("kind='models' needs models=[trained nn.Module, ...]")
        members = list(models)[:n]
        ids, sources = [None] * len(members), [f"model {i}" for i in range(len(members))]
    notes = []
    if kind == "seeds" and run is None and hasattr(session, "chosen_config"):
        c = session.chosen_config()
        notes.append(f"members trained with lr {c['lr']:.3g}, {c['epochs']} epochs: {c['source']}")
    if len(members) < n:
        notes.append(f"asked for {n} members, {len(members)} available")
    module = Ensemble([m.to(session.device) for m in members], task=session.task)
    result = score(session, module, kind=kind, run_ids=ids, sources=sources)
    result.notes += notes
    result.path = _record(session, result)
    return result


def score(session, module: Ensemble, kind: str = "models", run_ids=None, sources=None,
          split: str | None = None) -> EnsembleResult:
    """Every member and every prefix 1..k of ``module`` over the WHOLE test split (II.3), one pass."""
    task = session.task
    split = split or ("test" if session.test is not None else "eval")
    n = len(module)
    m_loss, m_score = [0.0] * n, [0.0] * n
    k_loss, k_score = [0.0] * n, [0.0] * n
    count = 0
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            for x, y in session.loader(split, shuffle=False, batch_size=512):
                x, y = x.to(session.device), y.to(session.device)
                outs = module.member_outputs(x)
                task.check_output(outs[0], y)  # a member predicting other classes than the data's: say so here
                running = None
                for i, out in enumerate(outs):
                    loss_i = float(task.data_loss(out, y)) * len(y)
                    sc, cnt = task.score(out, y)
                    m_loss[i] += loss_i
                    m_score[i] += sc
                    part = out if task.real_valued else F.softmax(out, dim=-1)
                    running = part if running is None else running + part
                    combined = running / (i + 1)
                    if not task.real_valued:
                        combined = combined.clamp_min(_TINY).log()  # log of the mean probability (see Ensemble)
                    k_loss[i] += float(task.data_loss(combined, y)) * len(y)
                    k_score[i] += task.score(combined, y)[0]
                count += cnt
    finally:
        module.train(was)
    if count == 0:
        raise EnsembleError(f"the {split} split is empty: nothing to evaluate the ensemble on")
    run_ids = list(run_ids) if run_ids is not None else [None] * n
    sources = list(sources) if sources is not None else [f"member {i}" for i in range(n)]
    members = pd.DataFrame({"member": range(1, n + 1), "run_id": run_ids, "source": sources,
                            "loss": [v / count for v in m_loss], "metric": [v / count for v in m_score]})
    metric = [v / count for v in k_score]
    gains = pd.DataFrame({"k": range(1, n + 1), "loss": [v / count for v in k_loss], "metric": metric,
                          "gain": [math.nan] + [metric[i] - metric[i - 1] for i in range(1, n)]})
    return EnsembleResult(kind=kind, recipe=KINDS.get(kind, "IV.1"), metric_name=task.metric,
                          higher_is_better=task.higher_is_better, split=split, n_eval=count,
                          members=members, gains=gains, module=module)


# ------------------------------------------------------------------------------------------- members
def _seed_members(session, n, epochs, run, seeds, fit_options):
    """IV.1: the same configuration trained from ``n`` different random initialisations."""
    if fit_options.pop("background", False):
        raise EnsembleError("ensemble members train in the foreground; call ensemble() from a thread instead")
    options = {}
    if run is not None:  # the hyper-parameters of the run the caller named
        c = session.run(run).config
        options = {k: c[k] for k in ("lr", "optimizer", "weight_decay", "batch_size", "reg_strength",
                                     "model_kwargs") if c.get(k) is not None}
        epochs = epochs or c.get("epochs")
    elif hasattr(session, "chosen_config"):  # what the LR finder, the search or your last run settled on
        c = session.chosen_config()
        options = {k: c[k] for k in ("lr", "optimizer", "weight_decay", "batch_size") if c.get(k) is not None}
        epochs = epochs or c.get("epochs")
    options.update(fit_options)
    epochs = int(epochs or 5)
    seeds = list(seeds) if seeds is not None else [session.seed + i for i in range(n)]
    if len(seeds) < n:
        raise EnsembleError(f"{len(seeds)} seeds given for n={n} members")
    tags = {**(options.pop("tags", None) or {}), "ensemble": "seeds", "recipe": "IV.1"}
    name = options.pop("name", None) or "ens-seed"
    members, ids, sources = [], [], []
    for s in seeds[:n]:
        r = session.fit(epochs=epochs, seed=int(s), tags=tags, name=name, **options)
        if r.status != "completed":
            raise RunError(f"ensemble member with seed {s} ended {r.status} (run {r.id}); fix the configuration "
                           f"before ensembling it")
        members.append(r.model)
        ids.append(r.id)
        sources.append(f"seed {s}")
    return members, ids, sources


def _config_members(session, n, search):
    """IV.2: the best ``n`` configurations of a search, one trained model each."""
    table = _search_table(search if search is not None else session.reports.get("search"))
    if table is None:
        raise EnsembleError("kind='configs' needs a search: run session.search(...) first or pass "
                            "search=<DataFrame with columns run_id, value, best first>")
    missing = {"run_id", "value"} - set(table.columns)
    if missing:
        raise EnsembleError(f"the search table lacks the column(s) {sorted(missing)}; it needs run_id and value")
    rows = table.dropna(subset=["run_id", "value"])
    if "state" in rows.columns:  # Optuna keeps pruned and failed trials in the table: only finished ones count
        rows = rows[rows["state"].astype(str).str.upper().str.contains("COMPLETE")]
    if rows.empty:
        raise EnsembleError("the search is empty: no finished trial with a run_id to take members from")
    members, ids, sources = [], [], []
    for _, row in rows.head(n).iterrows():
        rid = str(row["run_id"])
        loaded = session.load_run(rid)
        if loaded.model is None:
            raise RunError(f"search run {rid} has no checkpoint to load; fit it with checkpoint=True")
        members.append(loaded.model)
        ids.append(rid)
        sources.append(f"value {float(row['value']):.4g}")
    return members, ids, sources


def _checkpoint_members(session, n, run):
    """IV.3: the last ``n`` epoch checkpoints of one run, newest first (so member 1 is the final model)."""
    if run is None:
        run = session.last_run
    if run is None:
        raise EnsembleError("kind='checkpoints' needs run=<Run or run id>; the session has no run yet")
    run = session.run(run)
    paths = run.checkpoints()
    if not paths:
        raise EnsembleError(f"run {run.id} has no checkpoints; fit it with checkpoint=True")
    kwargs = run.config.get("model_kwargs", {}) or {}
    members, sources = [], []
    for path in reversed(paths[-n:]):
        state = run.load_checkpoint(path)
        model = session.new_model(**kwargs)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as e:
            raise ModelError(f"checkpoint {path.name} of run {run.id} does not fit the session's model "
                             f"{session.model_name}({kwargs}): {e}") from None
        members.append(model)
        sources.append(f"epoch {int(state.get('epoch', 0))}")
    return members, [run.id] * len(members), sources


def _search_table(search):
    """A search result as a DataFrame: a DataFrame, an object holding one, or a list of dict rows."""
    if search is None:
        return None
    if isinstance(search, pd.DataFrame):
        return search
    for attr in ("trials", "table", "frame", "df", "results"):
        value = getattr(search, attr, None)
        if isinstance(value, pd.DataFrame):
            return value
    if isinstance(search, list | tuple):
        return pd.DataFrame(list(search), columns=None if search else ["run_id", "value"])
    raise EnsembleError(f"cannot read a search table from a {type(search).__name__}; pass a DataFrame with "
                        f"columns run_id, value")


def _record(session, result: EnsembleResult) -> Path:
    return _record_json(session, result.kind, result.to_dict())


def _record_json(session, kind: str, record: dict) -> Path:
    """Part IV numbers under ``<root>/ensembles/`` (written atomically), so they survive the kernel."""
    d = Path(session.root) / "ensembles"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{time.time_ns() % 10**6:06d}.json"
    atomic_write_json(path, record)
    return path
