"""RunsView (B.2-B.6, III.M3, P.1): runs overlaid with TensorBoard's smoothing, a search as parallel coordinates."""

import numpy as np
import pytest

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.ui.common import ERRORS
from workbench.ui.runs_view import RunsView, smooth


def tensorboard_smoothing(values, weight):
    """TensorBoard's scalar smoothing, written out as its frontend does it (debiased EMA)."""
    out, last = [], 0.0
    for i, v in enumerate(values):
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** (i + 1)))
    return np.array(out)


def test_smoothing_is_tensorboards_debiased_ema():
    rng = np.random.default_rng(0)
    values = 2.0 * np.exp(-np.arange(50) / 10) + rng.normal(0, 0.1, 50)
    for w in (0.0, 0.6, 0.9, 0.99):
        assert np.allclose(smooth(values, w), tensorboard_smoothing(values, w), atol=1e-12)
    assert smooth(values, 0.9)[0] == pytest.approx(values[0])  # debiased: the start is not pulled to 0
    assert np.std(np.diff(smooth(values, 0.9))) < np.std(np.diff(values)) / 3
    with pytest.raises(WorkbenchError, match="smoothing"):
        smooth(values, 1.0)


def test_runs_overlay_draws_each_chosen_run(small_session):
    runs = [small_session.fit(epochs=3, lr=lr) for lr in (1e-3, 1e-2, 3e-2)]
    view = RunsView(small_session, smoothing=0.0)
    assert sorted(view.chosen) == sorted(r.id for r in runs)
    d = view.source.data
    by_id = {r.id: r for r in runs}
    assert d["run"] == view.chosen
    for rid, ys, xs in zip(d["run"], d["ys"], d["xs"], strict=True):
        assert ys == by_id[rid].metrics["val_metric"].tolist() and xs == [1.0, 2.0, 3.0]
    view.metric = "loss (steps)"
    assert [len(ys) for ys in view.source.data["ys"]] == [len(by_id[r].step_records) for r in view.chosen]
    view.smoothing = 0.9
    raw, sm = view.source.data["raw"][0], view.source.data["ys"][0]
    assert np.allclose(sm, tensorboard_smoothing(raw, 0.9))
    view.chosen = [runs[1].id]
    assert view.source.data["run"] == [runs[1].id]
    x = view.figs[False].x_range
    assert x.start <= min(view.source.data["raw_xs"][0]) and x.end >= max(view.source.data["raw_xs"][0])
    view.log_y = True
    assert view._curves.object is view.figs[True] and view.figs[True].y_range.start > 0


def test_search_trials_as_parallel_coordinates(make_small_session):
    session = make_small_session(wb.models.linear)
    session.fit(epochs=1, lr=1e-2)  # a run that is not a trial
    view = RunsView(session)
    view.choose_search_trials()
    assert any("no search yet" in m for m in ERRORS.messages)
    table = session.search(trials=3, epochs=1)
    view.choose_search_trials()
    assert sorted(view.chosen) == sorted(table["run_id"])
    done = table[table["state"].eq("COMPLETE")]
    pc = view.pc_source.data
    assert sorted(pc["trial"]) == sorted(done["trial"].tolist())
    assert view.pc_axes.data["label"][0] == "log lr" and view.pc_axes.data["label"][-1] == "objective"
    value_axis = [ys[-1] for ys in pc["ys"]]
    best = int(np.argmax(pc["value"]))
    assert value_axis[best] == pytest.approx(1.0 if len(set(pc["value"])) > 1 else 0.5)
    lr_axis = [ys[0] for ys in pc["ys"]]
    order = np.argsort(done.set_index("trial").loc[pc["trial"], "lr"].to_numpy())
    assert list(np.argsort(lr_axis)) == list(order)  # the lr axis keeps the trials' order (log scale)
