"""The CIFAR-style tutorial loop with four added lines, run as a script; its run read back through the app's session."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "own_loop_cifar.py"


def test_the_script_adds_at_most_four_lines():
    added = [line for line in SCRIPT.read_text().splitlines() if line.rstrip().endswith("# workbench")]
    assert len(added) == 4
    assert sum("wb.watch(" in line for line in added) == 1 and sum("w.step(loss)" in line for line in added) == 1


@pytest.mark.slow
def test_script_run_read_back_through_the_app_session(tmp_path):
    env = {**os.environ, "WORKBENCH_ROOT": str(tmp_path / "runs"), "EPOCHS": "2", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("WORKBENCH_SERVE", None)
    out = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run_id = out.stdout.strip().splitlines()[-1].split()[-1]

    from workbench.cli import load_session  # what `workbench serve --root` builds for the app

    session = load_session(None, root=str(tmp_path / "runs"))
    table = session.runs().set_index("id")
    assert table.loc[run_id, "status"] == "completed" and table.loc[run_id, "epochs"] == 2
    run = session.run(run_id)
    assert run.config["source"] == "watch" and run.config["model"] == "Net" and run.config["optimizer"] == "sgd"
    steps, m = run.steps, run.metrics
    assert len(steps) == 2 * 63 and steps["epoch"].iloc[-1] == pytest.approx(2.0)
    assert steps["loss"].iloc[0] == pytest.approx(math.log(10), abs=0.1)  # L.1 on 10 classes
    assert (m["n_eval"] == 500).all() and m["val_metric"].iloc[-1] > 0.9  # whole test set, and it learned
    assert m["train_loss"].iloc[1] < m["train_loss"].iloc[0]
    verdicts = run.records("instrument").set_index("name")
    assert set(verdicts.index) == {"curves", "histograms", "update_ratio", "first_layer", "predictions", "grad_norms"}
    assert (verdicts["records"] > 0).all() and (verdicts["status"] != "empty").all()
    assert "LR" in verdicts.loc["update_ratio", "verdict"] and "no NaN/inf" in verdicts.loc["grad_norms", "verdict"]
    # the app's diagnosis reads the run from disk like any other (B.4)
    d = session.diagnose(run_id)
    assert d.run_id == run_id
    assert (tmp_path / "runs" / run_id / "steps.csv").exists()
