"""AuditView (I.2): the audit runs in a thread with progress; the browser then shows duplicate sets side by side."""

from workbench.demo import add_defects
from workbench.ui.audit_view import AuditView
from workbench.ui.data_browser import DataBrowser


def test_audit_of_the_defect_demo_flags_the_planted_duplicates(digits, tmp_path):
    import workbench as wb

    train, test = digits
    bad_train, test, truth = add_defects(train, test)
    s = wb.Session(wb.models.linear, bad_train, test, seed=0, root=tmp_path)
    view = AuditView(s)
    view.start()
    view.wait(300)
    rep = s.reports["audit"]
    dups = rep.issues[rep.issues["issue"] == "exact_duplicate"]
    assert set(truth["exact_duplicate"]) <= set(dups["index"])
    browser = DataBrowser(s)
    browser.sync_audit()
    assert "exact_duplicate" in browser.param.issue.objects
    browser.issue = "exact_duplicate"
    page = browser.page_items
    assert len(page) and page["group"].notna().all()
    xs, ys, cols, rows = browser._positions(page)
    # members of one set share a row: as many rows as sets on the page
    assert rows == page["group"].nunique()
    assert len({y for y, g in zip(ys, page["group"], strict=True) if g == page["group"].iloc[0]}) == 1
    assert "Not audited" not in view._summary[0].object
    # the model that judged the labels is named with its held-out accuracy (I.2)
    judge = view._summary[1].object
    assert judge.startswith("<b>Labels judged by:</b> ") and "held-out accuracy" in judge
    assert view.stage == ""  # no stage name left beside the button once the audit is done
