"""Embedded digits, image folders with recorded preprocessing, labels and de-normalisation."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import workbench as wb


def test_digits_is_a_fixed_stratified_split():
    train, test = wb.datasets.digits()
    assert (len(train), len(test)) == (1437, 360)
    assert train.X.shape[1:] == (1, 8, 8) and train.X.dtype == torch.float32
    assert float(train.X.min()) == 0.0 and float(train.X.max()) == 1.0
    counts = torch.bincount(test.Y, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified
    again, _ = wb.datasets.digits()
    assert torch.equal(again.X, train.X)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for c, shade in (("cat", 40), ("dog", 200)):
        (tmp_path / c).mkdir()
        for i in range(6):
            arr = np.clip(rng.normal(shade, 10, (12, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(tmp_path / c / f"{i}.png")
    return tmp_path


def test_image_folder_records_preprocessing_and_denormalizes(folder):
    ds = wb.datasets.image_folder(folder, size=8, normalize=True)
    x, y = ds[0]
    assert x.shape == (3, 8, 8) and ds.classes == ["cat", "dog"]
    prep = ds.preprocessing
    assert prep.mean is not None and len(prep.mean) == 3
    assert any("normalize" in s for s in prep.steps) and any("resize" in s for s in prep.steps)
    raw = prep.denormalize(x)
    assert 0.0 <= float(raw.min()) and float(raw.max()) <= 1.0
    assert float(raw.mean()) == pytest.approx(40 / 255, abs=0.05)
    allx = torch.stack([ds[i][0] for i in range(len(ds))])
    assert allx.mean(dim=(0, 2, 3)).abs().max() < 0.05  # normalised to mean 0


def test_image_folder_session_trains(folder, tmp_path):
    ds = wb.datasets.image_folder(folder, size=8)
    s = wb.Session(wb.models.tiny_cnn, ds, ds, root=tmp_path / "runs")
    assert s.num_classes == 2 and s.input_shape == (3, 8, 8)
    run = s.fit(epochs=2, lr=1e-2)
    assert run.metrics.n_eval.tolist() == [12, 12]


def test_unreadable_file_is_listed_when_the_folder_is_read(folder):
    (folder / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(wb.DataError, match=r"1 of 13 files cannot be read: cat/broken.png .*unreadable='skip'"):
        wb.datasets.image_folder(folder, size=8)
    ds = wb.datasets.image_folder(folder, size=8, unreadable="skip")
    assert len(ds) == 12 and [p for p, _ in ds.skipped] == ["cat/broken.png"]
    assert not any(p.endswith("broken.png") for p, _ in ds.samples)


def test_file_broken_after_reading_is_named_when_training(folder):
    ds = wb.datasets.image_folder(folder, size=8, normalize=False)
    path = ds.samples[3][0]
    Path(path).write_bytes(b"not a png any more")
    with pytest.raises(wb.DataError, match=f"cannot decode image {path}"):
        ds[3]


def test_missing_folder():
    with pytest.raises(wb.DataError, match="does not exist"):
        wb.datasets.image_folder("/no/such/folder")


def test_labels_of_uses_targets_and_subsets(digits):
    from torch.utils.data import Subset

    train, _ = digits
    assert torch.equal(wb.datasets.labels_of(train), train.Y)
    sub = Subset(train, [3, 1])
    assert wb.datasets.labels_of(sub).tolist() == [int(train.Y[3]), int(train.Y[1])]
