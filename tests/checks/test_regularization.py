"""regularization (L.2): the regularizer raises the loss, more strength raises it more; a wrong sign fails."""

from __future__ import annotations

import workbench as wb


def l2(model):
    return sum((p * p).sum() for p in model.parameters())


def wrong_sign(model):
    return -sum((p * p).sum() for p in model.parameters())  # the bug


def test_builtin_l2_passes(make_session):
    r = make_session().check("regularization")
    assert r.status == "pass" and r.recipe == "L.2"
    assert r.measured["reg_term"] > 0 and r.measured["reg_term_x10"] > r.measured["reg_term"]
    assert r.details["regularizer"] == "built-in L2" and "head.bias" in r.details["unregularized_tensors"]


def test_user_regularizer_passes(make_session):
    r = make_session(wb.models.mlp, regularizer=l2, reg_strength=1e-3).check("regularization")
    assert r.status == "pass" and r.measured["loss_with_reg"] > r.measured["data_loss"]
    assert r.measured["strength"] == 1e-3 and "0.bias" not in r.details["unregularized_tensors"]


def test_wrong_sign_fails(make_session):
    r = make_session(wb.models.mlp, regularizer=wrong_sign, reg_strength=1e-3).check("regularization")
    assert r.status == "fail" and "wrong sign" in r.message
    assert r.measured["loss_with_reg"] < r.measured["data_loss"]


def test_a_regularizer_that_misses_the_weights_fails(make_session):
    r = make_session(wb.models.mlp, regularizer=lambda m: m[1].bias.sum() * 0, reg_strength=1e-3).check(
        "regularization")
    assert r.status == "fail" and "adds nothing" in r.message
