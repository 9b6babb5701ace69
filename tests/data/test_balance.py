"""Class counts, rare classes and class-distribution shift between splits (recipe I.2)."""

import torch

from workbench.data import audit
from workbench.datasets import digits


def _drop(ds, cls, keep):
    """X, Y of ``ds`` with only ``keep`` examples of class ``cls``."""
    idx = torch.cat([torch.nonzero(ds.Y != cls).flatten(), torch.nonzero(ds.Y == cls).flatten()[:keep]])
    return ds.X[idx], ds.Y[idx]


def test_rare_class_flagged_with_counts():
    train, test = digits()
    report = audit({"train": _drop(train, 3, 10), "test": (test.X, test.Y)},
                   issues=("class_imbalance", "split_shift"))
    rows = report.of("class_imbalance")
    assert set(rows["split"]) == {"train"} and len(rows) == 10
    assert "class 3 has 10 examples in train" in rows["detail"].iloc[0]
    assert report.balance.loc[3, "train"] == 10
    assert report.meta["imbalance"]["train"]["rare_classes"] == [3]
    assert report.meta["imbalance"]["train"]["imbalance_ratio"] > 10


def test_split_shift_found_only_when_distributions_differ():
    train, test = digits()
    same = audit({"train": train, "test": test}, issues=("split_shift",))
    assert same.summary.loc["split_shift", "count"] == 0
    assert not same.meta["split_shift"]["test"]["shifted"]
    shifted = audit({"train": train, "test": _drop(test, 0, 0)}, issues=("split_shift",))
    rows = shifted.of("split_shift")
    assert (rows["index"] == -1).all() and (rows["split"] == "test").all()
    assert rows["detail"].str.startswith("class 0:").any()
    assert shifted.meta["split_shift"]["test"]["p_value"] < 1e-3


def test_clean_digits_are_balanced(clean_report):
    assert clean_report.summary.loc["class_imbalance", "count"] == 0
    assert clean_report.summary.loc["split_shift", "count"] == 0
    assert clean_report.balance.shape == (10, 2)
