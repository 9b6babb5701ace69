"""Random search on Optuna, coarse then refine (recipe B.2, B.3); one study shared by many processes.

Coarse (B.2): random (or quasi-random Sobol) samples of log-LR around the LR finder's pick and a
weight decay in {1e-4, 1e-5, 0}, 1-5 epochs each: random, not grid, because parameters differ in
how much they matter. Refine (B.3): the best coarse configurations for 10-20 epochs, no LR decay.
Every trial is an ordinary ``session.fit`` run in the run store, tagged with its study and trial.
The study lives in an Optuna storage: SQLite under the session root by default; any Optuna storage
URL (a journal file, PostgreSQL) lets several processes or machines work on one study.
"""

from __future__ import annotations

import math
import random
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from workbench import validate
from workbench.errors import ConfigError, WorkbenchError

RECIPE = {"coarse": "B.2", "refine": "B.3"}
DEFAULT_EPOCHS = {"coarse": 2, "refine": 10}
RECIPE_EPOCHS = {"coarse": (1, 5), "refine": (10, 20)}
WEIGHT_DECAYS = (1e-4, 1e-5, 0.0)
WIDE_LR = (1e-5, 1e-1)  # when no LR finder result is there to centre the range on
FIT_KEYS = {"lr", "weight_decay", "batch_size", "optimizer", "reg_strength", "epochs", "augment", "ema",
            "early_stopping"}
_JITTER = random.SystemRandom()  # not the global RNG: the session's seeded state stays untouched
COLUMNS = ["trial", "run_id", "lr", "weight_decay", "epochs", "value", "state"]


def search(session, space: dict | None = None, trials: int | None = None, epochs: int | None = None,
           stage: str = "coarse", storage=None, study_name: str | None = None, sampler: str = "random",
           n_jobs: int = 1, top: int = 3,
           objective: str = "val_metric", total_trials: int | None = None, seed: int | None = None,
           lr_span: float = 10.0, from_results: pd.DataFrame | None = None, heartbeat: int | None = 60,
           **fit_options) -> pd.DataFrame:
    """Run trials of a coarse or refine study; returns every trial of the study, best first.

    ``trials``: how many this call runs (default: 8 for coarse; for refine, each best coarse
    configuration not yet refined, once). ``space``: name -> a list (categorical),
    ``("log", lo, hi)``, ``("float", lo, hi)``, ``("int", lo, hi)`` or an Optuna distribution; names
    are fit options (lr, weight_decay, batch_size, ...) or model factory keywords (width, dropout, ...).
    ``total_trials``: stop once the study holds that many trials, whichever process ran them (workers
    sharing one storage). ``heartbeat`` (seconds; database storages): a trial whose worker died is
    failed after two missed heartbeats and run again with the same parameters, so none is lost.
    Refine takes the ``top`` configurations of the coarse results (``from_results``, else
    ``session.reports["search"]``). The table has columns ``trial, run_id, lr, weight_decay,
    epochs, value, state`` and more; ``session.search`` records it in the session's book.
    """
    validate.search_options(trials=trials, epochs=epochs, total_trials=total_trials)  # epochs=0 trained anyway
    if stage not in RECIPE:
        raise ConfigError(f"stage must be 'coarse' or 'refine', got {stage!r}")
    if sampler not in ("random", "qmc"):
        raise ConfigError(f"sampler must be 'random' or 'qmc', got {sampler!r}")
    if (trials is not None and int(trials) < 0) or (total_trials is not None and int(total_trials) < 1):
        raise ConfigError(f"trials must be >= 0 and total_trials >= 1, got {trials!r}, {total_trials!r}")
    if objective not in ("val_metric", "val_loss", "train_loss", "train_metric"):
        raise ConfigError(f"objective must be a column of the run's metrics such as 'val_metric' or "
                          f"'val_loss', got {objective!r}")
    if stage == "refine" and fit_options.get("lr_schedule") is not None:
        raise ConfigError("refine trains without LR decay (recipe B.3, III.M4); drop lr_schedule=")
    epochs = int(epochs or DEFAULT_EPOCHS[stage])
    lo, hi = RECIPE_EPOCHS[stage]
    if not lo <= epochs <= hi:
        warnings.warn(f"{stage} search with {epochs} epochs: recipe {RECIPE[stage]} uses {lo}-{hi}", stacklevel=2)
    seed = session.seed if seed is None else int(seed)
    direction = _direction(session, objective)

    enqueue: list[dict] = []
    if stage == "refine":
        coarse = from_results if from_results is not None else session.reports.get("search")
        enqueue = _best_configs(coarse, top)
        study_name = study_name or f"{(coarse.attrs.get('study') or _default_name(session))}-refine"
        if space is None:
            space = {k: CategoricalDistribution(sorted({c[k] for c in enqueue}, key=repr)) for k in enqueue[0]}
    space = _parse_space(session, space if space is not None else default_space(session, lr_span))
    study_name = study_name or f"{_default_name(session)}-{stage}"
    store = make_storage(session, storage, heartbeat=heartbeat)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runs table and the result say what happened
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(storage=store, study_name=study_name, direction=direction,
                                    sampler=_sampler(sampler, seed), load_if_exists=True)
    done = {_params_key(t.params) for t in study.get_trials(deepcopy=False)}
    fresh = [cfg for cfg in enqueue if _params_key(cfg) not in done]
    for cfg in fresh:  # each best coarse configuration once, even when refine is called again
        study.enqueue_trial(cfg, skip_if_exists=True)
    if trials is None:  # default: coarse 8 random trials; refine each best configuration once
        trials = len(fresh) if stage == "refine" else 8

    # every trial is compared against the run the search started from (III.M3), unless told otherwise
    base = fit_options.pop("parent", None) or session.last_run
    fixed_model_kwargs = dict(fit_options.pop("model_kwargs", None) or {})
    extra_tags = dict(fit_options.pop("tags", None) or {})
    fit_options.pop("name", None)  # the run's name says stage and trial
    fit_options = {"lr_schedule": None, **fit_options}

    def run_trial(trial: optuna.Trial) -> float:
        if total_trials is not None and _claimed_before(trial) >= total_trials:
            trial.set_user_attr("surplus", True)  # other workers already claimed every trial of the study
            trial.study.stop()
            raise optuna.TrialPruned(f"the study already holds {total_trials} trials")
        params = {name: _suggest(trial, name, dist) for name, dist in space.items()}
        fit_kw = {k: v for k, v in params.items() if k in FIT_KEYS}
        model_kwargs = {**fixed_model_kwargs, **{k: v for k, v in params.items() if k not in FIT_KEYS}}
        with session.runner.guest():  # with n_jobs > 1 a trial runs in Optuna's thread, inside the search's job
            run = session.fit(**{"epochs": epochs, **fit_options, **fit_kw}, model_kwargs=model_kwargs or None,
                              parent=base, name=f"{stage}{trial.number}",
                              tags={**extra_tags, "study": study_name, "trial": trial.number, "stage": stage})
        last = run.epoch_records[-1] if run.epoch_records else {}
        trial.set_user_attr("run_id", run.id)
        trial.set_user_attr("status", run.status)
        trial.set_user_attr("epochs", len(run.epoch_records))
        for k in ("train_loss", "train_metric", "val_loss", "val_metric"):
            if k in last:
                trial.set_user_attr(k, _finite_or_none(last[k]))
        value = last.get(objective)
        if run.status == "diverged" or value is None or not math.isfinite(value):
            raise optuna.TrialPruned(f"run {run.id} {run.status}: no finite {objective}")  # recorded, not lost
        return float(value)

    # failed trials (a dead worker's) do not count: their retries, waiting in the queue, still have to run
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    callbacks = [optuna.study.MaxTrialsCallback(int(total_trials), states=live)] if total_trials else []
    if n_jobs != 1:
        warnings.warn("n_jobs > 1 trains in threads of one process; for real parallelism start several "
                      "processes on one storage", stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if trials:
            study.optimize(run_trial, n_trials=int(trials), n_jobs=n_jobs, callbacks=callbacks)
    table = results(study, direction)
    table.attrs.update(study=study_name, storage=_describe_storage(store), stage=stage, direction=direction,
                       objective=objective, recipe=RECIPE[stage], epochs=epochs)
    return table


def default_space(session, lr_span: float = 10.0) -> dict:
    """Log-LR around the LR finder's pick (or a wide range) and weight decay in {1e-4, 1e-5, 0} (B.2)."""
    found = session.reports.get("lr_find")
    pick = getattr(found, "suggestion", None)
    lr = ("log", pick / lr_span, pick * lr_span) if pick else ("log", *WIDE_LR)
    return {"lr": lr, "weight_decay": list(WEIGHT_DECAYS)}


def results(study: optuna.Study, direction: str = "maximize") -> pd.DataFrame:
    """Every trial of a study as a table, best first: trial, run_id, params, epochs, value, state."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        a = t.user_attrs
        rows.append({"trial": t.number, "run_id": a.get("run_id"), **t.params, "epochs": a.get("epochs"),
                     "value": t.value, "state": t.state.name, "status": a.get("status"),
                     **{k: a.get(k) for k in ("train_loss", "train_metric", "val_loss", "val_metric")},
                     "duration_s": t.duration.total_seconds() if t.duration else None})
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = pd.Series(dtype=object)
    if len(df):
        complete = df["state"].eq("COMPLETE")
        df = pd.concat([df[complete].sort_values("value", ascending=direction == "minimize"),
                        df[~complete].sort_values("trial")])
    return df[COLUMNS + [c for c in df.columns if c not in COLUMNS]].reset_index(drop=True)


def make_storage(session, storage=None, heartbeat: int | None = 60):
    """An Optuna storage: SQLite ``<root>/optuna.db`` by default; ``*.log``/``journal:<path>`` a journal
    file (safe for many processes on one file system); any other URL (``postgresql://...``) as is.

    Database storages get a ``heartbeat`` (seconds): a running trial silent for two beats belongs to a
    dead worker; it is marked failed and queued again with the same parameters (up to 3 times).
    Optuna's journal storage has no heartbeat: there a dead worker's trial stays RUNNING."""
    if storage is None:
        root = Path(session.root)
        root.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(root / 'optuna.db').resolve()}"
    if not isinstance(storage, str | Path):
        if isinstance(storage, optuna.storages.BaseStorage):
            return storage
        raise WorkbenchError(f"storage must be an Optuna storage URL, a journal file path or a BaseStorage, "
                             f"got {type(storage).__name__}")
    s = str(storage)
    if s.startswith("journal:") or s.endswith((".log", ".journal")):
        from optuna.storages.journal import JournalFileBackend

        path = Path(s.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" in s:
        kw = {}
        if heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
            kw = {"heartbeat_interval": int(heartbeat), "grace_period": 2 * int(heartbeat),
                  "heartbeat_stale_trial_callback": retry}
        # several processes write one SQLite file: wait for its lock instead of failing at once
        engine = {"connect_args": {"timeout": 120}} if s.startswith("sqlite:") else None
        return _rdb_storage(s, engine, kw)
    raise WorkbenchError(f"storage {s!r} is neither a database URL (sqlite:///..., postgresql://...) nor a "
                         "journal file (*.log or journal:<path>)")


def _rdb_storage(url: str, engine, kw, attempts: int = 8):
    """RDBStorage, retried: workers starting together on a new SQLite file race to create its tables,
    and the loser sees a UNIQUE or "table exists" error once the winner has made them."""
    import sqlalchemy.exc

    for i in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine, **kw)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if i == attempts - 1:
                raise
            time.sleep(0.2 * (i + 1) + _JITTER.random() * 0.2)  # jitter: the racers must not meet again


class TrialSeededSampler(optuna.samplers.RandomSampler):
    """Random sampling whose draws depend only on (seed, trial number, parameter): reproducible, and
    two processes with the same seed never propose the same configuration (their trial numbers differ)."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self._seed = int(seed)

    def sample_independent(self, study, trial, param_name, param_distribution):
        entropy = [self._seed, trial.number, zlib.crc32(param_name.encode())]
        self._rng._rng = np.random.RandomState(np.random.SeedSequence(entropy).generate_state(1)[0])
        return super().sample_independent(study, trial, param_name, param_distribution)


def _sampler(kind: str, seed: int):
    if kind == "qmc":
        # Sobol points cover the space more evenly than random ones; categorical params fall back to random
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                          independent_sampler=TrialSeededSampler(seed),
                                          warn_independent_sampling=False, warn_asynchronous_seeding=False)
    return TrialSeededSampler(seed)


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution):
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise ConfigError(f"search space {name!r}: unsupported distribution {type(dist).__name__}")


def _parse_space(session, space: dict) -> dict[str, BaseDistribution]:
    if not isinstance(space, dict) or not space:
        raise ConfigError("space must be a non-empty dict: name -> list | ('log', lo, hi) | distribution")
    out = {}
    for name, spec in space.items():
        if name not in FIT_KEYS and not session.accepts(name):
            raise ConfigError(f"search space: {name!r} is neither a fit option ({sorted(FIT_KEYS)}) nor a "
                              f"keyword of the model factory {session.model_name}",
                              fix="name a fit option, or give the factory that keyword")
        out[name] = _distribution(name, spec)
    return out


def _distribution(name: str, spec) -> BaseDistribution:
    if isinstance(spec, BaseDistribution):
        return spec
    if isinstance(spec, tuple) and len(spec) == 3 and spec[0] in ("log", "float", "int"):
        kind, lo, hi = spec
        if not lo < hi or (kind == "log" and lo <= 0):
            raise ConfigError(f"search space {name!r}: need 0 < lo < hi for {kind}, got ({lo!r}, {hi!r})",
                              fix=f"pass ({kind!r}, lo, hi) with lo < hi, e.g. ('log', 1e-5, 1e-1)")
        if kind == "int":
            return IntDistribution(int(lo), int(hi))
        return FloatDistribution(float(lo), float(hi), log=kind == "log")
    if isinstance(spec, list | tuple) and len(spec):
        return CategoricalDistribution(list(spec))
    raise ConfigError(f"search space {name!r}: use a list of choices, ('log', lo, hi), ('float', lo, hi), "
                      f"('int', lo, hi) or an Optuna distribution, got {spec!r}")


def _best_configs(table, top: int) -> list[dict]:
    if table is None or not isinstance(table, pd.DataFrame) or not len(table):
        raise WorkbenchError("refine needs coarse results: run search(stage='coarse') first or pass from_results=")
    done = table[table["state"].eq("COMPLETE")]
    if not len(done):
        raise WorkbenchError("the coarse study has no completed trial to refine")
    skip = set(COLUMNS) | {"status", "train_loss", "train_metric", "val_loss", "val_metric", "duration_s"}
    params = [c for c in done.columns if c not in skip] + ["lr", "weight_decay"]
    params = [c for c in dict.fromkeys(params) if c in done.columns]
    return [{k: _plain(r[k]) for k in params if not _missing(r[k])} for _, r in done.head(int(top)).iterrows()]


def _claimed_before(trial: optuna.Trial) -> int:
    """Trials numbered below this one that count toward the study's total: not failed, not surplus.

    Trial numbers are handed out atomically by the storage, so two workers never both see room for
    the same last trial; a failed (dead worker's) trial leaves room for its retry.
    """
    others = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                            TrialState.RUNNING, TrialState.WAITING))
    return sum(1 for t in others if t.number < trial.number and not t.user_attrs.get("surplus"))


def _direction(session, objective: str) -> str:
    if objective.endswith("loss"):
        return "minimize"
    return "maximize" if getattr(session.task, "higher_is_better", True) else "minimize"


def _default_name(session) -> str:
    return f"{session.name}-{session.model_name}".replace(" ", "")


def _params_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(_plain(v))) for k, v in params.items()))


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _finite_or_none(v):
    return float(v) if v is not None and math.isfinite(v) else None


def _describe_storage(store) -> str:
    if isinstance(store, optuna.storages.RDBStorage):
        return store.url
    return type(store).__name__
