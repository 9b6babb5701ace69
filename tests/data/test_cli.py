"""``workbench audit PATH [--json] [--out report.html]`` on image folders."""

import argparse
import io
import json

import numpy as np
from PIL import Image

from workbench.data import cli


def _run(argv, capsys):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    rc = cli.main(p.parse_args(argv))
    return rc, capsys.readouterr()


def _folder(root):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(6):
                Image.fromarray((rng.random((10, 10)) * 255).astype(np.uint8)).save(root / split / c / f"{i}.png")
    (root / "test" / "a" / "leak.png").write_bytes((root / "train" / "b" / "3.png").read_bytes())
    buf = io.BytesIO()
    Image.fromarray(np.zeros((10, 10), np.uint8) + 7).save(buf, "PNG")
    (root / "train" / "a" / "broken.png").write_bytes(buf.getvalue()[:30])
    return root


def test_cli_summary_html_and_json(tmp_path, capsys):
    root = _folder(tmp_path / "imgs")
    rc, out = _run([str(root), "--out", str(tmp_path / "r.html"), "--no-progress"], capsys)
    assert rc == 0
    assert "train_test_leak" in out.out and "leak.png" in out.out and "broken.png" in out.out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    rc, out = _run([str(root), "--json", "--issues", "corrupt", "train_test_leak"], capsys)
    d = json.loads(out.out)
    assert rc == 0 and d["recipe"] == "I.2"
    assert {i["issue"] for i in d["issues"]} == {"corrupt", "train_test_leak"}
    assert d["meta"]["splits"] == {"train": 13, "test": 13}


def test_cli_bad_path_exits_2(tmp_path, capsys):
    rc, out = _run([str(tmp_path / "missing")], capsys)
    assert rc == 2 and "does not exist" in out.err
