"""The model adapter (workbench.adapt): tuple/dict returns, keyword inputs and time-first models in a Session."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import workbench as wb
from workbench.adapt import Adapted, select
from workbench.errors import ModelError


class ReturnsTuple(nn.Module):
    """nanoGPT's habit: ``forward(x, targets=None) -> (logits, loss)``."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x, targets=None):
        logits = self.fc(x.flatten(1))
        return logits, None if targets is None else F.cross_entropy(logits, targets)


class ReturnsDict(ReturnsTuple):
    def forward(self, x, scale):
        return {"logits": self.fc(x.flatten(1)) * scale, "hidden": None}


@pytest.fixture
def digits():
    return wb.datasets.digits()


def test_a_tuple_return_is_refused_with_what_to_pass(digits, tmp_path):
    with pytest.raises(ModelError, match=r"a tuple of 2 \(shape \(2, 10\), NoneType\).*output=0"):
        wb.Session(ReturnsTuple, *digits, root=tmp_path)


def test_output_index_key_or_callable_selects_the_prediction(digits, tmp_path):
    s = wb.Session(ReturnsTuple, *digits, root=tmp_path, output=0)
    assert isinstance(s.model, Adapted) and s.check("init_loss").status == "pass"
    x = digits[0].X[:5]
    assert torch.equal(s.model(x), s.model.model(x)[0])
    d = wb.Session(ReturnsDict, *digits, root=tmp_path, output="logits", forward_kwargs={"scale": 2.0})
    assert torch.allclose(d.model(x), 2.0 * d.model.model.fc(x.flatten(1)))
    c = wb.Session(ReturnsTuple, *digits, root=tmp_path, output=lambda ret: ret[0] * 0.5)
    assert torch.allclose(c.model(x), 0.5 * c.model.model.fc(x.flatten(1)))


def test_a_wrong_selector_says_what_the_model_returned():
    with pytest.raises(ModelError, match="output='logits' does not select.*try Session\\(..., output=0\\)"):
        select((torch.zeros(2, 3), None), "logits")
    with pytest.raises(ModelError, match="an index"):
        Adapted(nn.Identity(), output=1.5)


def test_missing_keyword_input_gives_a_verdict_naming_forward_kwargs(digits, tmp_path):
    with pytest.raises(ModelError, match=r"scale.*Session\(forward_kwargs="):
        wb.Session(ReturnsDict, *digits, root=tmp_path, output="logits")


class TimeFirst(nn.Module):
    """word_language_model's layout: ids (T, B) in, scores (T, B, V) out."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(num_classes, 8), nn.LSTM(8, 8), nn.Linear(8, num_classes)

    def forward(self, ids):
        return self.out(self.rnn(self.emb(ids))[0])


def test_time_first_models_are_transposed_in_and_out(tmp_path):
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 5, (32, 6), generator=g)
    data = (X, torch.roll(X, -1, 1))
    s = wb.Session(TimeFirst, data, data, task="sequence", root=tmp_path, time_first=True)
    out = s.model(X[:3])
    assert out.shape == (3, 6, 5)
    assert torch.equal(out, s.model.model(X[:3].t()).transpose(0, 1))
    assert s.check("batch_dependency").status == "pass" and s.check("causality").status == "pass"
    wrong = wb.Session(TimeFirst, data, data, task="sequence", root=tmp_path)  # time_first forgotten
    r = wrong.check("batch_dependency")
    assert r.status == "fail" and "treats the batch as time" in r.message
