"""Dark, bright and low-information images and outliers: property outliers with scores (recipe I.2)."""

import pytest


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
