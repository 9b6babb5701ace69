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


@pytest.fixture
def splits(tmp_path):
    """train/ and test/ folders whose brightness differs (so their own statistics differ), one file in both."""
    rng = np.random.default_rng(1)
    for split, shift, n in (("train", 0, 10), ("test", 60, 4)):
        for c, shade in (("cat", 40), ("dog", 150)):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                arr = np.clip(rng.normal(shade + shift, 20, (20, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(tmp_path / split / c / f"{i}.png")
    leaked = (tmp_path / "train" / "dog" / "4.png").read_bytes()
    (tmp_path / "test" / "dog" / "leak.png").write_bytes(leaked)
    return tmp_path


def test_readme_loading_finds_a_leaked_file_through_the_session(splits, tmp_path):
    train = wb.datasets.image_folder(splits / "train", size=16)
    test = wb.datasets.image_folder(splits / "test", like=train)          # the training split's preprocessing
    assert test.preprocessing.mean == train.preprocessing.mean and test.classes == train.classes
    assert any("the training split's" in s for s in test.preprocessing.steps)
    i_train = [p for p, _ in train.samples].index(str(splits / "train" / "dog" / "4.png"))
    i_test = [p for p, _ in test.samples].index(str(splits / "test" / "dog" / "leak.png"))
    assert torch.equal(train[i_train][0], test[i_test][0])               # identical file, identical tensor
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs")
    leaks = s.audit().of("train_test_leak")
    assert sorted(zip(leaks["split"], leaks["index"], strict=True)) == [("test", i_test), ("train", i_train)]


def test_splits_normalised_apart_still_leak_on_decoded_pixels(splits, tmp_path):
    train = wb.datasets.image_folder(splits / "train", size=16)
    test = wb.datasets.image_folder(splits / "test", size=16)           # its own (different) statistics
    assert test.preprocessing.mean[0] > train.preprocessing.mean[0] + 0.1
    s = wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs")
    assert s.audit(issues=("train_test_leak",)).summary.loc["train_test_leak", "count"] == 2


def test_like_refuses_a_class_the_training_split_lacks(splits):
    train = wb.datasets.image_folder(splits / "train", size=16)
    (splits / "test" / "bird").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(splits / "test" / "bird" / "0.png")
    with pytest.raises(wb.DataError, match="class folder.* bird that the training split does not have"):
        wb.datasets.image_folder(splits / "test", like=train)
    with pytest.raises(wb.DataError, match="differs from the training split's size 16"):
        wb.datasets.image_folder(splits / "train", like=train, size=8)


def test_truncated_file_is_listed_at_session_creation(folder, tmp_path):
    good = (folder / "dog" / "0.png").read_bytes()
    (folder / "dog" / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(wb.DataError, match=r"1 of 13 files cannot be read: dog/cut.png \(cannot be decoded"):
        wb.Session(wb.models.tiny_cnn, str(folder), root=tmp_path / "runs")
    ds = wb.datasets.image_folder(folder, size=8, unreadable="skip")
    s = wb.Session(wb.models.tiny_cnn, ds, ds, root=tmp_path / "runs")
    run = s.fit(epochs=1, lr=1e-2)
    assert run.config["data_view"]["train_files_left_out"][0]["file"] == "dog/cut.png"
    assert run.config["n_train"] == 12
