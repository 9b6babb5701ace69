"""curves (P.1, P.2): the run's own metrics, x in epochs, log option; noise and gap verdicts."""

import numpy as np
import pytest

import workbench as wb
from workbench.datasets import TensorPairDataset
from workbench.instruments import Curves


def test_curves_are_the_runs_metrics(session):
    inst = session.instrument("curves")[0].instrument
    run = session.fit(epochs=2, checkpoint=False)
    steps = inst.frame("step")
    np.testing.assert_array_equal(steps["loss"], run.steps["loss"])
    np.testing.assert_array_equal(steps["epoch"], run.steps["epoch"])
    assert steps["epoch"].iloc[-1] == pytest.approx(2.0) and steps["epoch"].iloc[22] == pytest.approx(1.0)
    np.testing.assert_allclose(steps["log10_loss"], np.log10(run.steps["loss"]))
    assert "log10_loss" not in inst.frame("step", log=False)
    epochs = inst.frame("epoch")
    for col in ("epoch", "train_loss", "val_loss", "train_metric", "val_metric"):
        np.testing.assert_array_equal(epochs[col], run.metrics[col])
    # a loaded run gives the same curves
    again = Curves.from_run(session.load_run(run.id))
    np.testing.assert_array_equal(again.frame("step")["loss"], steps["loss"])
    np.testing.assert_array_equal(again.frame("epoch")["val_loss"], epochs["val_loss"])
    snap = inst.snapshot()
    assert snap["x"] == "epoch" and snap["log"] and snap["metric"] == "accuracy" and snap["run"] == run.id
    s = inst.summary()
    assert s["recipe"] == "P.1" and s["status"] == "pass" and s["gap"] == pytest.approx(
        run.metrics["train_metric"].iloc[-1] - run.metrics["val_metric"].iloc[-1])


def test_since_streams_only_new_points(session):
    inst = session.instrument("curves")[0].instrument
    session.fit(epochs=1, checkpoint=False)
    v = inst.version
    session.fit(epochs=1, checkpoint=False)  # a new run clears the buffer; versions keep growing
    new = inst.since(v)
    assert new and all(r["version"] > v for r in new) and len(new) == len(inst.records)
    assert inst.since(inst.version) == []


def subset(ds, n):
    return TensorPairDataset(ds.X[:n], ds.Y[:n], name=f"digits[:{n}]")


def test_tiny_batches_are_called_noisy(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.mlp, train, test, seed=0, root=tmp_path / "runs")
    inst = s.instrument("curves")[0].instrument
    s.fit(epochs=1, batch_size=64, checkpoint=False)
    assert "noisy" not in inst.summary()["verdict"]
    s.fit(epochs=1, batch_size=2, checkpoint=False)
    noisy = inst.summary()
    assert noisy["status"] == "warn" and "batch too small" in noisy["verdict"] and noisy["noise"] > 0.3


def test_overfitting_gap_is_called(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.mlp, subset(train, 40), test, seed=0, root=tmp_path / "runs", batch_size=8)
    s.instrument("curves")
    s.fit(epochs=15, lr=1e-2, checkpoint=False)
    s_ = s.instruments[0].summary()
    assert s_["status"] == "warn" and "overfitting" in s_["verdict"] and s_["gap"] > 0.1


def test_long_runs_are_thinned_not_cut(session):
    inst = Curves(max_points=10).attach(session).instrument
    run = session.fit(epochs=2, checkpoint=False)  # 46 steps
    steps = inst.frame("step")
    assert inst.stride == 8 and len(steps) <= 10
    assert steps["step"].tolist() == [8, 16, 24, 32, 40]  # evenly spread over the whole run
    np.testing.assert_array_equal(steps["loss"], run.steps["loss"].iloc[steps["step"] - 1])
    assert len(inst.frame("epoch")) == 2
