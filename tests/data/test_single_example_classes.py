"""The audit on classes seen once (recipe I.2): label issues are skipped with the reason, never a crash."""

import torch

from workbench.data import audit
from workbench.datasets import digits


def _one_per_class(n_classes):
    train, _ = digits()
    first = [int(torch.nonzero(train.Y == c).flatten()[0]) for c in range(10)]
    X = train.X[first * (n_classes // 10 + 1)][:n_classes]
    return X + 0.01 * torch.arange(n_classes).view(-1, 1, 1, 1), torch.arange(n_classes)


def test_every_class_with_exactly_one_example_is_audited_to_the_end():
    X, Y = _one_per_class(40)
    report = audit((X, Y))
    assert report.summary.loc["label_issue", "count"] == 0
    assert report.summary.loc["label_issue", "status"] == "skipped: fewer than two classes have two or more examples"
    assert report.summary.loc["class_imbalance", "count"] == 0 and len(report.balance) == 40


def test_one_class_with_two_examples_among_singletons_is_still_skipped():
    X, Y = _one_per_class(12)
    Y[11] = 0  # class 0 twice, ten classes once
    report = audit((X, Y))
    assert "fewer than two classes" in report.summary.loc["label_issue", "status"]
