"""AuditReport: the issues table, summary, exclude list, JSON/CSV/HTML exports (recipe I.2)."""

import pandas as pd
import pytest

from workbench.data import ISSUE_TYPES, AuditReport
from workbench.errors import DataError


def test_issues_table_columns_and_scores(dirty):
    issues = dirty["report"].issues
    assert list(issues.columns) == ["split", "index", "issue", "score", "group", "detail"]
    assert issues["score"].between(0, 1).all()
    assert set(issues["issue"]) <= set(ISSUE_TYPES)
    assert (issues["detail"].str.len() > 0).all()


def test_summary_lists_every_issue_type_with_threshold_and_recipe(dirty):
    s = dirty["report"].summary
    assert list(s.index) == list(ISSUE_TYPES)
    assert {"count", "share", "threshold", "rule", "status", "recipe"} <= set(s.columns)
    assert (s["recipe"] == "I.2").all() and dirty["report"].recipe == "I.2"
    n = sum(dirty["report"].meta["splits"].values())
    assert s.loc["corrupt", "share"] == pytest.approx(s.loc["corrupt", "count"] / n)


def test_exclude_list_keeps_one_copy_and_spares_the_test_split(dirty):
    report = dirty["report"]
    ex = report.exclude_list()
    assert not ex.duplicated(["split", "index"]).any()
    exact = report.of("exact_duplicate")
    dropped = ex[ex["issue"].str.contains("exact_duplicate")]
    assert len(dropped) == exact["group"].nunique()  # one of each pair goes
    leak = ex[ex["issue"].str.contains("train_test_leak")]
    assert len(leak) and (leak["split"] == "train").all()
    assert set(report.exclude_indices("train")) >= set(report.of("corrupt")["index"])


def test_json_round_trip(dirty, tmp_path):
    report = dirty["report"]
    path = report.save(tmp_path / "audit.json")
    back = AuditReport.load(path)
    pd.testing.assert_frame_equal(back.issues, report.issues)
    assert back.summary["count"].tolist() == report.summary["count"].tolist()
    assert back.source == report.source and back.recipe == "I.2"
    assert back.label_model == report.label_model and back.label_model.name == "embedding k-NN"
    suggested = [r.exclude_list()["suggested_label"].notna().sum() for r in (back, report)]
    assert suggested[0] == suggested[1] > 0


def test_csv_and_html(dirty, tmp_path):
    report = dirty["report"]
    csv = pd.read_csv(report.save(tmp_path / "audit.csv"))
    assert len(csv) == len(report.issues) and (csv["recipe"] == "I.2").all()
    html = report.to_html()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert "http://" not in html and "https://" not in html  # self-contained
    for issue in ("exact_duplicate", "corrupt", "label_issue", "noise"):
        assert f"id='{issue}'" in html
    assert "Labels judged by: embedding k-NN, held-out accuracy 92.9%" in html
    assert (tmp_path / "a.html").exists() is False and report.save(tmp_path / "a.html").read_text() == html
    with pytest.raises(DataError, match=r"\.json, \.csv or \.html"):
        report.save(tmp_path / "audit.xlsx")


def test_repr_names_the_recipe_and_counts(dirty):
    text = repr(dirty["report"])
    assert "I.2" in text and "exact_duplicate" in text
