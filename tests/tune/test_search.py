"""Random search on Optuna (recipe B.2, B.3): trials are runs, coarse then refine, one study many processes."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.store import RunStore
from workbench.tune.lr_find import LRFindResult
from workbench.tune.search import COLUMNS, TrialSeededSampler, default_space, make_storage, search

REPO = Path(__file__).resolve().parents[2]


def test_coarse_then_refine(mlp_session):
    s = mlp_session
    df = s.search(trials=3, epochs=1, batch_size=128)
    assert list(df.columns[:len(COLUMNS)]) == COLUMNS and len(df) == 3
    assert (df["state"] == "COMPLETE").all()
    assert list(df["value"]) == sorted(df["value"], reverse=True)  # accuracy: best first
    assert set(df["weight_decay"]) <= {1e-4, 1e-5, 0.0}
    assert df["lr"].between(1e-5, 1e-1).all()  # no LR finder result: the wide default range
    assert df.attrs["recipe"] == "B.2" and s.reports["search"] is df
    assert (Path(s.root) / "optuna.db").exists()
    for row in df.itertuples():  # each trial is a run in the store, tagged, scored on the whole test set
        run = s.run(row.run_id)
        assert run.config["tags"] == {"study": df.attrs["study"], "trial": row.trial, "stage": "coarse"}
        assert run.config["lr"] == row.lr and run.config["weight_decay"] == row.weight_decay
        assert run.config["lr_schedule"] is None  # no LR decay while searching (III.M4)
        assert run.metrics["val_metric"].iloc[-1] == pytest.approx(row.value)
        assert run.metrics["n_eval"].iloc[-1] == 360

    ref = s.search(stage="refine", top=2, epochs=10, batch_size=128)
    assert ref.attrs["study"] == df.attrs["study"] + "-refine" and ref.attrs["recipe"] == "B.3"
    best2 = {(r.lr, r.weight_decay) for r in df.head(2).itertuples()}
    assert {(r.lr, r.weight_decay) for r in ref.itertuples()} == best2
    assert (ref["epochs"] == 10).all() and (ref["state"] == "COMPLETE").all()
    # calling refine again adds nothing: each best configuration is refined once
    again = s.search(stage="refine", top=2, epochs=10, from_results=df, batch_size=128)
    assert len(again) == 2


def test_lr_range_is_centred_on_the_finder(mlp_session):
    mlp_session.reports["lr_find"] = LRFindResult(pd.DataFrame(), {"middle": 2e-2})
    space = default_space(mlp_session)
    assert space["lr"] == ("log", pytest.approx(2e-3), pytest.approx(2e-1))
    assert space["weight_decay"] == [1e-4, 1e-5, 0.0]


def test_sampler_depends_on_seed_and_trial_number_only():
    def draws(seed, n):
        study = optuna.create_study(sampler=TrialSeededSampler(seed))
        out = []
        for _ in range(n):
            t = study.ask()
            out.append(t.suggest_float("lr", 1e-5, 1e-1, log=True))
            study.tell(t, 0.0)
        return out

    a, b, c = draws(0, 4), draws(0, 4), draws(1, 4)
    assert a == b  # reproducible
    assert len(set(a)) == 4 and a != c  # no two trial numbers propose the same configuration


def test_bad_space_and_stage(mlp_session):
    with pytest.raises(WorkbenchError, match="neither a fit option"):
        search(mlp_session, space={"colour": ["red"]}, trials=1)
    with pytest.raises(WorkbenchError, match="lo < hi"):
        search(mlp_session, space={"lr": ("log", 1e-1, 1e-3)}, trials=1)
    with pytest.raises(WorkbenchError, match="stage"):
        search(mlp_session, stage="fine")
    with pytest.raises(WorkbenchError, match="coarse results"):
        search(mlp_session, stage="refine")
    with pytest.raises(WorkbenchError, match="storage"):
        make_storage(mlp_session, "not-a-url")


def test_model_keywords_are_searchable(mlp_session):
    df = search(mlp_session, space={"lr": [1e-2], "width": [8, 16]}, trials=2, epochs=1, study_name="w",
                batch_size=256, sampler="qmc")
    for row in df.itertuples():
        assert mlp_session.run(row.run_id).config["model_kwargs"] == {"width": row.width}


def test_a_diverged_trial_is_recorded_not_lost(nan_session):
    df = search(nan_session, space={"lr": [1e-3]}, trials=1, epochs=1, tags={"who": "me"})
    row = df.iloc[0]
    assert row["state"] == "PRUNED" and row["status"] == "diverged" and pd.isna(row["value"])
    assert nan_session.run(row["run_id"]).config["tags"] == {"who": "me", "study": df.attrs["study"], "trial": 0,
                                                             "stage": "coarse"}


WORKER = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    import workbench as wb
    from workbench.demo import demo_session
    from workbench.tune.search import search
    root, storage, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    die = len(sys.argv) > 4 and sys.argv[4] == "die"

    class Die:  # a worker killed in the middle of its trial: no clean-up, no goodbye
        def on_step_end(self, trainer):
            import os
            os._exit(3)

    s = demo_session(root=root, model=wb.models.linear)
    search(s, trials=n, total_trials=n, epochs=1, study_name="shared", storage=None if storage == "-" else storage,
           batch_size=512, checkpoint=False, heartbeat=1, callbacks=[Die()] if die else ())
    mine = [rid for rid in s.store.ids() if s.run(rid).info.get("pid") == __import__("os").getpid()]
    print(json.dumps(mine))
""")


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_two_processes_share_one_study(tmp_path, backend):
    """Acceptance: two worker processes on one storage finish N trials, none lost, none run twice."""
    n = 6
    root = tmp_path / "runs"
    storage = "-" if backend == "sqlite" else str(tmp_path / "study.log")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(script), str(root), storage, str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    per_worker = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]

    store = make_storage(type("S", (), {"root": root})(), None if storage == "-" else storage)
    study = optuna.load_study(study_name="shared", storage=store)
    real = [t for t in study.get_trials() if not t.user_attrs.get("surplus")]
    assert sorted(t.number for t in real) == list(range(n))  # none lost
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in real)
    run_ids = [t.user_attrs["run_id"] for t in real]
    assert len(set(run_ids)) == n  # none run twice
    # the run store agrees: exactly n runs of the study, each tagged with its own trial number
    tagged = {}
    for d in root.iterdir():
        if (d / "config.json").exists():
            tags = json.loads((d / "config.json").read_text())["tags"]
            tagged.setdefault(tags["trial"], []).append(d.name)
    assert sorted(tagged) == list(range(n)) and all(len(v) == 1 for v in tagged.values())
    assert sorted(per_worker[0] + per_worker[1]) == sorted(run_ids)
    # a surplus trial is a claim that found the study full: it trained nothing
    assert len(study.get_trials()) - n <= 2  # at most one per worker


def test_a_dead_workers_trial_is_run_again(tmp_path):
    """None lost, also when a worker dies mid-trial: its trial goes stale, fails, and is retried."""
    n, root = 3, tmp_path / "runs"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(script), str(root), "-", str(n)]
    dead = subprocess.run(cmd + ["die"], capture_output=True, text=True, env=env, timeout=300)
    assert dead.returncode == 3, dead.stderr[-2000:]
    time.sleep(2.5)  # past the grace period (two heartbeats of 1 s)
    alive = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert alive.returncode == 0, alive.stderr[-2000:]

    study = optuna.load_study(study_name="shared", storage=make_storage(type("S", (), {"root": root})()))
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"], states
    retry = trials[1]
    assert retry.system_attrs["failed_trial"] == 0 and retry.params == trials[0].params
    statuses = sorted(RunStore(root).table()["status"])
    assert statuses == ["completed"] * n + ["interrupted"]
