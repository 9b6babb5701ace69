"""Pure-noise images found by their lack of spatial correlation, and nothing else (recipe I.2)."""

import numpy as np
import torch
import torch.nn.functional as F

from tests.data.conftest import flagged_files
from workbench.data.noise import neighbour_correlation, noise_level


def test_noise_images_in_digits_found_and_only_them(dirty):
    """Uniform noise in place of 15 digits: all 15 found; stray dots on blank (low information) are not noise."""
    s = dirty["scores"].loc["noise"]
    assert s.recall == 1.0 and s.precision == 1.0, s
    rows = dirty["report"].of("noise")
    assert (rows["score"] >= dirty["report"].summary.loc["noise", "threshold"]).all()
    assert rows["detail"].str.contains("pure noise gives").all()


def test_clean_digits_and_shapes_have_no_noise(clean_report, shapes):
    assert clean_report.summary.loc["noise", "count"] == 0
    assert shapes["clean"].summary.loc["noise", "count"] == 0


def test_noise_in_a_folder_of_colour_shapes_found(shapes):
    assert flagged_files(shapes["dirty"], "noise") == shapes["truth"]["noise"]
    report = shapes["dirty"]
    dropped = report.exclude_list()
    files = report.meta["files"]["data"]
    assert shapes["truth"]["noise"] <= {files[i] for i in dropped["index"]}  # dropped by default


def test_noise_level_matches_resized_noise():
    """The level computed from the resize matrix against torch's resize of real noise (64 -> 16 pixels)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(400, 1, 64, 64, generator=g)
    t = F.interpolate(x, size=16, mode="bilinear", antialias=True, align_corners=False)[:, 0].numpy()
    measured = float(np.mean(neighbour_correlation(t)))
    assert abs(measured - noise_level((64, 64), 16)) < 0.03, (measured, noise_level((64, 64), 16))
    assert noise_level((8, 8), 16) == 0.0  # measured at the image's own size instead


def test_neighbour_correlation_of_a_smooth_picture_is_high():
    yy, xx = np.mgrid[0:16, 0:16]
    smooth = np.sin(xx / 3.0) + np.cos(yy / 4.0)
    rough = np.random.default_rng(0).random((16, 16))
    r = neighbour_correlation(np.stack([smooth, rough]).astype(np.float32))
    assert r[0] > 0.8 and abs(r[1]) < 0.2
