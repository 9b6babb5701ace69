"""Corrupt inputs and labels: reported with a reason, never fatal (recipe I.2)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from workbench.data import audit
from workbench.datasets import digits


def test_injected_corruption_found(dirty):
    s = dirty["scores"].loc["corrupt"]
    assert s.recall >= 0.9 and s.precision >= 0.9, s
    details = " ".join(dirty["report"].of("corrupt")["detail"])
    for words in ("NaN or inf", "blank", "outside the"):
        assert words in details


def test_corrupt_examples_skip_the_other_finders(dirty):
    report = dirty["report"]
    bad = set(map(tuple, report.of("corrupt")[["split", "index"]].itertuples(index=False)))
    others = report.issues[~report.issues["issue"].isin(["corrupt", "label_issue", "class_imbalance"])]
    assert not bad & set(map(tuple, others[["split", "index"]].itertuples(index=False)))


class Ragged(Dataset):
    """Digits as a plain Dataset with a wrong-sized image, a 3-channel one and one that raises."""

    def __init__(self):
        self.X, self.Y = digits()[0].X[:200], digits()[0].Y[:200]

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        if i == 5:
            return torch.zeros(1, 9, 9) + 0.5, int(self.Y[i])
        if i == 6:
            return self.X[i].expand(3, 8, 8), int(self.Y[i])
        if i == 7:
            raise OSError("disk on fire")
        return self.X[i], int(self.Y[i])


def test_plain_dataset_with_odd_shapes_and_a_failing_example():
    report = audit(Ragged(), issues=("corrupt",))
    rows = report.of("corrupt").set_index("index")
    assert set(rows.index) == {5, 6, 7}
    assert "shape (1, 9, 9)" in rows.loc[5, "detail"] and "(3, 8, 8)" in rows.loc[6, "detail"]
    assert "disk on fire" in rows.loc[7, "detail"]


def test_bad_labels_are_corrupt():
    train, _ = digits()
    Y = train.Y.clone().float()
    Y[0], Y[1], Y[2], Y[3] = -1, 2.5, float("nan"), 12
    report = audit((train.X, Y), issues=("corrupt",), num_classes=10)
    details = report.of("corrupt").set_index("index")["detail"]
    assert set(details.index) == {0, 1, 2, 3}
    assert "negative" in details[0] and "whole number" in details[1] and "missing" in details[2]
    assert "10 classes" in details[3]


def _png_bytes(seed):
    a = (np.random.default_rng(seed).random((12, 12, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def broken_folder(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(8):
            (tmp_path / c / f"{i}.png").write_bytes(_png_bytes(hash((c, i)) % 1000))
    (tmp_path / "cat" / "truncated.png").write_bytes(_png_bytes(99)[:80])
    (tmp_path / "cat" / "empty.png").write_bytes(b"")
    (tmp_path / "dog" / "notes.png").write_text("this is text, not a picture")
    return tmp_path


def test_image_folder_with_broken_files_completes(broken_folder):
    report = audit(broken_folder)
    corrupt = report.of("corrupt")
    files = report.meta["files"]["data"]
    named = {files[i]: d for i, d in zip(corrupt["index"], corrupt["detail"], strict=True)}
    assert set(named) == {"cat/truncated.png", "cat/empty.png", "dog/notes.png"}
    assert "0 bytes" in named["cat/empty.png"]
    assert "truncated" in named["cat/truncated.png"].lower() or "decoded" in named["cat/truncated.png"]
    assert report.meta["splits"]["data"] == 19
    assert report.summary.loc["corrupt", "count"] == 3
