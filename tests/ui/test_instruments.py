"""Instrument views (P.3, P.4, P.5, II.11): they attach their instrument and stream its buffer on flush()."""

import numpy as np
import torch

import workbench as wb
from workbench.ui.instruments import FilterGrid, Histograms, InstrumentsView, UpdateRatio, WigglePlot


def test_views_fill_from_a_run_and_reset_on_the_next(small_session):
    s = small_session
    view = InstrumentsView(s, every=1)
    names = {i.name for i in s.instruments}
    assert {"first_layer", "predictions", "histograms", "update_ratio"} <= names
    s.fit(epochs=2, lr=1e-2)
    view.flush()
    fg = view.filters
    assert len(fg.records) == 3  # init + 2 epochs
    assert fg.index == 2 and "epoch **2**" in fg.caption.object
    fg.index = 0
    assert "epoch **0**" in fg.caption.object
    img = fg.records[0]["image"]
    assert fg.source.data["dw"] == [img.shape[1]]
    wp = view.wiggle
    p = wp.inst.p_true()
    ys = wp.source.data["ys"]
    assert len(ys) == p.shape[1] and len(ys[0]) == len(p)
    assert np.allclose(np.asarray(ys[3]) - 3, wp.BAND * p[:, 3])  # example 3 in its own band [3, 3.9]
    assert wp.fig.yaxis.major_label_overrides[3 + wp.BAND / 2].startswith("#3 · ")  # its label under the band
    assert wp.wiggle == wp.inst.wiggle(getattr(wp.inst, "window", None))
    # the wiggle is the mean absolute change of the true-class probability, computed independently here
    window = getattr(wp.inst, "window", None)
    q = p[-(window + 1):] if window else p
    assert abs(wp.wiggle - np.abs(np.diff(q, axis=0)).mean()) < 1e-9
    ur = view.update_ratio
    assert len(ur.source.data["step"]) == len(ur.inst.since(0))
    assert ur.names and all(len(ur.source.data[n]) == len(ur.source.data["step"]) for n in ur.names)
    assert "recipe P.5" in ur.verdict
    h = view.histograms
    assert h.layer is not None and len(h.source.data["image"]) == 1
    # a second run starts a new history
    s.fit(epochs=1, lr=1e-2)
    view.flush()
    assert len(fg.records) == 2
    assert len(wp.source.data["ys"][0]) == len(wp.inst.p_true())


def test_filter_grid_shows_noise_for_an_untrained_conv_and_structure_after_training(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path)
    fg = FilterGrid(s)
    s.fit(epochs=1, lr=1e-2)
    fg.flush()
    assert fg.records[0]["shape"][0] == 16  # one tile per first-layer filter
    assert fg.records[-1]["change"] > 0.05  # training moved the filters
    fg.follow = False
    fg.index = 0
    assert fg.records[0]["change"] == 0.0


def test_update_ratio_band_reacts_to_the_learning_rate(small_session):
    s = small_session
    ur = UpdateRatio(s, every=1)
    s.fit(epochs=1, lr=1.0, optimizer="sgd")
    ur.flush()
    assert ur.inst.summary()["status"] == "fail" and "too high" in ur.verdict
    s.fit(epochs=1, lr=1e-3)
    ur.flush()
    med = np.nanmedian(ur.source.data["median"])
    assert 1e-4 < med < 1e-1


def test_views_attach_once(small_session):
    WigglePlot(small_session)
    WigglePlot(small_session)
    Histograms(small_session)
    assert [i.name for i in small_session.instruments].count("predictions") == 1
    assert torch.is_tensor(small_session.train.X)
