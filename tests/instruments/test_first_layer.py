"""first_layer (P.4, III.R11): the grid against the weights tiled by hand; a layer that does not learn is flagged."""

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import ModelError
from workbench.instruments import FirstLayer
from workbench.instruments.first_layer import smoothness


def tile_by_hand(filters, nrow, pad=1):
    """Each (1, h, w) filter min-max scaled to [0, 1] and placed on a white grid, as make_grid should."""
    n, _, h, w = filters.shape
    rows = (n + nrow - 1) // nrow
    grid = np.ones((rows * (h + pad) + pad, nrow * (w + pad) + pad))
    for i, f in enumerate(filters[:, 0].double().cpu().numpy()):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = \
            (f - f.min()) / (f.max() - f.min())
    return (grid * 255).round()


def test_conv_grid_per_epoch(session):
    inst = session.instrument("first_layer")[0].instrument
    session.fit(epochs=2, lr=1e-2, checkpoint=False)
    recs = inst.since(0)
    assert [r["epoch"] for r in recs] == [0, 1, 2] and recs[0]["layer"] == "features.0"
    weight = session.model.features[0].weight.detach()  # 16 filters, 1 channel, 3x3
    img = inst.image()
    assert img.shape == (9, 33, 3) and img.dtype == np.uint8
    expected = tile_by_hand(weight, nrow=8)
    assert np.abs(img[..., 0].astype(float) - expected).max() <= 1
    assert (img[..., 0] == img[..., 1]).all()  # grey filters: the three channels agree
    # change from init by hand
    init = recs[0]
    assert init["change"] == 0.0
    first = session.new_model().features[0].weight.detach()
    assert recs[-1]["change"] == pytest.approx(float((weight - first).norm() / first.norm()), rel=1e-5)
    assert inst.summary()["status"] == "pass"
    assert inst.rgba().shape == (9, 33) and inst.rgba().dtype == np.uint32


def test_linear_first_layer_reshaped_to_the_image(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.linear, train, test, seed=0, root=tmp_path / "runs")
    inst = s.instrument("first_layer")[0].instrument
    s.fit(epochs=1, checkpoint=False)
    assert inst.since(0)[-1]["shape"] == (10, 1, 8, 8)
    weight = s.model[1].weight.detach().reshape(10, 1, 8, 8)
    assert np.abs(inst.image()[..., 0].astype(float) - tile_by_hand(weight, nrow=8)).max() <= 1


def test_filters_that_do_not_learn_are_flagged(session):
    session.instrument("first_layer")
    session.fit(epochs=1, lr=1e-7, checkpoint=False)
    s = session.instruments[0].summary()
    assert s["status"] == "warn" and "barely moved" in s["verdict"] and s["change"] < 0.05


def test_smoothness_tells_noise_from_smooth():
    torch.manual_seed(0)
    noise = torch.randn(64, 1, 8, 8)
    ramp = torch.linspace(0, 1, 8)
    smooth = (ramp[:, None] + ramp[None, :]).expand(64, 1, 8, 8) + 0.01 * noise
    assert abs(smoothness(noise)) < 0.1 and smoothness(smooth) > 0.7


def test_no_image_layer_is_a_clear_error():
    with pytest.raises(ModelError, match="first Conv2d"):
        FirstLayer.grid(torch.nn.Sequential(torch.nn.Linear(5, 3)), (1, 8, 8))
