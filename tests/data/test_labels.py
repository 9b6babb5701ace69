"""Likely label errors via cleanlab on out-of-sample probabilities (recipe I.2)."""

import numpy as np

from workbench.data import audit
from workbench.datasets import digits


def test_flipped_labels_found(dirty):
    """Measured on 5% flipped train labels: recall 0.93, precision 0.80."""
    s = dirty["scores"].loc["label_issue"]
    assert s.recall >= 0.85 and s.precision >= 0.7, s
    assert "k-nearest-neighbour" in dirty["report"].source
    assert "k-nearest-neighbour" in dirty["report"].meta["label_source"]


def test_suggested_labels_mostly_restore_the_truth(dirty):
    report = dirty["report"]
    _, Y = digits()[0].X, digits()[0].Y
    ex = report.exclude_list(issues=("label_issue",))
    hits = ex[ex["split"] == "train"]
    hits = hits[hits["index"] < len(Y)]
    flipped = hits[[("train", i) in dirty["truth"]["label_issue"] for i in hits["index"]]]
    restored = np.mean(flipped["suggested_label"].astype(int).values == Y.numpy()[flipped["index"].to_numpy()])
    assert restored >= 0.9
    assert (ex["action"] == "relabel").all()


def test_clean_digits_have_few_label_issues(clean_report):
    assert clean_report.summary.loc["label_issue", "share"] < 0.01


def test_given_pred_probs_are_used_and_named():
    train, test = digits()
    Y = train.Y.clone()
    Y[:20] = (Y[:20] + 1) % 10
    P = np.full((len(Y), 10), 0.01)
    P[np.arange(len(Y)), train.Y.numpy()] = 0.91  # a perfect model that knows the true labels
    report = audit((train.X, Y), issues=("label_issue",), pred_probs=P)
    assert report.source.startswith("out-of-sample probabilities given by the caller")
    assert set(report.of("label_issue")["index"]) == set(range(20))


def test_regression_targets_skip_label_issues():
    train, _ = digits()
    report = audit((train.X, train.Y.float() + 0.5), issues=("label_issue", "class_imbalance"))
    assert report.summary.loc["label_issue", "status"].startswith("skipped: regression")
    assert report.summary.loc["class_imbalance", "status"].startswith("skipped")
