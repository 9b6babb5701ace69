"""Curve diagnosis (recipe B.4): real runs for the acceptance, hand-made curves for each finder's threshold."""

import numpy as np
import pytest

from workbench.errors import WorkbenchError
from workbench.tune.diagnose import THRESHOLDS, diagnose


def make_run(session, losses, epochs=(), status="completed", batch_size=64):
    """A run in the store whose step losses and epoch rows are given: a curve with known numbers."""
    run = session.store.create({"batch_size": batch_size, "lr": 1e-3})
    for i, v in enumerate(losses):
        run.log({"kind": "step", "step": i + 1, "epoch": (i + 1) / 10, "data_loss": v, "reg_loss": 0.0, "loss": v})
    for e, (tl, tm, vl, vm) in enumerate(epochs):
        run.log({"kind": "epoch", "epoch": e + 1, "train_loss": tl, "train_metric": tm, "val_loss": vl,
                 "val_metric": vm})
    run.set_status(status)
    run.close()
    return run


# ------------------------------------------------------------------------------------------ acceptance
def test_quiet_on_a_healthy_run(mlp_session):
    run = mlp_session.fit(epochs=4, lr=1e-2, checkpoint=False)
    d = mlp_session.diagnose(run)
    assert run.metrics["val_metric"].iloc[-1] > 0.9
    assert d.findings == [] and d.healthy, d
    assert mlp_session.reports["diagnosis"] is d
    assert d.stats["noise"] < THRESHOLDS["noise"]


def test_flags_a_deliberately_overfit_run(small_session):
    run = small_session.fit(epochs=60, lr=1e-2, model_kwargs={"width": 256}, checkpoint=False)
    d = diagnose(small_session, run)
    f = d.get("overfit")
    assert f is not None and f.recipe == "B.4", d
    m = run.metrics
    assert f.evidence["gap"] == pytest.approx(m["train_metric"].iloc[-1] - m["val_metric"].iloc[-1])
    assert f.evidence["gap"] > 0.1 and f.evidence["train_metric"] == 1.0
    assert f.evidence["best_epoch"] == int(m["val_loss"].argmin()) + 1
    assert "weight decay" in f.advice and "early stopping" in f.advice


def test_flags_a_deliberately_too_high_lr(mlp_session):
    run = mlp_session.fit(epochs=3, lr=1.0, checkpoint=False)
    d = diagnose(mlp_session, run)
    f = d.get("no_progress")
    assert f is not None and f.severity == "error", d
    assert f.evidence["end_loss"] >= 0.9 * f.evidence["init_loss"]
    assert "underfit" not in d  # the LR is the cause; "a bigger model" would mislead
    assert not d.healthy


def test_flags_divergence_to_nan(nan_session):
    run = nan_session.fit(epochs=1, lr=1e-3, checkpoint=False)
    assert run.status == "diverged"
    f = diagnose(nan_session, run).get("divergence")
    assert f.severity == "error" and f.evidence["step"] == 20


# ------------------------------------------------------------------------------------------ each finder
def test_plateau_while_loss_is_high(mlp_session):
    flat = np.r_[np.linspace(2.3, 1.5, 40), np.full(80, 1.5)]
    f = diagnose(mlp_session, make_run(mlp_session, flat)).get("plateau_high")
    assert f is not None and f.evidence["relative_fall"] == pytest.approx(0.0, abs=1e-9)
    assert f.evidence["fraction_of_initial"] == pytest.approx(1.5 / 2.3)
    assert "decay" in f.advice
    low = np.r_[np.linspace(2.3, 0.1, 40), np.full(80, 0.1)]  # flat but low: converged, not a plateau
    assert "plateau_high" not in diagnose(mlp_session, make_run(mlp_session, low))
    # the threshold is an option
    assert "plateau_high" not in diagnose(mlp_session, make_run(mlp_session, flat), high_loss=0.7)


def test_sustained_jump_is_divergence_an_isolated_outlier_is_not(mlp_session):
    jump = np.r_[np.linspace(2.3, 0.5, 50), np.full(30, 3.0)]
    f = diagnose(mlp_session, make_run(mlp_session, jump)).get("divergence")
    assert f is not None and f.evidence["step"] == 51
    assert f.evidence["median_before"] == pytest.approx(np.median(jump[30:50]))  # the 20 steps before it
    assert f.evidence["ratio"] == pytest.approx(3.0 / np.median(jump[30:50]))
    blip = np.r_[np.linspace(2.3, 0.5, 50), [3.0], np.linspace(0.5, 0.4, 29)]
    assert "divergence" not in diagnose(mlp_session, make_run(mlp_session, blip))


def test_noisy_loss_means_batch_too_small(mlp_session):
    rng = np.random.default_rng(0)
    base = np.linspace(2.3, 0.3, 200)
    noisy = np.clip(base + rng.normal(0, 0.5, 200), 0.01, None)
    d = diagnose(mlp_session, make_run(mlp_session, noisy, batch_size=2))
    f = d.get("noisy_loss")
    assert f is not None and f.recipe == "P.1" and f.evidence["batch_size"] == 2
    assert 0.1 < f.evidence["noise"] < 0.3
    assert "noisy_loss" not in diagnose(mlp_session, make_run(mlp_session, base))


def test_underfit_and_overfit_from_the_epoch_table(mlp_session):
    losses = np.linspace(2.3, 1.0, 60)
    under = make_run(mlp_session, losses, [(1.2, 0.60, 1.25, 0.58), (1.0, 0.70, 1.02, 0.69)])
    d = diagnose(mlp_session, under)
    assert d.names == ["underfit"] and d.get("underfit").evidence["train_metric"] == 0.70
    mlp_session.human_baseline = 0.72  # "low" is relative to what a person reaches (II.6)
    assert "underfit" not in diagnose(mlp_session, under)
    mlp_session.human_baseline = None
    over = make_run(mlp_session, np.linspace(2.3, 0.05, 60),
                    [(0.5, 0.9, 0.6, 0.85), (0.1, 0.99, 0.7, 0.86), (0.02, 1.0, 0.9, 0.86)])
    f = diagnose(mlp_session, over).get("overfit")
    assert f.evidence["gap"] == pytest.approx(0.14) and f.evidence["val_loss_rise"] == pytest.approx(0.5)
    assert "overfit" not in diagnose(mlp_session, over, overfit_gap=0.2, val_rise=0.6)


class FakeInstrument:
    def __init__(self, name, summary):
        self.name, self._summary = name, summary

    def summary(self):
        if isinstance(self._summary, Exception):
            raise self._summary
        return self._summary


def test_instrument_verdicts_become_findings(mlp_session):
    run = make_run(mlp_session, np.linspace(2.3, 0.1, 60))
    mlp_session.instruments = [
        FakeInstrument("update_ratio", {"name": "update_ratio", "recipe": "P.5", "status": "fail",
                                        "verdict": "LR too high: median ratio 3e-2", "median": 0.03}),
        FakeInstrument("histograms", {"status": "ok", "verdict": "no dead or saturated layers"}),
        FakeInstrument("grad_norms", {"status": "empty", "verdict": "nothing measured yet"}),
        FakeInstrument("activations", {"verdict": "2 dead layers", "dead": 2}),
        FakeInstrument("curves", {"verdict": "healthy"}),
        FakeInstrument("broken", RuntimeError("boom"))]
    d = diagnose(mlp_session, run)
    f = d.get("update_ratio")
    assert f.recipe == "P.5" and f.severity == "error" and f.evidence == {"median": 0.03} and "LR" in f.advice
    assert d.get("activations").recipe == "P.3" and "initialisation" in d.get("activations").advice
    assert not {"histograms", "grad_norms", "curves"} & set(d.names)
    assert d.get("instrument:broken").severity == "info"
    frame = d.to_frame()
    assert list(frame.columns) == ["name", "status", "message", "advice", "recipe", "evidence"]
    assert list(frame["status"]) == ["fail", "warn", "skip"]  # sorted worst first (one verdict vocabulary)


def test_real_instruments_feed_the_diagnosis(mlp_session):
    """With the other half of issue 5 attached: a far too high LR trips the update-ratio band (P.5)."""
    pytest.importorskip("workbench.instruments.update_ratio")
    handles = mlp_session.instrument("update_ratio", every=1)
    run = mlp_session.fit(epochs=1, lr=1.0, checkpoint=False, batch_size=128)
    d = diagnose(mlp_session, run)
    for h in handles if isinstance(handles, list | tuple) else [handles]:
        h.remove()
    f = d.get("update_ratio")
    assert f is not None and f.recipe == "P.5" and "high" in f.message, d
    # the instrument watched that run only: an older healthy run gets no update-ratio finding from it
    older = make_run(mlp_session, np.linspace(2.3, 0.1, 60))
    mlp_session.instrument("update_ratio", every=1)
    mlp_session.fit(epochs=1, lr=1.0, checkpoint=False, batch_size=128)
    assert "update_ratio" not in diagnose(mlp_session, older)


def test_bad_input_names_the_problem(mlp_session):
    with pytest.raises(WorkbenchError, match="no run to diagnose"):
        diagnose(mlp_session)
    with pytest.raises(WorkbenchError, match="unknown threshold"):
        diagnose(mlp_session, make_run(mlp_session, [2.3, 2.2]), plateau=0.1)
    with pytest.raises(WorkbenchError, match="no logged steps"):
        diagnose(mlp_session, make_run(mlp_session, []))
