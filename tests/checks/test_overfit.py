"""overfit_batch (II.8, L.3): a correct model memorises a batch; softmax before cross-entropy cannot."""

from __future__ import annotations

from torch import nn

import workbench as wb


def softmax_head(num_classes=10, in_channels=1, width=16):
    return nn.Sequential(wb.models.tiny_cnn(num_classes, in_channels, width), nn.Softmax(dim=1))  # the bug


def test_tiny_cnn_overfits_one_batch(make_session):
    r = make_session().check("overfit_batch", steps=300)
    assert r.status == "pass" and r.recipe == "II.8"
    assert r.measured["accuracy"] == 1.0 and r.measured["final_loss"] < 0.05
    assert 0 < r.measured["steps"] <= 300 and r.measured["examples"] == 64
    # the verdict was clear early (every example right, the loss down 4x since); the long budget agrees
    long = make_session().check("overfit_batch", steps=300, stop_early=False)
    assert long.status == "pass" and long.measured["final_loss"] < 0.02
    assert long.measured["steps"] >= r.measured["steps"]


def test_several_batches_option(make_session):
    r = make_session(wb.models.mlp).check("overfit_batch", batches=5, batch_size=32, steps=400)
    assert r.status == "pass" and r.measured["examples"] == 160


def test_softmax_before_cross_entropy_fails_with_the_reason(make_session):
    r = make_session(softmax_head).check("overfit_batch", steps=300)
    assert r.status == "fail"
    assert r.measured["final_loss"] > 1.3 and "softmax" in r.message
