"""The check runner: registry, verdict storage, events, state restore, errors as verdicts."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.checks import REGISTRY, names, options, run_check, run_checks, table
from workbench.checks.base import CheckResult, jsonable
from workbench.errors import WorkbenchError

API_NAMES = {"init_loss", "bias_init", "input_independent", "overfit_batch", "generalization", "capacity",
             "batch_dependency", "causality", "gradient_check", "regularization", "determinism", "architecture",
             "data_pipeline", "gradient_flow"}


def test_every_check_of_the_issue_is_registered_with_a_recipe_step():
    assert set(names()) == API_NAMES
    for spec in REGISTRY.values():
        assert spec.recipe and spec.doc
        assert all(v is not inspect_empty() for v in spec.options.values())  # every option has a default


def inspect_empty():
    import inspect

    return inspect.Parameter.empty


def test_result_is_json_safe_and_readable():
    r = CheckResult("x", "warn", {"loss": float("nan"), "t": torch.tensor([1.0, 2.0])}, 2.3, "do this", "II.4",
                    {"a": (1, 2)})
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["measured"] == {"loss": "nan", "t": [1.0, 2.0]} and d["details"] == {"a": [1, 2]}
    assert "warn" in repr(r) and "II.4" in repr(r) and "do this" in r._repr_html_()
    with pytest.raises(ValueError):
        CheckResult("x", "maybe")
    assert jsonable({1: float("inf")}) == {"1": "inf"}


def test_run_check_stores_emits_and_restores_state(make_session):
    s = make_session()
    seen = []
    s.on("check_done", lambda ev: seen.append(ev.result))
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    s.model.eval()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    res = s.check("overfit_batch", steps=30)
    assert s.results["overfit_batch"] is res and seen == [res]
    after = s.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not s.model.training
    assert torch.equal(torch.get_rng_state(), rng)
    assert res.seconds is not None and res.seconds > 0


def test_wrong_name_or_option_is_the_callers_error(make_session):
    s = make_session()
    with pytest.raises(WorkbenchError, match="no check named 'init_los'"):
        s.check("init_los")
    with pytest.raises(WorkbenchError, match="has no option 'stepz'"):
        s.check("overfit_batch", stepz=3)
    with pytest.raises(WorkbenchError, match="do not run"):
        run_checks(s, names=["init_loss"], overfit_batch={"steps": 3})
    assert options("overfit_batch")["steps"] == 1000


class Explodes(nn.Module):
    """Fine on the session's probe (2 examples), raises on anything bigger."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)

    def forward(self, x):
        if len(x) > 2:
            raise RuntimeError("boom")
        return self.lin(x.flatten(1))


def test_a_model_that_raises_gives_an_error_verdict_not_an_exception(make_session):
    s = make_session(Explodes)
    res = run_check(s, "init_loss")
    assert res.status == "error" and res.recipe == "II.4"
    # the sentence says what to pass; the raw exception stays in the details
    assert "boom" not in res.message and "forward_kwargs" in res.message
    assert res.details["exception"] == "RuntimeError: boom" and "boom" in res.details["traceback"]


def test_run_checks_runs_all_that_apply_and_tabulates(make_session):
    s = make_session(wb.models.linear)
    cheap = ["architecture", "init_loss", "causality", "capacity", "regularization"]
    res = run_checks(s, names=cheap)
    status = {r.name: r.status for r in res}
    assert status["causality"] == "skip"  # classification, not sequence
    assert status["init_loss"] == "pass" and status["architecture"] == "pass"
    assert list(table(res)["name"]) == cheap


def test_session_checks_all_pass_on_a_correct_tiny_cnn(make_session):
    s = make_session()
    res = s.checks(overfit_batch={"steps": 300}, input_independent={"steps": 60}, generalization={"steps": 80},
                   capacity={"widths": (4, 16), "steps": 60}, gradient_check={"coords": 3},
                   determinism={"steps": 3})
    status = {r.name: r.status for r in res}
    assert status.pop("causality") == "skip"
    assert set(status.values()) == {"pass"}, {r.name: r.message for r in res if r.status != "pass"}
    assert set(s.results) == API_NAMES and s.runs().empty  # checks leave no runs on disk
