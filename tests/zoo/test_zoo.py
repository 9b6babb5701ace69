"""The checks on models written the way their communities write them (recipe part II): every correct
model gets no fail and no error (``workbench check`` exits 0), every bug is caught by the check whose
recipe step it breaks, with a sentence naming what was measured."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.zoo.zoo import ALLOWED_WARN, ZOO, bug_cases, session
from workbench.checks import cli


def _check_cli(name, tmp_path, capsys):
    script = tmp_path / f"{name}.py"
    root = str(tmp_path / "runs")
    script.write_text(f"from tests.zoo.zoo import session as make\nsession = make({name!r}, {root!r})\n")
    code = cli.main(argparse.Namespace(script=str(script), json=True, only=None, root=None))
    return code, {v["name"]: v for v in json.loads(capsys.readouterr().out)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_correct_model_gets_no_fail_and_no_error(name, tmp_path, capsys):
    code, verdicts = _check_cli(name, tmp_path, capsys)
    bad = {k: (v["status"], v["message"]) for k, v in verdicts.items() if v["status"] in ("fail", "error")}
    assert code == 0 and not bad, bad
    warned = {k for k, v in verdicts.items() if v["status"] == "warn"}
    assert warned <= {c for (m, c) in ALLOWED_WARN if m == name}, {k: verdicts[k]["message"] for k in warned}
    ran = [v for v in verdicts.values() if v["status"] == "pass"]
    assert len(ran) >= 9, {k: v["status"] for k, v in verdicts.items()}
    for v in verdicts.values():  # a skip says why, never with a raw exception
        assert v["status"] != "skip" or len(v["message"]) > 30


@pytest.mark.parametrize("name,bug,check,word", bug_cases())
def test_bug_is_caught_by_its_check(name, bug, check, word, tmp_path):
    r = session(name, tmp_path / "runs", bug).check(check)
    assert r.status in ("fail", "warn"), (r.status, r.message)
    assert word.lower() in r.message.lower(), r.message


def test_every_model_has_three_bugs_or_more():
    assert len(ZOO) >= 9 and all(len(bugs) >= 3 for *_, bugs in ZOO.values())
    assert len(bug_cases()) >= 28
