"""batch_dependency and causality (II.12): backprop charts which inputs each output depends on."""

from __future__ import annotations

import torch
from torch import nn

import workbench as wb


class ViewInsteadOfPermute(nn.Module):
    """Treats image rows as a time-major sequence; ``view`` where ``permute`` was needed mixes the batch."""

    def __init__(self, num_classes=10, bug=True):
        super().__init__()
        self.bug = bug
        self.rnn_in = nn.Linear(8, 16)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        b = x.shape[0]
        rows = x.reshape(b, 8, 8)                                       # (B, T, D)
        tm = rows.view(8, b, 8) if self.bug else rows.permute(1, 0, 2)  # wants (T, B, D)
        h = torch.relu(self.rnn_in(tm)).mean(0)                         # (B, 16) pooled over time
        return self.head(h)


def test_batchnorm_cnn_passes_in_eval_mode(make_session):
    r = make_session().check("batch_dependency")
    assert r.status == "pass" and r.recipe == "II.12"
    assert r.measured["mode"] == "eval" and "batch norm" in r.details["note"]
    m = torch.tensor(r.details["dependency_matrix"])
    assert (m.diagonal() > 0).all() and (m - torch.diag(m.diagonal())).abs().max() == 0


def test_batchnorm_in_train_mode_couples_the_batch_by_design(make_session):
    r = make_session().check("batch_dependency", mode="train")
    assert r.status == "fail"


def test_correct_permute_passes_in_train_mode(make_session):
    r = make_session(lambda num_classes=10: ViewInsteadOfPermute(num_classes, bug=False)).check("batch_dependency")
    assert r.status == "pass" and r.measured["mode"] == "train"


def test_view_instead_of_permute_is_caught(make_session):
    r = make_session(ViewInsteadOfPermute).check("batch_dependency")
    assert r.status == "fail" and r.measured["leaking_outputs"] == 8
    assert r.details["leaks"][0]["example"] == 0 and r.details["leaks"][0]["leaks_from"]
    assert "permute" in r.message


# ------------------------------------------------------------------------------------------- causality
class TinyCausalLM(nn.Module):
    """Token ids (B, T) -> embedding -> one masked self-attention layer -> logits (B, T, V)."""

    def __init__(self, num_classes=8, mask_offset=0):
        super().__init__()
        self.emb = nn.Embedding(num_classes, 16)
        self.pos = nn.Parameter(torch.randn(32, 16) * 0.1)
        self.qkv = nn.Linear(16, 48)
        self.out = nn.Linear(16, num_classes)
        self.offset = mask_offset  # 0 is right; 1 lets time t see t+1 (the off-by-one bug)

    def forward(self, ids):
        T = ids.shape[1]
        h = self.emb(ids) + self.pos[:T]
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        att = q @ k.transpose(1, 2) / 4.0
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1 + self.offset)
        att = att.masked_fill(future, float("-inf")).softmax(-1)
        return self.out(h + att @ v)


def sequence_session(make_session, offset):
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, 8, (96, 13), generator=g)
    data = (seq[:, :-1], seq[:, 1:])
    return make_session(lambda num_classes=8: TinyCausalLM(num_classes, offset), train=data, test=data,
                        task="sequence", num_classes=8)


def test_causal_attention_passes(make_session):
    s = sequence_session(make_session, 0)
    r = s.check("causality")
    assert r.status == "pass" and r.measured["positions_checked"] == 12
    assert s.check("batch_dependency").status == "pass"  # through the embedding's output


def test_mask_off_by_one_names_the_first_pair(make_session):
    r = sequence_session(make_session, 1).check("causality")
    assert r.status == "fail" and r.details["leaks"][0] == {"t": 0, "depends_on": [1]}
    assert "time 0 depends on the input at time 1" in r.message


def test_causality_skips_outside_sequence_tasks(make_session):
    r = make_session(wb.models.linear).check("causality")
    assert r.status == "skip" and "sequence" in r.message


class ZeroHead(nn.Module):
    """A fine-tuning habit (and torchvision ViT's): the output layer starts at zero."""

    def __init__(self, num_classes=10, mix=False):
        super().__init__()
        self.body, self.head, self.mix = nn.Linear(64, 32), nn.Linear(32, num_classes), mix
        nn.init.zeros_(self.head.weight)

    def forward(self, x):
        h = torch.tanh(self.body(x.flatten(1)))
        return self.head(h - h.mean(0) if self.mix else h)  # the bug: centred over the batch


def test_a_zero_head_is_unblocked_and_said(make_session):
    r = make_session(ZeroHead).check("batch_dependency")
    assert r.status == "pass" and r.details["perturbed"] == ["head.weight"]
    assert "start at zero" in r.message and r.measured["zero_weights_perturbed"] == 1
    bad = make_session(lambda num_classes=10: ZeroHead(num_classes, mix=True)).check("batch_dependency")
    assert bad.status == "fail" and bad.measured["leaking_outputs"] == 8 and "start at zero" in bad.message
