"""capacity (II.9): a wider tiny_cnn trains lower; a factory ignoring width= is caught; modules skip."""

from __future__ import annotations

import workbench as wb


def test_wider_tiny_cnn_trains_lower(make_session):
    r = make_session().check("capacity", widths=(4, 16), steps=60, examples=256)
    assert r.status == "pass" and r.recipe == "II.9"
    assert r.measured["train_loss_wide"] < r.measured["train_loss_narrow"]
    assert r.measured["params_wide"] > r.measured["params_narrow"]


def ignores_width(num_classes=10, width=16):
    return wb.models.mlp(num_classes=num_classes, width=32)  # the bug: width never reaches the layers


def test_factory_ignoring_width_fails(make_session):
    r = make_session(ignores_width).check("capacity", steps=5)
    assert r.status == "fail" and "ignores width" in r.message


def test_a_module_instead_of_a_factory_skips(make_session):
    r = make_session(wb.models.tiny_cnn()).check("capacity")
    assert r.status == "skip" and "width" in r.message
