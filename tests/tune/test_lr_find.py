"""LR range test (recipe B.1): the curve, its smoothing, its stops, the suggestions and the coarse pick."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.errors import WorkbenchError
from workbench.tune.lr_find import coarse_test, lr_find, suggest, valley


def test_sweep_is_exponential_smoothed_and_leaves_no_trace(mlp_session):
    s = mlp_session
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    r = s.lr_find(start=1e-6, end=1.0, steps=60, coarse=None)
    # the global RNG is where it was: the next draw is the one it would have been
    assert torch.equal(torch.rand(3), expected_next)
    assert all(torch.equal(before[k], v) for k, v in s.model.state_dict().items())
    assert s.reports["lr_find"] is r and r.recipe == "B.1"

    c = r.curve
    assert list(c.columns) == ["step", "lr", "loss", "smoothed"]
    assert c["lr"].iloc[0] == pytest.approx(1e-6)
    ratios = c["lr"].to_numpy()[1:] / c["lr"].to_numpy()[:-1]
    assert np.allclose(ratios, (1.0 / 1e-6) ** (1 / 59))  # constant factor: exponential schedule
    # debiased EMA recomputed independently
    avg, sm = 0.0, []
    for i, v in enumerate(c["loss"]):
        avg = 0.98 * avg + 0.02 * v
        sm.append(avg / (1 - 0.98 ** (i + 1)))
    assert np.allclose(c["smoothed"], sm)
    assert c["smoothed"].iloc[0] == pytest.approx(c["loss"].iloc[0])
    assert c["loss"].iloc[0] == pytest.approx(math.log(10), abs=0.15)  # starts near log C (L.1)
    if r.stopped == "diverged":
        assert c["smoothed"].iloc[-1] > 4 * c["smoothed"].min()
        assert (c["smoothed"].iloc[:-1] <= 4 * c["smoothed"].cummin().iloc[:-1]).all()
    assert set(r.suggestions) >= {"steepest", "min_div_10", "valley", "middle"}
    assert r.suggestions["min_div_10"] == pytest.approx(c["lr"].iloc[int(c["smoothed"].argmin())] / 10)
    assert r.suggestion == pytest.approx(math.sqrt(r.suggestions["min_div_10"] * r.suggestions["valley"]))
    assert set(r.to_frame()["method"]) == set(r.suggestions)


@pytest.mark.parametrize("factory", [wb.models.mlp, wb.models.linear, wb.models.tiny_cnn])
def test_suggestion_within_10x_of_best_fixed_lr(digits, tmp_path, factory):
    """Acceptance: the finder's suggestion vs the best of a small sweep of fixed LRs (2 epochs each)."""
    train, test = digits
    s = wb.Session(factory, train, test, seed=0, root=tmp_path / "runs")
    r = s.lr_find(coarse=None)
    grid = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    acc = {lr: s.fit(epochs=2, lr=lr, checkpoint=False).metrics["val_metric"].iloc[-1] for lr in grid}
    best = max(acc, key=acc.get)
    assert 0.1 <= r.suggestion / best <= 10, (r.suggestions, acc)


def test_coarse_pick_is_largest_lr_whose_loss_falls(mlp_session):
    losses, summary = coarse_test(mlp_session, iters=30)
    assert list(summary["lr"]) == [1e-1, 1e-2, 1e-3, 1e-4]
    for row in summary.itertuples():
        mine = losses[losses["lr"] == row.lr]["loss"].to_numpy()
        assert len(mine) == 30
        assert row.start_loss == pytest.approx(mine[0])
        assert row.end_loss == pytest.approx(mine[-3:].mean())  # last 10% of the iterations
        assert row.falls == (row.end_loss / row.start_loss <= 0.9)
    # every LR starts from the same initialisation and batch: one initial loss
    assert summary["start_loss"].nunique() == 1
    by = summary.set_index("lr")
    assert by.loc[1e-2, "falls"] and not by.loc[1e-4, "falls"]

    r = lr_find(mlp_session, steps=30, coarse=(1e-2, 1e-4), coarse_iters=30)
    assert r.suggestions["coarse"] == 1e-2
    assert len(r.coarse_summary) == 2


def test_sweep_is_cut_at_the_first_nan(nan_session):
    r = nan_session.lr_find(start=1e-5, end=1e-3, steps=50, coarse=None)
    assert r.stopped == "nan"
    assert len(r.curve) == 19  # forward passes 1..19 are finite, the 20th is NaN
    assert np.isfinite(r.curve["loss"]).all()


def test_suggestions_on_a_known_curve():
    lr = 10 ** np.linspace(-6, 0, 61)
    x = np.log10(lr)
    loss = 2.3 - 2.0 / (1 + np.exp(-(x + 3) * 3))  # falls fastest at 1e-3 ...
    loss = loss + np.where(x > -1, (x + 1) * 20, 0)  # ... and blows up past 1e-1
    curve = pd.DataFrame({"lr": lr, "smoothed": loss})
    s = suggest(curve, skip_start=0)
    assert s["steepest"] == pytest.approx(1e-3, rel=0.3)
    assert s["min_div_10"] == pytest.approx(1e-2, rel=0.01)
    i_min = int(np.argmin(loss))
    assert lr[0] <= valley(lr, loss) <= lr[i_min]


@pytest.mark.parametrize("kwargs, words", [({"start": 1.0, "end": 0.1}, "start < end"),
                                           ({"steps": 3}, "at least 10 steps"),
                                           ({"method": "magic"}, "method must be"),
                                           ({"diverge": 0.5}, "diverge must be")])
def test_bad_options_name_the_problem(mlp_session, kwargs, words):
    with pytest.raises(WorkbenchError, match=words):
        lr_find(mlp_session, **kwargs)
