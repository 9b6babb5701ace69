"""init_loss (II.4, L.1): a correct model starts at log C; logits x50 are caught."""

from __future__ import annotations

import math

import pytest
import torch

import workbench as wb


def test_tiny_cnn_starts_at_log_c(make_session):
    r = make_session().check("init_loss")
    assert r.status == "pass" and r.recipe == "II.4"
    assert r.expected == pytest.approx(math.log(10))
    assert abs(r.measured["ratio"] - 1) < 0.1


def scaled_logits():
    model = wb.models.tiny_cnn()
    model.head.weight.data.mul_(50)  # the bug: over-confident initial scores
    model.head.bias.data.mul_(50)
    return model


def test_logits_times_50_fail(make_session):
    r = make_session(scaled_logits).check("init_loss")
    assert r.status == "fail"
    assert r.measured["ratio"] > 1.5 and "too large" in r.message


def test_regression_expects_the_target_variance(make_session, digits):
    tr, te = digits
    y_tr = tr.X.mean((1, 2, 3)) * 10  # a real-valued target derived from the image
    y_te = te.X.mean((1, 2, 3)) * 10
    mk = lambda num_classes=1: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    s = make_session(mk, train=(tr.X, y_tr), test=(te.X, y_te), task="regression")
    r = s.check("init_loss")
    assert r.expected == pytest.approx(float(y_tr.var(unbiased=False)), rel=1e-5)
    # targets around 3 with outputs near 0: the loss starts at var + mean^2, far above var
    assert r.status == "fail" and "bias" in r.message
    mu, sd = y_tr.mean(), y_tr.std()
    s2 = make_session(mk, train=(tr.X, (y_tr - mu) / sd), test=(te.X, (y_te - mu) / sd), task="regression")
    r2 = s2.check("init_loss")
    assert r2.status in ("pass", "warn") and abs(r2.measured["ratio"] - 1) < 0.5
