"""Exact duplicates, train/test leaks and near-duplicates found in digits with known copies (recipe I.2)."""

import numpy as np

from tests.data.conftest import flagged_files
from tests.data.dirty import NEAR_KINDS
from workbench.data import pixel_match


def test_exact_duplicates_all_found_as_sets(dirty):
    s = dirty["scores"].loc["exact_duplicate"]
    assert s.recall >= 0.9 and s.precision >= 0.9, s
    rows = dirty["report"].of("exact_duplicate")
    # every set holds an original and its copy: two members, one group id
    assert (rows.groupby("group").size() == 2).all()
    assert (rows["score"] == 1.0).all()
    assert rows["detail"].str.contains("identical pixels").all()


def test_train_test_leak_found_on_both_sides(dirty):
    s = dirty["scores"].loc["train_test_leak"]
    assert s.recall >= 0.9 and s.precision >= 0.9, s
    rows = dirty["report"].of("train_test_leak")
    assert set(rows["split"]) == {"train", "test"}
    assert (rows.groupby("group")["split"].nunique() == 2).all()


def test_near_duplicates_recall_and_precision(dirty):
    """Measured: recall 0.80, precision 1.00 (jpeg, 1-px shift, brightness, resize 100%; 2-px shift 0%).

    Before the pixel confirmation: recall 0.75, precision 0.85.
    """
    s = dirty["scores"].loc["near_duplicate"]
    assert s.recall >= 0.75 and s.precision >= 0.95, s
    got = set(map(tuple, dirty["report"].of("near_duplicate")[["split", "index"]].itertuples(index=False)))
    per_kind = {k: np.mean([key in got for key, v in dirty["kinds"].items() if v == k]) for k in NEAR_KINDS}
    assert per_kind["jpeg"] >= 0.9 and per_kind["shift1"] >= 0.9 and per_kind["brightness"] >= 0.9, per_kind
    assert per_kind["resize"] >= 0.9, per_kind


def test_near_duplicate_sets_never_repeat_exact_copies(dirty):
    report = dirty["report"]
    exact = set(map(tuple, report.of("exact_duplicate")[["split", "index"]].itertuples(index=False)))
    near = report.of("near_duplicate")
    # an exact set enters the near-duplicate search once, through its first member
    firsts = {min(g) for g in report.of("exact_duplicate").groupby("group")[["split", "index"]]
              .apply(lambda d: list(map(tuple, d.values))).tolist()}
    seconds = exact - firsts
    assert not seconds & set(map(tuple, near[["split", "index"]].itertuples(index=False)))
    assert near["score"].between(0.5, 1.0).all()


def test_clean_digits_have_few_duplicates(clean_report):
    """The bundled digits hold no exact copies; one pair of drawings agrees to 0.13 per pixel (0.11%)."""
    s = clean_report.summary
    assert s.loc["exact_duplicate", "count"] == 0
    assert s.loc["train_test_leak", "count"] == 0
    assert s.loc["near_duplicate", "share"] <= 0.002, s.loc["near_duplicate"]
    assert "candidate pairs rejected" in s.loc["near_duplicate", "rule"]


def test_near_duplicate_rows_give_score_and_reason(dirty):
    rows = dirty["report"].of("near_duplicate")
    assert rows["detail"].str.contains(r"pictures differ by at most 0\.\d\d per pixel").all()
    assert rows["detail"].str.contains("embedding distance").all()


def test_clean_shapes_have_no_near_duplicates(shapes):
    """Same shape, same place, other colours: distinct pictures (before the pixel check 315 of 360 were flagged)."""
    s = shapes["clean"].summary
    assert s.loc["near_duplicate", "share"] <= 0.002, s.loc["near_duplicate"]
    assert s.loc["exact_duplicate", "count"] == 0


def test_shapes_copies_found_and_nothing_else(shapes):
    report, truth = shapes["dirty"], shapes["truth"]
    assert flagged_files(report, "near_duplicate") == truth["near_duplicate"]
    assert flagged_files(report, "exact_duplicate") == truth["exact_duplicate"]
    dropped = report.exclude_list()
    assert len(dropped) <= 7, dropped  # before: 248


def test_pixel_check_tells_copies_from_recoloured_shapes():
    """The same square in another colour is rejected; brightened and JPEG re-encoded copies pass."""
    rng = np.random.default_rng(0)
    a = np.zeros((32, 32, 3), np.uint8)
    a[...] = (20, 40, 200)
    a[8:20, 10:22] = (230, 30, 30)
    recoloured = a.copy()
    recoloured[8:20, 10:22] = (30, 220, 30)
    brighter = np.clip(a.astype(int) + 25, 0, 255).astype(np.uint8)
    noisy = np.clip(a + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)  # JPEG-like small errors
    pics = {0: a, 1: recoloured, 2: brighter, 3: noisy, 4: None}
    diff, corr = pixel_match.largest_difference(pics, np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4]))
    assert diff[0] > 0.5 and diff[1] < 0.05 and diff[2] < 0.1 and np.isinf(diff[3])
    assert corr[1] > 0.99 and corr[2] > 0.99
