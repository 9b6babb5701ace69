"""The command line: help, runs listing, and the serve entry point's arguments."""

import subprocess
import sys

import workbench as wb
from workbench.cli import load_session, main


def test_help_lists_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("serve", "check", "audit", "runs"):
        assert cmd in out.stdout


def test_runs_lists_what_is_on_disk(session, capsys):
    run = session.fit(epochs=1)
    assert main(["runs", "--root", str(session.root)]) == 0
    out = capsys.readouterr().out
    assert run.id in out and "completed" in out
    # times a person reads: the start as local ISO time, never seconds since 1970 or NaN cells
    from datetime import datetime

    assert datetime.fromtimestamp(run.info["started"]).isoformat(sep=" ", timespec="seconds") in out
    assert "e+09" not in out and "NaN" not in out


def test_load_session_from_a_script(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text("import workbench as wb\n"
                      "train, test = wb.datasets.digits()\n"
                      f"session = wb.Session(wb.models.linear, train, test, root={str(tmp_path / 'r')!r})\n")
    s = load_session(str(script))
    assert isinstance(s, wb.Session) and s.model_name == "linear"
    demo = load_session(None, root=str(tmp_path / "demo"), defects=True)
    assert len(demo.train) == 1437 + 20 + 10
