"""bias_init (II.5): the output bias starts at the target mean / log priors; apply_bias_init sets it."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def reg_model(num_classes=1):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 1))


def test_balanced_digits_pass(make_session):
    r = make_session().check("bias_init")
    assert r.status == "pass" and r.measured["imbalance"] < 1.5 and r.details["layer"] == "head"


def test_regression_targets_around_50_are_caught_and_fixed(make_session, digits):
    tr, te = digits
    y_tr, y_te = 50 + tr.X.mean((1, 2, 3)) * 10, 50 + te.X.mean((1, 2, 3)) * 10
    s = make_session(reg_model, train=(tr.X, y_tr), test=(te.X, y_te), task="regression")
    r = s.check("bias_init")
    assert r.status == "fail" and r.measured["target_mean"] == pytest.approx(float(y_tr.mean()), rel=1e-5)
    assert "apply_bias_init" in r.message
    done = s.apply_bias_init()
    assert done["layer"] == "3" and float(s.model[3].bias.detach()) == pytest.approx(float(y_tr.mean()), rel=1e-5)
    assert s.check("bias_init").status == "pass"
    fresh = s.new_model()  # every model the session builds from now on starts there too (fit runs, checks)
    assert float(fresh[3].bias.detach()) == pytest.approx(float(y_tr.mean()), rel=1e-5)
    assert s.fit(epochs=1).config["init_hooks"] == ["bias_init"]
    with torch.no_grad():  # the initialised model now starts near var(y) instead of var + 50^2
        assert float(s.data_loss(s.model(tr.X), y_tr)) < 3 * float(y_tr.var())


def test_imbalanced_classes_get_log_priors(make_session, digits):
    tr, te = digits
    keep = torch.cat([torch.nonzero(tr.Y == 0).flatten(), torch.nonzero(tr.Y != 0).flatten()[::8]])
    s = make_session(train=(tr.X[keep], tr.Y[keep]))
    r = s.check("bias_init")
    assert r.status == "warn" and r.measured["imbalance"] > 4
    assert r.measured["prior_bias_loss"] < r.measured["bias_only_loss"]
    s.apply_bias_init()
    prior = torch.bincount(tr.Y[keep], minlength=10).float()
    p = prior / prior.sum()
    assert torch.allclose(torch.softmax(s.model.head.bias.detach(), 0), p, atol=1e-3)
    assert s.check("bias_init").status == "pass"


def test_no_output_bias_is_a_skip_with_the_reason(make_session):
    # GPT-style heads have no bias: nothing to initialise, and nothing wrong
    mk = lambda num_classes=10: nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes, bias=False))
    r = make_session(mk).check("bias_init")
    assert r.status == "skip" and "no output bias" in r.message and "init_loss" in r.message
