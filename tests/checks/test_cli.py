"""``workbench check``: a table on the digits demo or a user's script, --json, exit 1 on a failing check."""

from __future__ import annotations

import json

from workbench.cli import main

BROKEN = '''
import workbench as wb
train, test = wb.datasets.digits()

def overconfident(num_classes=10):
    m = wb.models.mlp(num_classes)
    m[-1].weight.data.mul_(50)   # logits x50 at init
    return m

session = wb.Session(overconfident, train, test, seed=0, root={root!r})
'''


def test_demo_prints_a_table_and_exits_0(tmp_path, capsys):
    code = main(["check", "--only", "init_loss,architecture,causality", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "init_loss" in out and "✔ pass" in out and "II.4" in out and "III.R7" in out
    assert "causality: applies to task sequence" in out  # non-pass verdicts get their sentence


def test_json_for_machines(tmp_path, capsys):
    code = main(["check", "--json", "--only", "init_loss", "--root", str(tmp_path)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data[0]["name"] == "init_loss" and data[0]["recipe"] == "II.4"
    assert abs(data[0]["measured"]["ratio"] - 1) < 0.1


def test_a_users_script_with_a_bug_exits_1(tmp_path, capsys):
    script = tmp_path / "train.py"
    script.write_text(BROKEN.format(root=str(tmp_path / "runs")))
    code = main(["check", str(script), "--only", "init_loss,regularization"])
    out = capsys.readouterr().out
    assert code == 1 and "✖ fail" in out and "overconfident" in out


def test_unknown_check_name_exits_2(tmp_path, capsys):
    code = main(["check", "--only", "init_los", "--root", str(tmp_path)])
    assert code == 2 and "no check named init_los" in capsys.readouterr().err
