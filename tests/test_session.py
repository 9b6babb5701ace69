"""The Session: model factories, inference from data, and clear errors on bad input."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

import workbench as wb


def test_new_model_is_seeded_and_fresh(session):
    a, b = session.new_model(), session.new_model()
    assert a is not b
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    c = session.new_model(seed=1)
    assert not torch.equal(next(iter(a.parameters())), next(iter(c.parameters())))
    # a check's RNG use does not leak: new_model restores the global RNG
    torch.manual_seed(5)
    x = torch.rand(1)
    torch.manual_seed(5)
    session.new_model()
    assert torch.equal(torch.rand(1), x)


def test_factory_gets_what_the_data_says(digits, tmp_path):
    train, test = digits
    seen = {}

    def factory(num_classes=3, in_channels=7, width=4):
        seen.update(num_classes=num_classes, in_channels=in_channels, width=width)
        return wb.models.tiny_cnn(num_classes, in_channels, width)

    s = wb.Session(factory, train, test, root=tmp_path)
    assert seen == {"num_classes": 10, "in_channels": 1, "width": 4}
    assert s.accepts("width")
    wide = s.new_model(width=32)
    assert seen["width"] == 32 and wide.head.in_features == 64


def test_module_is_copied_not_trained_in_place(digits, tmp_path):
    train, test = digits
    module = wb.models.mlp()
    module(torch.zeros(2, 1, 8, 8))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    s = wb.Session(module, train, test, root=tmp_path)
    s.fit(epochs=1)
    for k, v in module.state_dict().items():
        assert torch.equal(before[k], v)
    with pytest.raises(wb.ModelError, match="factory accepting width"):
        s.new_model(width=8)


class Strings(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return "not an image", 1


def test_dataset_of_non_tensors_is_named(tmp_path):
    with pytest.raises(wb.DataError, match="input of type str"):
        wb.Session(wb.models.linear, Strings(), root=tmp_path)


def test_labels_out_of_range_are_named(digits, tmp_path):
    train, test = digits
    with pytest.raises(wb.DataError, match=r"labels range over \[0, 9\] but num_classes=5"):
        wb.Session(wb.models.linear, train, test, num_classes=5, root=tmp_path)
    Y = train.Y.clone()
    Y[3] = -1
    with pytest.raises(wb.DataError, match=r"labels range over \[-1, 9\]"):
        wb.Session(wb.models.linear, (train.X, Y), test, root=tmp_path)


def test_model_output_that_does_not_fit_the_task(digits, tmp_path):
    train, test = digits
    with pytest.raises(wb.ModelError, match="returns 7 scores per example but the data has 10 classes"):
        wb.Session(lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 7)), train, test, root=tmp_path)
    with pytest.raises(wb.ModelError, match=r"output of shape \(batch, 10\)"):
        wb.Session(lambda: nn.Flatten(0), train, test, root=tmp_path)


def test_model_that_raises_is_named(digits, tmp_path):
    train, test = digits
    with pytest.raises(wb.ModelError, match=r"raised RuntimeError on an input batch of shape \(2, 1, 8, 8\)"):
        wb.Session(lambda: nn.Linear(3, 10), train, test, root=tmp_path)


def test_empty_dataset(tmp_path):
    with pytest.raises(wb.DataError, match="empty"):
        wb.Session(wb.models.linear, (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), root=tmp_path)

    class Empty(Dataset):
        def __len__(self):
            return 0

        def __getitem__(self, i):
            raise IndexError

    with pytest.raises(wb.DataError, match="train is empty"):
        wb.Session(wb.models.linear, Empty(), root=tmp_path)


def test_nan_inputs_are_named(tmp_path):
    X = torch.rand(10, 4)
    X[2, 1] = float("nan")
    with pytest.raises(wb.DataError, match=r"NaN or inf values \(examples \[2\]"):
        wb.Session(wb.models.linear, (X, torch.zeros(10, dtype=torch.long)), root=tmp_path)


def test_model_failing_mid_training_is_recorded_and_named(digits, tmp_path):
    train, test = digits

    class Flaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)
            self.n = 0

        def forward(self, x):
            self.n += 1
            if self.n == 5:
                raise RuntimeError("flaky layer")
            return self.lin(x.flatten(1))

    s = wb.Session(Flaky(), train, test, root=tmp_path)
    with pytest.raises(wb.ModelError, match="the model raised RuntimeError on a training batch.*flaky layer"):
        s.fit(epochs=1)
    row = s.runs().iloc[0]
    assert row.status == "failed"
    run = s.fit(epochs=1, background=True).wait()  # the session survives; a background failure is recorded
    assert run.status == "failed" and "flaky layer" in run.error
    assert s.runs().status.tolist() == ["failed", "failed"]
    assert len(s.runs()) == 2


class PILDigits(Dataset):
    """Like a torchvision dataset passed as is: PIL images and int labels."""

    def __init__(self, X, Y):
        self.X, self.Y = (X.squeeze(1).numpy() * 255).astype(np.uint8), Y.tolist()
        self.targets = self.Y

    def __len__(self):
        return len(self.Y)

    def __getitem__(self, i):
        return Image.fromarray(self.X[i]), self.Y[i]


def test_pil_dataset_is_converted_and_recorded(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.tiny_cnn, PILDigits(train.X, train.Y), PILDigits(test.X, test.Y), root=tmp_path)
    x, y = s.train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert any("PIL" in step or "Image" in step for step in s.preprocessing.steps)
    assert s.num_classes == 10
    run = s.fit(epochs=1)
    assert run.metrics.n_eval.iloc[0] == 360


def test_numpy_pairs_are_accepted(digits, tmp_path):
    train, test = digits
    s = wb.Session(wb.models.linear, (train.X.numpy(), train.Y.numpy()), (test.X.numpy(), test.Y.numpy()),
                   root=tmp_path)
    assert s.num_classes == 10 and len(s.train) == 1437


def test_describe_and_batch(session):
    assert session.describe() == "digits-train · tiny_cnn · seed 0 · cpu"
    x, y = session.batch("test", 5)
    assert x.shape == (5, 1, 8, 8) and y.tolist() == session.test.Y[:5].tolist()
