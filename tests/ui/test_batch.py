"""BatchViewer (II.10): the batch as the Trainer feeds it, de-normalised, with per-channel statistics."""

import torch

from workbench.datasets import Preprocessing, TensorPairDataset
from workbench.ui.batch import BatchViewer, channel_stats


def test_channel_stats_match_torch():
    x = torch.randn(16, 3, 5, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    st = channel_stats(x)
    assert list(st["channel"]) == [0, 1, 2]
    for c in range(3):
        assert abs(st["mean"][c] - float(x[:, c].mean())) < 1e-5
        assert abs(st["std"][c] - float(x[:, c].std())) < 1e-5
        assert abs(st["max"][c] - float(x[:, c].max())) < 1e-6


def test_the_batch_is_the_trainers_first_batch(small_session):
    view = BatchViewer(small_session, n=64)
    x, y = next(iter(small_session.loader("train", shuffle=True, batch_size=64)))
    assert torch.equal(view.x, x) and torch.equal(view.y, y)
    assert abs(view.stats["mean"][0] - float(x.mean())) < 1e-6
    view.split = "test"
    assert len(view.x) == 64 and torch.equal(view.x, small_session.test.X[:64])


def test_augmentation_changes_the_batch_but_not_its_labels(small_session):
    view = BatchViewer(small_session, n=32)
    plain, labels = view.x.clone(), view.y.clone()
    view.augment = True
    assert torch.equal(view.y, labels)
    assert not torch.equal(view.x, plain)
    assert view.x.shape == plain.shape


def test_denormalisation_uses_the_sessions_preprocessing(digits, tmp_path):
    import workbench as wb

    train, test = digits
    mean, std = float(train.X.mean()), float(train.X.std())
    prep = Preprocessing(steps=["standardised"], mean=(mean,), std=(std,))
    norm = TensorPairDataset((train.X[:128] - mean) / std, train.Y[:128], preprocessing=prep,
                             classes=train.classes)
    s = wb.Session(wb.models.linear, norm, test, seed=0, root=tmp_path)
    view = BatchViewer(s, n=16)
    assert abs(view.stats["mean"][0]) < 1.0  # normalised input statistics are shown as the model sees them
    back = s.preprocessing.denormalize(view.x)
    assert back.min() >= -1e-5 and back.max() <= 1 + 1e-5
    assert "standardised" in view._info.object
