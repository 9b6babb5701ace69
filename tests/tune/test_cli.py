"""``workbench tune lr-find | search | diagnose`` on the digits demo."""

import argparse

from workbench.tune.cli import add_arguments, main


def run(argv, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    code = main(parser.parse_args(argv))
    return code, capsys.readouterr().out


def test_tune_cli(tmp_path, capsys):
    root = str(tmp_path / "runs")
    code, out = run(["lr-find", "--root", root, "--steps", "20", "--no-coarse"], capsys)
    assert code == 0 and "suggested LR" in out and "valley" in out
    code, out = run(["search", "--root", root, "--trials", "2", "--epochs", "1", "--study", "cli"], capsys)
    assert code == 0 and "study cli" in out and out.count("COMPLETE") == 2
    code, out = run(["search", "--root", root, "--stage", "refine", "--study", "cli", "--top", "1",
                     "--epochs", "10"], capsys)
    assert code == 0 and "study cli-refine" in out and out.count("COMPLETE") == 1
    code, out = run(["diagnose", "--root", root], capsys)
    assert code == 0 and "refine0" in out  # the newest run
    code, out = run(["diagnose", "--root", str(tmp_path / "empty")], capsys)
    assert code == 2 and "no runs" in out
