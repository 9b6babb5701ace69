"""The zoo: every model with its data, the Session options its community's code needs, and its bugs,
each bug with the check (and recipe step) that must catch it."""

from __future__ import annotations

import functools

import torch.nn.functional as F

import workbench as wb
from tests.zoo import data, gpt, lstm, other, vision


@functools.lru_cache(maxsize=None)
def _data(kind):
    if kind == "chars":
        train, test, _ = data.chars()
        return train, test
    return {"digits": wb.datasets.digits, "digits16": data.digits16, "sines": data.sines}[kind]()


# model -> (factory(bug=...), data, Session options, {bug: check that must catch it})
ZOO = {
    "gpt": (gpt.gpt, "chars", {"task": "sequence", "output": 0},
            {"no_mask": "causality", "mask_off_by_one": "causality", "heads_view": "causality",
             "softmax_dim": "causality"}),
    "lstm_time_first": (lstm.rnn_model, "chars",
                        {"task": "sequence", "output": 0, "forward_kwargs": {"hidden": None}, "time_first": True},
                        {"batch_as_time": "batch_dependency", "bidirectional": "causality",
                         "reshape_not_transpose": "batch_dependency"}),
    "lstm_batch_first": (lstm.char_lstm, "chars", {"task": "sequence"},
                         {"no_batch_first": "batch_dependency", "last_state": "causality",
                          "mean_context": "causality"}),
    "resnet": (vision.resnet, "digits16", {},
               {"swish_backward": "gradient_check", "fc_init": "init_loss", "softmax_head": "architecture"}),
    "vit": (vision.vit, "digits16", {},
            {"mha_not_batch_first": "batch_dependency", "gelu_backward": "gradient_check", "head_init": "init_loss"}),
    "mnist_cnn": (vision.mnist_cnn, "digits", {"loss": F.nll_loss},
                  {"softmax_nll": "architecture", "log_softmax_dim0": "batch_dependency",
                   "no_relu_fc": "architecture"}),
    "std_mlp": (other.std_mlp, "digits", {},
                {"batch_stats": "batch_dependency", "no_grad_features": "gradient_flow", "big_init": "init_loss"}),
    "finetune": (other.finetune, "digits16", {},
                 {"freeze_after_head": "gradient_flow", "head_in_list": "gradient_flow",
                  "normalize_dim0": "batch_dependency"}),
    "tcn": (other.tcn, "sines", {"task": "sequence"},
            {"same_padding": "causality", "chomp_left": "causality", "window_norm": "causality"}),
}

# bugs made in the Session's options rather than in the model's code
BUG_OPTIONS = {("lstm_time_first", "batch_as_time"): {"time_first": False}}

# what a bug-free model is allowed to get besides pass, and why a user would agree
ALLOWED_WARN = {}


def session(name: str, root, bug: str = "", **kw) -> wb.Session:
    """A Session on the zoo model ``name`` (with ``bug`` switched on), its data and its options."""
    factory, kind, opts, bugs = ZOO[name]
    if bug and bug not in bugs:
        raise KeyError(f"{name} has no bug {bug!r}; its bugs: {sorted(bugs)}")
    train, test = _data(kind)
    model = functools.wraps(factory)(functools.partial(factory, bug=bug)) if bug else factory
    return wb.Session(model, train, test, seed=0, root=root, **{**opts, **BUG_OPTIONS.get((name, bug), {}), **kw})


def bug_cases():
    """(model, bug, check) for every bug in the zoo."""
    return [(m, b, c) for m, (_, _, _, bugs) in ZOO.items() for b, c in bugs.items()]
