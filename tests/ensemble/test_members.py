"""Ensembles of seeds, configurations and checkpoints (recipe IV.1-IV.3), on the whole digits test set."""

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import workbench as wb
from workbench.ensemble import Ensemble, EnsembleError, EnsembleResult, ensemble
from workbench.train import evaluate


def test_probabilities_are_the_mean_of_the_members(seed_ensemble, mlp_session):
    X = mlp_session.batch("test", len(mlp_session.test))[0].to(mlp_session.device)
    mod = seed_ensemble.module
    with torch.no_grad():
        members = torch.stack([F.softmax(m(X), dim=1) for m in mod.members])
        expected = members.mean(0)
        got = mod.probs(X)
        logp = mod(X)
    assert torch.allclose(got, expected, atol=1e-7)
    assert torch.allclose(got.sum(1), torch.ones(len(X), device=X.device), atol=1e-6)
    # forward returns log(mean probability): exp gives it back, and it is its own log_softmax
    assert torch.allclose(logp.exp(), expected, atol=1e-6)
    assert torch.allclose(F.log_softmax(logp, dim=1), logp, atol=1e-5)


def test_ensemble_scored_on_the_whole_test_set(seed_ensemble, mlp_session):
    r = seed_ensemble
    n_test = len(mlp_session.test)
    assert isinstance(r, EnsembleResult) and r.kind == "seeds" and r.recipe == "IV.1"
    assert r.n_eval == n_test == 360 and r.split == "test"
    assert len(r.members) == 5 and len(r.run_ids) == 5 and len(set(r.run_ids)) == 5
    # every member's numbers are those of the fit loop's whole-set evaluation of its run
    for _, row in r.members.iterrows():
        last = mlp_session.run(row["run_id"]).metrics.iloc[-1]
        assert row["metric"] == pytest.approx(last["val_metric"])
        assert row["loss"] == pytest.approx(last["val_loss"], rel=1e-5)
    # the module evaluated by the foundation's evaluate() gives the ensemble's numbers
    ev = evaluate(mlp_session, r.module, "test")
    assert ev["n"] == n_test
    assert ev["metric"] == pytest.approx(r.metric) and ev["loss"] == pytest.approx(r.loss, rel=1e-5)


def test_ensemble_beats_the_mean_member_and_gains_add_up(seed_ensemble):
    r = seed_ensemble
    assert r.metric >= r.mean_member_metric  # measured: 0.9167 vs 0.8922 (mlp, 3 epochs, seeds 0-4)
    assert r.improvement == pytest.approx(r.metric - r.mean_member_metric)
    g = r.gains
    assert g["k"].tolist() == [1, 2, 3, 4, 5]
    assert g["metric"].iloc[0] == pytest.approx(r.members["metric"].iloc[0])  # k = 1 is member 1 alone
    assert pd.isna(g["gain"].iloc[0])
    assert g["gain"].iloc[1:].sum() == pytest.approx(g["metric"].iloc[-1] - g["metric"].iloc[0])
    # the ensemble's NLL is at most the members' mean NLL (log is concave: Jensen)
    assert r.loss <= r.members["loss"].mean() + 1e-9


def test_result_in_session_reports_and_on_disk(seed_ensemble, mlp_session):
    assert seed_ensemble.path.parent == mlp_session.root / "ensembles"
    record = json.loads(seed_ensemble.path.read_text())
    assert record["metric"] == pytest.approx(seed_ensemble.metric)
    assert record["run_ids"] == seed_ensemble.run_ids and record["recipe"] == "IV.1"
    assert len(record["gains"]) == 5 and record["n_eval"] == 360
    for rid in seed_ensemble.run_ids:  # members are ordinary runs, tagged
        assert mlp_session.run(rid).config["tags"]["ensemble"] == "seeds"


def test_checkpoint_ensemble_uses_the_last_epochs(mlp_session):
    run = mlp_session.fit(epochs=4, lr=3e-3, seed=7)
    r = mlp_session.ensemble("checkpoints", n=3, run=run.id)  # the session records what it returns
    assert r.recipe == "IV.3" and r.n_eval == 360
    assert r.members["source"].tolist() == ["epoch 4", "epoch 3", "epoch 2"]
    assert r.members["metric"].iloc[0] == pytest.approx(run.metrics["val_metric"].iloc[-1])
    assert r.members["metric"].iloc[1] == pytest.approx(run.metrics["val_metric"].iloc[-2])
    assert mlp_session.reports["ensemble"] is r


def test_config_ensemble_takes_the_search_rows_best_first(mlp_session):
    runs = [mlp_session.fit(epochs=2, lr=lr, seed=1) for lr in (3e-3, 1e-3, 1e-2)]
    table = pd.DataFrame({"run_id": [r.id for r in runs] + [None],
                          "value": [r.metrics["val_loss"].iloc[-1] for r in runs] + [float("nan")]})
    table = table.sort_values("value").reset_index(drop=True)  # best (lowest loss) first, failed trial last
    mlp_session.reports["search"] = table
    r = mlp_session.ensemble("configs", n=2)
    assert r.recipe == "IV.2" and r.run_ids == table["run_id"].tolist()[:2]
    for _, row in r.members.iterrows():
        assert row["metric"] == pytest.approx(mlp_session.run(row["run_id"]).metrics["val_metric"].iloc[-1])
    r3 = ensemble(mlp_session, "configs", n=10, search=table)  # more asked than trials: all finished ones
    assert len(r3.members) == 3 and r3.notes


def test_regression_ensemble_is_the_mean_prediction():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    x = torch.randn(6, 4)
    ens = Ensemble([a, b], task="regression")
    assert torch.allclose(ens(x), (a(x) + b(x)) / 2)
    with pytest.raises(EnsembleError, match="regression"):
        ens.probs(x)


# ------------------------------------------------------------------------------------------- bad input
def test_members_with_different_output_sizes_are_refused(mlp_session):
    ten = wb.models.mlp(num_classes=10)
    five = wb.models.mlp(num_classes=5)
    x = mlp_session.batch("test", 4)[0].to(mlp_session.device)
    ens = Ensemble([ten, five]).to(mlp_session.device)
    with pytest.raises(wb.ModelError, match=r"different shapes.*member 0: \(4, 10\).*member 1: \(4, 5\)"):
        ens(x)
    with pytest.raises(wb.ModelError, match="different shapes"):
        ensemble(mlp_session, "models", n=2, models=[ten, five])
    with pytest.raises(wb.ModelError, match="10 classes"):  # all agree with each other, not with the data
        ensemble(mlp_session, "models", n=2, models=[five, wb.models.mlp(num_classes=5)])


def test_empty_or_missing_search_is_refused(digits, tmp_path):
    s = wb.Session(wb.models.mlp, *digits, root=tmp_path)
    with pytest.raises(EnsembleError, match="needs a search"):
        s.ensemble("configs", n=3)
    with pytest.raises(EnsembleError, match="search is empty"):
        ensemble(s, "configs", search=pd.DataFrame(columns=["run_id", "value"]))
    with pytest.raises(EnsembleError, match="search is empty"):
        ensemble(s, "configs", search=pd.DataFrame({"run_id": ["x"], "value": [0.1], "state": ["FAIL"]}))
    with pytest.raises(EnsembleError, match="lacks the column"):
        ensemble(s, "configs", search=pd.DataFrame({"trial": [0]}))


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_n_is_refused(mlp_session, n):
    with pytest.raises(EnsembleError, match="positive integer"):
        ensemble(mlp_session, "seeds", n=n)


def test_bad_kind_and_runs_without_checkpoints(digits, tmp_path):
    s = wb.Session(wb.models.mlp, *digits, root=tmp_path)
    with pytest.raises(EnsembleError, match="kind must be one of"):
        s.ensemble("bagging")
    with pytest.raises(EnsembleError, match="no run yet"):
        s.ensemble("checkpoints")
    run = s.fit(epochs=1, checkpoint=False)
    with pytest.raises(EnsembleError, match="no checkpoints"):
        s.ensemble("checkpoints", run=run)
    with pytest.raises(wb.WorkbenchError):
        Ensemble([])


def test_config_ensemble_from_a_real_search(digits, tmp_path):
    """IV.2 on the table workbench.tune.search writes (skipped while that module is absent)."""
    pytest.importorskip("workbench.tune.search")
    s = wb.Session(wb.models.mlp, *digits, seed=0, root=tmp_path)
    table = s.search(space={"lr": [1e-3, 3e-3, 1e-2], "weight_decay": [0.0]}, trials=3, epochs=2)
    done = table[table["state"] == "COMPLETE"]
    r = s.ensemble("configs", n=2)
    assert r.run_ids == done["run_id"].tolist()[:2]
    assert r.members["metric"].iloc[0] == pytest.approx(done["value"].iloc[0])  # value = val_metric, best first
    assert r.n_eval == 360


def test_seed_ensemble_reuses_the_configuration_of_a_run(mlp_session):
    chosen = mlp_session.fit(epochs=1, lr=1e-2, weight_decay=1e-4, model_kwargs={"width": 16}, seed=11)
    r = ensemble(mlp_session, "seeds", n=2, run=chosen, seeds=[20, 21])
    for rid, seed in zip(r.run_ids, (20, 21), strict=True):
        c = mlp_session.run(rid).config
        assert (c["lr"], c["weight_decay"], c["epochs"], c["seed"]) == (1e-2, 1e-4, 1, seed)
        assert c["model_kwargs"] == {"width": 16}
    assert r.members["source"].tolist() == ["seed 20", "seed 21"]
