"""Likely label errors via cleanlab on out-of-sample probabilities (recipe I.2)."""

import numpy as np
import pandas as pd
import torch

from workbench.data import audit, labels
from workbench.datasets import digits


def test_flipped_labels_found(dirty):
    """Measured on 5% flipped train labels: recall 0.94, precision 0.84 (the 5-fold k-d-tree k-NN: 0.93 / 0.80)."""
    s = dirty["scores"].loc["label_issue"]
    assert s.recall >= 0.9 and s.precision >= 0.8, s
    lm = dirty["report"].label_model
    assert lm.name == "embedding k-NN" and 0.9 <= lm.accuracy <= 0.95, lm  # measured 0.929
    assert "leave-one-out" in lm.evaluation and not lm.skipped
    assert dirty["report"].source.startswith("embedding k-NN, held-out accuracy 92.9%")
    assert dirty["report"].meta["label_model_accuracy"] == lm.accuracy


def test_neighbour_vote_matches_brute_force_leave_one_out():
    """The vote from the audit's neighbour lists against an independent brute-force computation."""
    rng = np.random.default_rng(0)
    E = rng.standard_normal((300, 5)).astype(np.float32)
    y = (E[:, 0] > 0).astype(int) + (E[:, 1] > 0.5)
    D = np.sqrt(((E[:, None] - E[None]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    ind = np.argsort(D, 1)[:, :7]
    dist = np.take_along_axis(D, ind, 1)
    P, acc = labels.neighbour_pred_probs(dist, ind, np.arange(300), y, 3, 300)
    expect = np.zeros((300, 3))
    for i in range(300):
        for j, d in zip(ind[i], dist[i], strict=True):
            expect[i, y[j]] += 1 / d
    expect /= expect.sum(1, keepdims=True)
    np.testing.assert_allclose(P, 0.999 * expect + 0.001 * np.bincount(y) / 300, rtol=1e-4)
    assert acc == np.mean(expect.argmax(1) == y)


def test_exact_copies_vote_but_never_the_example_itself():
    """Two exact copies (one node) labelled 0 and 1: each is judged by the other copy, not by its own label."""
    dist = np.array([[1.0], [1.0]], np.float32)
    ind = np.array([[1], [0]])
    node = np.array([0, 0, 1])      # examples 0 and 1 are copies (node 0); example 2 is node 1
    y = np.array([0, 1, 1])
    P, _ = labels.neighbour_pred_probs(dist, ind, node, y, 2, 2)
    assert P[0].argmax() == 1 and P[1].argmax() == 0  # the copy's label outweighs the neighbour's


def test_label_model_does_not_depend_on_anything_but_the_data(dirty):
    a = audit(dirty["data"], issues=("label_issue",))
    pd.testing.assert_frame_equal(a.issues, dirty["report"].of("label_issue"))
    assert a.label_model == dirty["report"].label_model


def test_every_class_seen_once_is_skipped_with_a_reason():
    train, _ = digits()
    report = audit((train.X[:10], torch.arange(10)))
    assert report.summary.loc["label_issue", "status"].startswith("skipped: fewer than 2 classes with 2 or more")
    assert report.label_model.accuracy is None and report.label_model.skipped
    assert report.source == report.label_model.skipped


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
    report = audit((train.X, Y), issues=("label_issue",), pred_probs=P, pred_probs_model="an oracle")
    assert report.label_model.name == "an oracle"
    assert report.label_model.accuracy == 1 - 20 / len(Y)
    assert report.source.startswith("an oracle, held-out accuracy")
    assert set(report.of("label_issue")["index"]) == set(range(20))


def test_regression_targets_skip_label_issues():
    train, _ = digits()
    report = audit((train.X, train.Y.float() + 0.5), issues=("label_issue", "class_imbalance"))
    assert report.summary.loc["label_issue", "status"].startswith("skipped: regression")
    assert report.summary.loc["class_imbalance", "status"].startswith("skipped")
