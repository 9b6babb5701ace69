"""The views on a folder of the user's own images with a truncated file, a duplicate pair and a leak (I.2, P.1)."""

import numpy as np
import pytest

from tests.ui.folders import folder_session
from workbench.ui.audit_view import run_audit
from workbench.ui.common import ERRORS
from workbench.ui.curves import LiveCurves, failure_reason
from workbench.ui.data_browser import DataBrowser


@pytest.fixture
def folder(tmp_path):
    return folder_session(tmp_path / "images", tmp_path / "runs")


def test_browser_shows_the_undecodable_image_as_a_crossed_tile(folder):
    session, paths = folder
    run_audit(session)
    b = DataBrowser(session)
    b.sync_audit()
    b.issue = "corrupt"
    assert len(b.items) == 1 and b.items["label"].tolist() == ["one"]
    imgs = b.images(b.page_items)
    assert list(b.unreadable) == [0] and "truncated.png" in b.unreadable[0]
    tile = imgs[0]
    assert tile.shape == (16, 16, 3)
    assert np.allclose(tile[0, 0], (0.78, 0.16, 0.16), atol=1e-6) and np.allclose(tile[0, 5], 0.85)
    assert "*Nothing" not in str(b._grid.objects[0].object) and b.source is not None  # drawn, not failed
    assert "unreadable" in b.source.data["label"][0]
    assert "**1** examples" in b._info.object and not ERRORS.messages


def test_browser_switches_filters_without_keeping_the_old_items(folder):
    session, _ = folder
    run_audit(session)
    b = DataBrowser(session)
    b.sync_audit()
    b.issue = "corrupt"
    b.issue = "exact_duplicate"
    assert sorted(b.source.data["label"][i].split(":")[1].split()[0] for i in range(2)) == ["two", "zero"]
    assert "**2** examples in **1** sets" in b._info.object
    b.issue = "train_test_leak"
    assert set(b.items["split"]) == {"train", "test"} and len(b.source.data["label"]) == 2


def test_a_failed_run_says_why_in_live_curves(folder):
    session, paths = folder
    view = LiveCurves(session, epochs=2, lr=1e-2)
    run = view.start()
    run.wait()
    view.flush()
    assert run.status == "failed"
    reason = failure_reason(run)
    assert "truncated.png" in reason and "cannot decode" in reason
    assert "truncated.png" in view.failure and "failed" in view.failure
    assert sum("truncated.png" in m for m in ERRORS.messages) == 1  # one notification, not one per flush
    view.flush()
    assert sum("truncated.png" in m for m in ERRORS.messages) == 1


def test_a_completed_run_has_no_failure_text(small_session):
    run = small_session.fit(epochs=1, lr=1e-2)
    view = LiveCurves(small_session)
    assert run.status == "completed" and failure_reason(run) == "" and view.failure == ""


def test_a_view_shown_in_two_steps_keeps_one_layout(small_session):
    view = LiveCurves(small_session)
    first = view.__panel__()
    assert view.__panel__() is first  # a second layout around the same figures breaks the served page
