"""The regularization toolkit (recipe III.R): augmentation preset, downsampling, early stopping, dropout/BN."""

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.errors import DataError, WorkbenchError
from workbench.train import evaluate
from workbench.tune.regularize import augmentation, downsample, dropout_before_batchnorm, toolkit


def test_downsample_is_block_averaging(digits):
    train, _ = digits
    x = train.X[:5]
    small = downsample(x, 2)
    assert small.shape == (5, 1, 4, 4)
    blocks = x.reshape(5, 1, 4, 2, 4, 2).mean(dim=(3, 5))  # independent: mean of each 2x2 block
    assert torch.allclose(small, blocks)
    back = downsample(x, 2, restore_size=True)
    assert back.shape == x.shape and torch.equal(back[..., ::2, ::2], blocks)
    assert torch.equal(back[..., 1::2, 1::2], blocks)  # each block is constant: the detail is gone


def test_downsampled_digits_still_train(digits, tmp_path):
    train, test = digits
    small_train, small_test = downsample(train, 2), downsample(test, 2)
    assert small_train.X.shape == (1437, 1, 4, 4) and torch.equal(small_train.Y, train.Y)
    assert small_train.preprocessing.steps[-1].startswith("downsampled 2x")
    s = wb.Session(wb.models.mlp, small_train, small_test, seed=0, root=tmp_path / "runs")
    acc = s.fit(epochs=4, lr=1e-2, checkpoint=False).metrics["val_metric"].iloc[-1]
    assert acc > 0.8  # 16 pixels still tell most digits apart (chance is 0.1): III.R6 on digits


def test_augmentation_preset(digits, tmp_path):
    train, test = digits
    aug = augmentation("shift")
    x = train.X[:1].repeat(8, 1, 1, 1)
    torch.manual_seed(0)
    out = aug(x)
    torch.manual_seed(0)
    assert torch.equal(out, aug(x))  # seeded: the same draws (II.1)
    assert out.shape == x.shape and len({o.sum().item() for o in out}) > 1  # each example its own draw
    assert "shift" in aug.description and "shift" in repr(aug)
    s = wb.Session(wb.models.mlp, train, test, seed=0, root=tmp_path / "runs")
    run = s.fit(epochs=1, lr=1e-2, augment=aug, checkpoint=False, batch_size=128)
    assert run.status == "completed" and run.config["augment"].startswith("Augmentation('shift'")
    with pytest.raises(WorkbenchError, match="preset"):
        augmentation("wild")
    with pytest.raises(DataError, match="image batches"):
        aug(torch.zeros(3, 64))


def test_early_stopping_restores_the_best_weights(small_session):
    s = small_session
    run = s.fit(epochs=40, lr=1e-2, model_kwargs={"width": 256}, early_stopping={"patience": 3},
                checkpoint=False)
    m = run.metrics
    best = int(m["val_loss"].argmin())
    assert len(m) == best + 1 + 3  # stopped 3 epochs after the best, well before 40
    restored = evaluate(s, run.model)
    assert restored["loss"] == pytest.approx(m["val_loss"].iloc[best], rel=1e-5)
    assert restored["loss"] < m["val_loss"].iloc[-1]
    stop = run.records("early_stop")
    assert int(stop["best_epoch"].iloc[0]) == best + 1


def test_dropout_before_batchnorm():
    bad = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    assert dropout_before_batchnorm(bad) == [("1", "2")]
    assert dropout_before_batchnorm(wb.models.tiny_cnn()) == []
    assert dropout_before_batchnorm(wb.models.mlp(dropout=0.2)) == []


def test_toolkit_cites_every_step():
    t = toolkit()
    assert {"III.R1", "III.R2", "III.R4", "III.R6", "III.R7", "III.R8", "III.R9"} <= set(t["recipe"])


def test_bad_downsample_input():
    with pytest.raises(WorkbenchError, match="factor"):
        downsample(torch.zeros(1, 1, 8, 8), 0)
    with pytest.raises(DataError, match="cannot downsample"):
        downsample(torch.zeros(1, 1, 2, 2), 4)
