"""data_pipeline (II.10): the batch at model(x) is checked; raw 0-255 pixels and NaN are caught."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


def test_digits_batch_is_sane_and_feeds_the_batch_view(make_session):
    r = make_session().check("data_pipeline")
    assert r.status == "pass" and r.recipe == "II.10"
    assert r.measured["shape"] == [1, 8, 8] and r.measured["examples"] == 128
    assert 0 <= r.measured["min"] and r.measured["max"] <= 1 and r.measured["non_finite"] == 0
    assert len(r.details["preview"]) == 16 and len(r.details["channel_stats"]["mean"]) == 1
    assert sum(r.details["label_counts"]) == 128


def test_raw_pixel_values_warn(make_session, digits):
    tr, te = digits
    r = make_session(train=(tr.X * 255, tr.Y)).check("data_pipeline")
    assert r.status == "warn" and "0-255" in r.message and r.measured["max"] > 200


class SomeNaN(Dataset):
    """Example 0 is fine (so the Session accepts it); every 7th example carries a NaN."""

    def __init__(self, X, Y):
        self.X, self.Y = X, Y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        x = self.X[i].clone()
        if i % 7 == 3:
            x[0, 0, 0] = float("nan")
        return x, self.Y[i]


def test_nan_reaching_the_model_fails(make_session, digits):
    tr, te = digits
    r = make_session(train=SomeNaN(tr.X, tr.Y)).check("data_pipeline")
    assert r.status == "fail" and "NaN" in r.message and r.measured["non_finite"] > 0


def test_constant_inputs_fail(make_session, digits):
    tr, te = digits
    r = make_session(train=(torch.zeros_like(tr.X), tr.Y)).check("data_pipeline")
    assert r.status == "fail" and "constant" in r.message
