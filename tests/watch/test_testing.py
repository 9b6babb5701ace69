"""The recipe in a project's own tests: assert_checks fails with the verdict's sentence; ``workbench check --junit``."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import workbench as wb
from workbench.cli import main
from workbench.testing import assert_check, assert_checks

ROOT = Path(__file__).resolve().parents[2]


def overconfident(num_classes=10):
    m = wb.models.tiny_cnn(num_classes)
    m.head.weight.data.mul_(50)  # the bug: logits x50 at initialisation
    m.head.bias.data.mul_(50)
    return m


@pytest.fixture
def make(digits, tmp_path):
    return lambda model=wb.models.tiny_cnn: wb.Session(model, *digits, seed=0, root=tmp_path / "runs")


def test_a_correct_model_passes(make):
    results = assert_checks(make(), ["init_loss", "architecture"])
    assert [r.status for r in results] == ["pass", "pass"]
    assert results[0].measured["ratio"] == pytest.approx(1.0, abs=0.1)


def test_a_broken_model_fails_with_the_verdicts_sentence(make):
    s = make(overconfident)
    with pytest.raises(AssertionError) as info:
        assert_checks(s, ["init_loss", "architecture"])
    verdict = s.results["init_loss"]
    assert verdict.status == "fail"
    text = str(info.value)
    assert "1 of 2 recipe check(s) did not pass" in text
    assert f"init_loss [recipe II.4] fail: {verdict.message}" in text and "architecture" not in text
    assert f"ratio={wb.checks.base.fmt(verdict.measured['ratio'])}" in text


def test_strict_fails_on_warn_and_options_reach_the_check(make):
    s = make(overconfident)
    with pytest.raises(AssertionError, match="init_loss"):
        assert_check(s, "init_loss", warn_tol=0.1, fail_tol=1000.0, strict=True)  # a warn under strict
    assert s.results["init_loss"].status == "warn"
    assert assert_check(s, "init_loss", warn_tol=1000.0, fail_tol=2000.0).status == "pass"
    with pytest.raises(wb.WorkbenchError, match="no check named"):
        assert_checks(s, ["init_los"])


def test_in_a_projects_pytest_run_the_failure_shows_the_sentence(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["workbench.testing"]\n')
    (tmp_path / "test_model.py").write_text('''
import workbench as wb
from tests_helpers import overconfident

def test_recipe(recipe_checks, tmp_path):
    session = wb.Session(overconfident, *wb.datasets.digits(), seed=0, root=tmp_path)
    recipe_checks(session, ["init_loss"])
''')
    (tmp_path / "tests_helpers.py").write_text(Path(__file__).read_text().split("@pytest.fixture")[0])
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": f"{ROOT}:{tmp_path}", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 1, out.stdout[-2000:]
    assert "init_loss [recipe II.4] fail: initial loss" in out.stdout and "too large" in out.stdout
    assert "1 failed" in out.stdout


BROKEN = '''
import workbench as wb
from tests_helpers import overconfident
session = wb.Session(overconfident, *wb.datasets.digits(), seed=0, root={root!r})
'''


def test_junit_report_for_ci(tmp_path, capsys):
    (tmp_path / "tests_helpers.py").write_text(Path(__file__).read_text().split("@pytest.fixture")[0])
    script = tmp_path / "train.py"
    script.write_text(BROKEN.format(root=str(tmp_path / "runs")))
    sys.path.insert(0, str(tmp_path))
    try:
        code = main(["check", str(script), "--only", "init_loss,architecture,causality",
                     "--junit", str(tmp_path / "out" / "report.xml")])
    finally:
        sys.path.remove(str(tmp_path))
    assert code == 1
    suite = ET.parse(tmp_path / "out" / "report.xml").getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("skipped") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["init_loss"].get("classname") == "recipe.II.4"
    failure = cases["init_loss"].find("failure")
    assert "too large" in failure.get("message") and "ratio=11.9" in failure.text
    assert cases["causality"].find("skipped") is not None and cases["architecture"].find("failure") is None
