"""audit() and audit_session(): inputs, options, errors, progress and session events."""

import pandas as pd
import pytest
import torch

from workbench.data import audit, audit_session
from workbench.datasets import digits
from workbench.errors import DataError


@pytest.fixture(scope="module")
def small():
    train, test = digits()
    return train.X[:300], train.Y[:300], test


def test_inputs_tensor_pair_bare_tensor_and_dataset_agree(small):
    X, Y, _ = small
    a = audit((X, Y), issues=("exact_duplicate", "corrupt", "dark"))
    b = audit(X, Y, issues=("exact_duplicate", "corrupt", "dark"))
    pd.testing.assert_frame_equal(a.issues, b.issues)
    assert a.meta["splits"] == {"data": 300}


@pytest.mark.parametrize("bad, words", [
    ((torch.zeros(0, 1, 8, 8), torch.zeros(0)), "empty"),
    ((torch.zeros(5, 1, 8, 8), torch.zeros(4)), "5 examples but there are 4 labels"),
    (42, "expected a torch Dataset"),
    ("/no/such/folder", "does not exist"),
    ({}, "empty"),
])
def test_bad_input_names_the_problem(bad, words):
    with pytest.raises(DataError, match=words):
        audit(bad)


def test_unknown_options_and_issue_types_are_named(small):
    X, Y, _ = small
    with pytest.raises(TypeError, match="near_dup_ration"):
        audit((X, Y), near_dup_ration=0.2)
    with pytest.raises(DataError, match="duplicates"):
        audit((X, Y), issues=("duplicates",))


def test_progress_reaches_the_end(small):
    X, Y, _ = small
    calls = []
    audit((X, Y), progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls[-1][0] == calls[-1][1]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert {"read data", "embedding", "labels"} <= {c[2] for c in calls}


def test_only_requested_issue_types_run(small):
    X, Y, _ = small
    r = audit((X, Y), issues=("dark",))
    assert set(r.issues["issue"]) <= {"dark"}
    assert r.summary.loc["near_duplicate", "status"] == "not requested"


def test_vectors_skip_image_properties():
    X = torch.randn(200, 20)
    r = audit((X, torch.randint(0, 2, (200,))), issues=("dark", "outlier", "exact_duplicate"))
    assert r.summary.loc["dark", "status"].startswith("skipped: the inputs are not images")
    assert not r.meta["is_image"]


class StandIn:
    """The few Session attributes the audit reads, until the real Session lands."""

    def __init__(self, train, test, runs=0):
        self.train, self.test, self.val = train, test, None
        self.num_classes, self.task, self.seed = 10, "classification", 0
        self.events, self._runs = [], runs

    def emit(self, name, **payload):
        self.events.append((name, payload))

    def runs(self):
        return pd.DataFrame({"id": range(self._runs)})


def test_audit_session_emits_progress_and_done():
    train, test = digits()
    s = StandIn(train, test, runs=2)
    report = audit_session(s, splits=("train", "val", "test"))
    names = [e[0] for e in s.events]
    assert names[-1] == "audit_done" and s.events[-1][1]["report"] is report
    prog = [e[1] for e in s.events if e[0] == "audit_progress"]
    assert prog and {"done", "total", "stage"} <= set(prog[0]) and prog[-1]["done"] == prog[-1]["total"]
    assert report.meta["splits"] == {"train": len(train), "test": len(test)}
    assert "the session's 2 run(s) were not used (label_model='auto')" in report.source
    assert report.label_model.name == "embedding k-NN"
    with pytest.raises(DataError, match="unknown split 'valid'"):
        audit_session(s, splits=("valid",))


def test_real_session_if_present(tmp_path):
    wb = pytest.importorskip("workbench")
    if not hasattr(wb, "Session"):
        pytest.skip("the Session is not wired yet")
    s = wb.Session(wb.models.tiny_cnn, *wb.datasets.digits(), seed=0, root=tmp_path / "runs")
    report = audit_session(s, issues=("exact_duplicate", "class_imbalance"))
    assert report.meta["splits"]["train"] == len(s.train)
