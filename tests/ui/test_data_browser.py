"""DataBrowser (I.1-I.3) and the human-baseline mode (II.6), driven through params and callbacks."""

import numpy as np
import pandas as pd
import torch

from workbench.ui.data_browser import DataBrowser, class_counts
from workbench.ui.human import HumanBaseline


class FakeAudit:
    """An AuditReport-shaped record: the browser reads only ``.issues`` (split, index, issue, score, group, detail)."""

    def __init__(self, issues):
        self.issues = issues


def test_paging_and_class_filter(small_session):
    b = DataBrowser(small_session, page_size=40)
    assert len(b.items) == 256 and b.n_pages == 7
    assert len(b.page_items) == 40
    b.next_page()
    assert b.page == 1 and b.page_items["index"].iloc[0] == 40
    b.label = "3"
    assert b.page == 0
    y = small_session.labels("train")
    assert len(b.items) == int((y == 3).sum())
    assert set(b.items["label"]) == {"3"}


def test_class_counts_match_the_labels(small_session):
    counts = class_counts(small_session)
    y = small_session.labels("train").numpy()
    assert counts["train"].tolist() == np.bincount(y, minlength=10).tolist()
    assert counts["test"].sum() == len(small_session.test)


def test_resolution_slider_downsamples(small_session):
    b = DataBrowser(small_session, page_size=4)
    assert b.images(b.page_items).shape == (4, 8, 8, 1)
    b.resolution = 4
    imgs = b.images(b.page_items)
    assert imgs.shape == (4, 4, 4, 1)
    # area downsampling keeps the mean brightness
    x = small_session.train.X[:4]
    assert np.allclose(imgs.mean(axis=(1, 2, 3)), x.mean(dim=(1, 2, 3)).numpy(), atol=1e-5)


def test_issue_filter_sort_by_score_and_duplicate_sets_side_by_side(small_session):
    issues = pd.DataFrame([
        {"split": "train", "index": 5, "issue": "label_issue", "score": 0.2, "group": None, "detail": ""},
        {"split": "train", "index": 9, "issue": "label_issue", "score": 0.9, "group": None, "detail": ""},
        {"split": "train", "index": 1, "issue": "exact_duplicate", "score": 1.0, "group": 0, "detail": ""},
        {"split": "train", "index": 7, "issue": "exact_duplicate", "score": 1.0, "group": 0, "detail": ""},
        {"split": "train", "index": 2, "issue": "train_test_leak", "score": 1.0, "group": 1, "detail": ""},
        {"split": "test", "index": 3, "issue": "train_test_leak", "score": 1.0, "group": 1, "detail": ""},
    ])
    small_session.reports["audit"] = FakeAudit(issues)
    b = DataBrowser(small_session)
    assert b.param.issue.objects == ["all", "exact_duplicate", "label_issue", "train_test_leak"]
    b.issue = "label_issue"
    b.sort_by = "score"
    assert b.items["index"].tolist() == [9, 5]
    b.issue = "train_test_leak"  # a set spans splits: both members shown, side by side
    assert list(zip(b.items["split"], b.items["index"], strict=True)) == [("train", 2), ("test", 3)]
    xs, ys, cols, rows = b._positions(b.page_items)
    assert ys[0] == ys[1] and xs == [0, 1] and rows == 1
    b.issue = "all"
    b.sort_by = "score"
    assert b.items["index"].iloc[0] in (1, 2, 7)  # flagged examples first
    assert b.items["score"].iloc[0] == 1.0


def test_marks_exclude_relabel_and_export(small_session):
    b = DataBrowser(small_session, page_size=10)
    b.select([0, 2])
    b.mark_exclude()
    b.next_page()
    b.select([1])
    b.relabel_to = "7"
    b.mark_relabel()
    marks = b.export_marks()
    assert marks.to_dict("records") == [
        {"split": "train", "index": 0, "action": "exclude", "new_label": None},
        {"split": "train", "index": 2, "action": "exclude", "new_label": None},
        {"split": "train", "index": 11, "action": "relabel", "new_label": "7"},
    ]
    csv = b._export_bytes().getvalue().decode()
    assert csv.splitlines()[0] == "split,index,action,new_label" and len(csv.splitlines()) == 4


def test_human_baseline_is_kept_in_the_session(small_session):
    h = HumanBaseline(small_session, n=5)
    truth = [int(small_session.test.Y[i]) for i in h.indices]
    assert len(set(h.indices)) == 5
    for k, t in enumerate(truth):
        h.answer(str(t if k < 4 else (t + 1) % 10))  # four right, one wrong
    assert h.accuracy == 0.8
    assert small_session.human_baseline == 0.8
    assert small_session.reports["human_baseline"]["n"] == 5
    assert h.current is None
    h2 = HumanBaseline(small_session, n=5)
    assert h2.indices == h.indices  # seeded by the session's seed: the same sample on every visit


def test_images_are_what_the_split_holds(small_session):
    b = DataBrowser(small_session, page_size=4)
    imgs = b.images(b.page_items)
    assert np.allclose(imgs[..., 0], small_session.train.X[:4, 0].numpy())
    assert torch.is_tensor(small_session.train.X)


def test_audit_button_runs_in_a_worker_thread_and_shows_the_findings(small_session):
    import threading

    from workbench.ui.common import ERRORS

    browser = DataBrowser(small_session)
    started = threading.Event()
    release = threading.Event()
    real = small_session.audit

    def slow_audit(**options):
        started.set()
        release.wait(60)
        return real(**options)

    small_session.audit = slow_audit
    browser.run_audit(background=True)
    assert started.wait(30)
    # the page's thread is free while the audit runs; a second click does not start another
    assert browser.auditing and browser.run_audit(background=True) is None
    browser.flush()
    assert browser.auditing and browser.param.issue.objects == ["all"]
    release.set()
    browser.wait(300)
    assert not browser.auditing
    kinds = set(small_session.reports["audit"].issues["issue"].astype(str))
    assert set(browser.param.issue.objects) == {"all"} | kinds
    assert not ERRORS.messages


def test_a_failing_background_audit_is_reported_and_the_browser_keeps_working(small_session):
    from workbench.ui.common import ERRORS

    browser = DataBrowser(small_session)

    def broken(**options):
        raise ValueError("disk unreadable")

    small_session.audit = broken
    browser.run_audit(background=True)
    browser.wait(60)
    assert not browser.auditing and "audit" not in small_session.reports
    assert any("disk unreadable" in m for m in ERRORS.messages)
    browser.next_page()
    assert len(browser.page_items) > 0
