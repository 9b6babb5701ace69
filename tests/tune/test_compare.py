"""One thing at a time (recipe III.M3): config diff, metric deltas, and the runs table's `changed` column."""

import math

import pandas as pd
import pytest

from workbench.errors import WorkbenchError
from workbench.tune.compare import annotate_runs, compare, config_diff


@pytest.fixture
def three_runs(mlp_session):
    s = mlp_session
    a = s.fit(epochs=1, lr=1e-3, checkpoint=False, batch_size=128)
    b = s.fit(epochs=1, lr=1e-2, checkpoint=False, batch_size=128)                      # parent a: lr
    c = s.fit(epochs=1, lr=3e-2, weight_decay=1e-4, checkpoint=False, batch_size=128)   # parent b: lr, wd
    return s, a, b, c


def test_compare_two_runs(three_runs):
    s, a, b, _ = three_runs
    cmp = s.compare(a, b.id)
    assert cmp.changed == ["lr"] and cmp.one_thing and cmp.recipe == "III.M3"
    row = cmp.config.iloc[0]
    assert (row["a"], row["b"]) == (1e-3, 1e-2)
    m = cmp.metrics.set_index("name")
    for k in ("train_loss", "val_loss", "train_metric", "val_metric"):
        assert m.loc[k, "a"] == a.metrics[k].iloc[-1] and m.loc[k, "b"] == b.metrics[k].iloc[-1]
        assert m.loc[k, "delta"] == pytest.approx(b.metrics[k].iloc[-1] - a.metrics[k].iloc[-1])
    assert m.loc["val_metric", "delta"] > 0  # 10x the LR helps a 1-epoch MLP
    assert "lr 0.001 -> 0.01" in cmp.message and "better" in cmp.message
    assert set(cmp.curves["run"]) == {"a", "b"} and s.reports["compare"] is cmp


def test_more_than_one_change_is_marked(three_runs):
    s, _, b, c = three_runs
    cmp = compare(s, b, c)
    assert cmp.changed == ["lr", "weight_decay"] and not cmp.one_thing
    assert "2 things changed" in cmp.message


def test_annotate_runs(three_runs):
    s, a, b, c = three_runs
    table = annotate_runs(s.runs(), s)
    by = table.set_index("id")
    assert pd.isna(by.loc[a.id, "changed"]) and by.loc[a.id, "one_thing"]
    assert by.loc[b.id, "changed"] == "lr" and by.loc[b.id, "one_thing"]
    assert by.loc[c.id, "changed"] == "lr, weight_decay" and not by.loc[c.id, "one_thing"]
    # without the store, the table's own config columns are compared
    light = annotate_runs(s.runs()).set_index("id")
    assert light.loc[c.id, "changed"] == "lr, weight_decay"
    assert annotate_runs(pd.DataFrame(columns=["id", "parent"])).columns[-1] == "one_thing"


def test_config_diff_flattens_and_ignores_bookkeeping():
    a = {"lr": 1e-3, "model_kwargs": {}, "name": "x", "parent": "p", "tags": {"trial": 1}, "seed": 0,
         "ema": None, "x": math.nan}
    b = {"lr": 1e-3, "model_kwargs": {"width": 32}, "name": "y", "parent": "q", "tags": {"trial": 2}, "seed": 1,
         "x": math.nan}
    d = config_diff(a, b)
    assert list(d["key"]) == ["model_kwargs.width", "seed"]
    assert d.set_index("key").loc["model_kwargs.width", "b"] == 32


def test_bad_input(mlp_session):
    with pytest.raises(WorkbenchError, match="expected a Run or a run id"):
        compare(mlp_session, 1, 2)
    with pytest.raises(WorkbenchError, match="runs DataFrame"):
        annotate_runs([1, 2])
