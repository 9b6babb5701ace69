"""One verdict type: checks, instrument summaries and diagnosis findings share a status vocabulary and a palette."""

import math

import numpy as np
import pytest

from workbench.checks.base import CheckResult
from workbench.instruments.curves import Curves
from workbench.tune.diagnose import Finding, diagnose
from workbench.ui.common import STATUS_COLORS, STATUS_ICONS
from workbench.verdict import COLORS, STATUSES, SYMBOLS, Verdict, status_of, worst


def test_one_vocabulary_strict_at_the_core_translated_at_the_edge():
    assert CheckResult is Verdict
    with pytest.raises(ValueError, match="status must be one of"):
        Verdict("x", "ok")
    assert [status_of(s) for s in ("ok", "empty", "info", "PASS", "fail")] == ["pass", "skip", "skip", "pass", "fail"]
    with pytest.raises(ValueError):
        status_of("green")
    assert worst(["pass", "warn", "skip"]) == "warn" and worst(["pass", "fail", "error"]) == "error"
    assert worst([]) is None


def test_the_views_draw_with_the_verdict_palette():
    for s in STATUSES:
        assert STATUS_COLORS[s] == COLORS[s] and STATUS_ICONS[s] == SYMBOLS[s]
    assert len(set(COLORS.values())) == len(STATUSES)  # five statuses, five colours


def test_a_real_check_is_a_verdict_that_survives_json(mlp_session):
    r = mlp_session.check("init_loss")
    assert isinstance(r, Verdict) and r.status == "pass" and r.recipe == "II.4"
    assert r.measured["loss"] == pytest.approx(math.log(10), rel=0.1)
    back = Verdict.from_dict(r.to_dict())
    assert back.name == r.name and back.status == r.status
    assert back.measured["loss"] == pytest.approx(r.measured["loss"])
    assert back.expected == pytest.approx(r.expected) and back.message == r.message


def test_instrument_summaries_speak_the_vocabulary(mlp_session):
    curves = Curves()
    assert curves.summary()["status"] == "skip"  # nothing measured: was "empty"
    mlp_session.instrument(["curves"])
    inst = mlp_session.instruments[0]
    mlp_session.fit(epochs=2, lr=1e-2)
    s = inst.summary()
    assert s["status"] in STATUSES and s["status"] == "pass", s
    v = inst.as_verdict()
    assert v.status == "pass" and v.recipe == "P.1" and v.measured["last_loss"] < v.measured["first_loss"]


def test_findings_are_verdicts_with_the_older_severity_readable(mlp_session):
    f = Finding("plateau", "warn", "the loss stopped falling", "decay the LR", "B.4", {"drop": 0.01})
    assert isinstance(f, Verdict) and f.status == "warn" and f.severity == "warn" and f.evidence == {"drop": 0.01}
    assert Finding("x", "error", "m").status == "fail" and Finding("x", "info", "m").status == "skip"
    back = Finding.from_dict(f.to_dict())
    assert back == f and back.advice == "decay the LR"

    bad = mlp_session.fit(epochs=1, lr=9.0, optimizer="sgd")  # diverges
    d = diagnose(mlp_session, bad)
    frame = d.to_frame()
    assert "status" in frame.columns and "severity" not in frame.columns
    assert set(frame["status"]) <= set(STATUSES) and d.findings[0].status == "fail", frame
    assert list(frame["status"]) == sorted(frame["status"], key=("error", "fail", "warn", "skip", "pass").index)
    assert not d.healthy and np.isfinite(d.stats["init_loss"])
