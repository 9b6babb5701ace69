"""Dark, bright and low-information images and outliers: property outliers with scores (recipe I.2)."""

from types import SimpleNamespace

import numpy as np
import pytest

from tests.data.conftest import flagged_files
from workbench.data import outliers
from workbench.data.embed import neighbours
from workbench.data.findings import Findings


@pytest.mark.parametrize("issue", ["dark", "bright", "low_information"])
def test_property_outliers_found(dirty, issue):
    s = dirty["scores"].loc[issue]
    assert s.recall >= 0.9 and s.precision >= 0.9, s
    rows = dirty["report"].of(issue)
    thr = dirty["report"].summary.loc[issue, "threshold"]
    assert (rows["score"] >= thr).all() and (rows["score"] <= 1).all()


def test_outliers_found_and_none_on_clean_examples(dirty):
    """Noise images are all found; the other flags fall on injected near-empty images and damaged copies."""
    s = dirty["scores"].loc["outlier"]
    assert s.recall >= 0.9, s
    assert s.on_clean <= 0.05, s


def test_clean_digits_have_no_property_outliers(clean_report):
    s = clean_report.summary
    for issue in ("dark", "bright", "low_information", "outlier", "corrupt"):
        assert s.loc[issue, "share"] <= 0.005, (issue, s.loc[issue])


def test_outliers_are_measured_against_their_own_class():
    """A sparse class is not an outlier wholesale; a point far from its own class is, with the class named."""
    rng = np.random.default_rng(0)
    tight = rng.normal(0, 1, (300, 4))
    sparse = rng.normal(20, 3, (300, 4))          # three times as spread out
    far = np.full((1, 4), -15.0)                  # labelled with the tight class, far from it
    E = np.vstack([tight, sparse, far]).astype(np.float32)
    y = np.r_[np.zeros(300), np.ones(300), [0.0]]
    dist, _, _ = neighbours(E, 10)
    scan = SimpleNamespace(labels=y, where=lambda g: ("data", int(g)))
    out = Findings()
    outliers.find_outliers(scan, np.arange(len(E)), dist, 2.5, out)
    rows = out.frame()
    assert rows["index"][0] == 600 and rows["score"][0] > 0.8, rows  # the worst, by far
    assert not rows["index"].between(300, 599).any() and len(rows) <= 5, rows  # a Gaussian tail point or two
    assert "of class 0" in rows["detail"][0]
    everyone = Findings()  # the same data without labels: the dataset's typical value flags the sparse class
    outliers.find_outliers(SimpleNamespace(labels=None, where=scan.where), np.arange(len(E)), dist, 2.5, everyone)
    assert everyone.frame()["index"].between(300, 599).sum() >= 20  # 21 measured


def test_shapes_outliers_are_the_noise_images_only(shapes):
    """Small shapes are not outliers (the folder in the issue had 145 such flags); the noise images are."""
    assert shapes["clean"].summary.loc["outlier", "count"] == 0
    assert flagged_files(shapes["dirty"], "outlier") == shapes["truth"]["noise"]


def test_clean_shapes_have_no_property_flags_and_the_dark_one_is_found(shapes):
    """Small shapes on flat backgrounds have low histogram entropy by design (27 of 360 were flagged before
    the spread condition); the nearly black image among the defects is still found."""
    s = shapes["clean"].summary
    assert s.loc[["dark", "bright", "low_information"], "count"].sum() == 0, s
    assert shapes["clean"].issues.empty
    assert flagged_files(shapes["dirty"], "dark") == shapes["truth"]["dark"]
