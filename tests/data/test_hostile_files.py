"""Hostile files in image folders: each gives a finding or a clear error, within bounded memory (recipe I.1, I.2)."""

import io
import json
import os
import signal
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import workbench as wb
from workbench.data import audit
from workbench.data import cli as audit_cli

ROOT = Path(__file__).resolve().parents[2]


def _rgb(seed, shape=(16, 16)):
    return Image.fromarray((np.random.default_rng(seed).random((*shape, 3)) * 255).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    """Two classes of 8 random 16x16 RGB PNGs."""
    root = tmp_path / "data"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            _rgb(hash((c, i)) % 10_000).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def no_hang():
    """Fail (instead of hanging forever) when something blocks on a FIFO."""
    def boom(*_):
        raise TimeoutError("blocked for 20 s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _corrupt_rows(report):
    rows = report.of("corrupt")
    files = report.meta["files"].get("data", {})
    return {(files.get(i) if i >= 0 else None): d for i, d in zip(rows["index"], rows["detail"], strict=True)}


def test_16_bit_png_keeps_its_grays(folder):
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))   # black to white, left to right
    Image.fromarray(ramp).save(folder / "cat" / "deep.png")
    assert Image.open(folder / "cat" / "deep.png").mode.startswith("I")
    ds = wb.datasets.image_folder(folder, normalize=False)
    x = ds[[p for p, _ in ds.samples].index(str(folder / "cat" / "deep.png"))][0]
    assert x.shape == (3, 16, 16)
    assert float(x.mean()) == pytest.approx(0.5, abs=0.01)          # PIL's own convert: 0.99 (clipped white)
    assert float(x[0, 0, 0]) == 0.0 and float(x[0, 0, -1]) == 1.0
    report = audit(folder)
    assert "deep.png" not in " ".join(map(str, _corrupt_rows(report)))
    flagged = report.issues[report.issues["issue"].isin(["bright", "dark", "low_information"])]
    assert flagged.empty, flagged


def test_exif_orientation_is_applied(folder):
    stored = np.zeros((10, 20, 3), np.uint8)        # 20 wide, 10 high; red on the left half
    stored[:, :10, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                                # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(folder / "cat" / "photo.png", exif=exif)
    ds = wb.datasets.image_folder(folder, size=(20, 10), normalize=False)
    x = ds[[p for p, _ in ds.samples].index(str(folder / "cat" / "photo.png"))][0]
    upright = torch.from_numpy(np.rot90(stored, k=-1).copy()).permute(2, 0, 1).float() / 255
    assert upright.shape == (3, 20, 10)
    assert torch.allclose(x, upright, atol=0.02)     # red on top after the turn
    assert float(x[0, :10].mean()) > 0.95 and float(x[0, 10:].mean()) < 0.05


def test_symlink_loop_and_linked_file_are_listed_once(folder, no_hang):
    os.symlink("..", folder / "cat" / "loop")                        # cat/loop/dog/... would mislabel dog
    os.symlink(folder / "cat" / "0.png", folder / "dog" / "alias.png")  # a cat image again, as a dog
    ds = wb.datasets.image_folder(folder, size=8)
    assert len(ds) == 16 and ds.targets.count(0) == 8 and ds.targets.count(1) == 8
    why = dict(ds.skipped)
    assert "not followed" in why["cat/loop"]
    assert "same file as cat/0.png" in why["dog/alias.png"]
    report = audit(folder)
    assert report.meta["splits"]["data"] == 16
    details = " | ".join(report.of("corrupt")["detail"])
    assert "cat/loop" in details and "dog/alias.png" in details


def test_fifo_named_png_does_not_hang(folder, no_hang):
    os.mkfifo(folder / "dog" / "pipe.png")
    ds = wb.datasets.image_folder(folder, size=8)
    assert len(ds) == 16
    assert "FIFO" in dict(ds.skipped)["dog/pipe.png"]
    rows = audit(folder).of("corrupt")
    assert rows["index"].tolist() == [-1] and "dog/pipe.png: a FIFO" in rows["detail"].iloc[0]


def test_decompression_bomb_is_refused_by_name_in_bounded_memory(folder):
    Image.new("1", (12000, 12000)).save(folder / "dog" / "bomb.png")   # a few hundred KB, 144 M pixels
    assert (folder / "dog" / "bomb.png").stat().st_size < 2_000_000
    code = ("import json, resource, sys; from workbench.data import audit; r = audit(sys.argv[1]); "
            "print(json.dumps({'corrupt': r.of('corrupt')['detail'].tolist(), "
            "'peak_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(got["corrupt"]) == 1 and "dog/bomb.png" in got["corrupt"][0]
    assert "12000x12000 = 144 M pixels exceeds the cap" in got["corrupt"][0]
    assert got["peak_mib"] < 1536     # the libraries (torch alone is most of it); decoding the bomb took 7.8 GB
    with pytest.raises(wb.DataError, match=r"dog/bomb.png \(cannot be decoded .*exceeds the cap"):
        wb.datasets.image_folder(folder, size=8)


def test_mixed_sizes_are_named_when_the_folder_is_read(folder):
    _rgb(1, (24, 12)).save(folder / "dog" / "wide.png")
    with pytest.raises(wb.DataError, match=r"2 different sizes \(16x16: 16 .*12x24: 1 \(e.g. dog/wide.png\)\); "
                                           r"pass size="):
        wb.datasets.image_folder(folder)
    ds = wb.datasets.image_folder(folder, size=16)
    assert {tuple(ds[i][0].shape) for i in range(len(ds))} == {(3, 16, 16)}
    assert audit(folder).of("corrupt").empty   # the audit compares files of any size


def test_empty_class_folder_is_kept_and_reported(folder):
    (folder / "bird").mkdir()
    ds = wb.datasets.image_folder(folder, size=8)
    assert ds.classes == ["bird", "cat", "dog"] and sorted(set(ds.targets)) == [1, 2]
    assert "no examples" in dict(ds.skipped)["bird"]
    report = audit(folder)
    assert report.meta["splits"]["data"] == 16
    assert "bird: class folder holds no images" in " ".join(report.of("corrupt")["detail"])


def test_terminal_escape_codes_in_names_are_not_printed_raw(folder, capsys):
    (folder / "cat" / "evil\x1b[2J\x1b[31m.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code = audit_cli.main(Namespace(path=str(folder), json=False, out=None, issues=None, no_progress=True))
    out = capsys.readouterr().out
    assert code == 0 and "\x1b" not in out
    assert "evil\\x1b[2J\\x1b[31m.png" in out
    with pytest.raises(wb.DataError) as e:
        wb.datasets.image_folder(folder, size=8)
    assert "\x1b" not in str(e.value) and "evil\\x1b" in str(e.value)


def test_cmyk_palette_transparency_and_grayscale_mixed_with_rgb(folder):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(folder / "cat" / "cmyk.jpg", quality=95)   # red
    pal = Image.new("P", (16, 16), 1)
    pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)                          # index 0 black, 1 blue
    pal.paste(0, (0, 0, 16, 8))                                               # top half: index 0 ...
    pal.info["transparency"] = 0                                              # ... which is transparent
    pal.save(folder / "dog" / "palette.png", transparency=0)
    Image.fromarray(np.full((16, 16), 100, np.uint8)).save(folder / "dog" / "gray.png")
    ds = wb.datasets.image_folder(folder, normalize=False)
    get = {Path(p).name: ds[i][0] for i, (p, _) in enumerate(ds.samples)}
    assert all(x.shape == (3, 16, 16) for x in get.values())
    red = get["cmyk.jpg"].mean((1, 2))
    assert red[0] > 0.9 and red[1] < 0.1 and red[2] < 0.1
    top, bottom = get["palette.png"][:, :8].mean((1, 2)), get["palette.png"][:, 8:].mean((1, 2))
    assert torch.allclose(top, torch.ones(3)) and torch.allclose(bottom, torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(get["gray.png"], torch.full((3, 16, 16), 100 / 255))
    report = audit(folder)
    assert report.of("corrupt").empty and report.meta["splits"]["data"] == 19


def test_truncated_jpeg_found_by_the_reduced_decode(folder):
    buf = io.BytesIO()
    _rgb(5, (256, 256)).save(buf, "JPEG", quality=90)
    (folder / "cat" / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    named = _corrupt_rows(audit(folder))
    assert set(named) == {"cat/cut.jpg"} and "truncated" in named["cat/cut.jpg"]


def test_split_folders_share_one_class_list(tmp_path):
    for split, classes in (("train", ("ant", "bee", "cat")), ("test", ("bee", "cat"))):
        for k, c in enumerate(classes):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                _rgb(100 * k + i + (50 if split == "test" else 0)).save(tmp_path / split / c / f"{i}.png")
    (tmp_path / "test" / "cat" / "same.png").write_bytes((tmp_path / "train" / "cat" / "1.png").read_bytes())
    report = audit(tmp_path, issues=("train_test_leak", "corrupt"))
    leak = report.of("train_test_leak")
    assert sorted(report.meta["files"][s][i] for s, i in zip(leak["split"], leak["index"], strict=True)) == \
        ["cat/1.png", "cat/same.png"]
    assert report.balance.loc[2, "test"] == 4 and report.balance.loc[0, "test"] == 0   # cat is class 2 in both
    assert report.of("corrupt").empty
