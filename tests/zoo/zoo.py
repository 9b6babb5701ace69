"""The zoo: every model with its data, the Session options its community's code needs, and its bugs,
each bug with the check (and recipe step) that must catch it."""

from __future__ import annotations

import functools

import torch.nn.functional as F

import workbench as wb
from tests.zoo import data, gpt, lstm, other, vision


@functools.cache
def _data(kind):
    if kind == "chars":
        train, test, _ = data.chars()
        return train, test
    return {"digits": wb.datasets.digits, "digits16": data.digits16, "sines": data.sines}[kind]()


# model -> (factory(bug=...), data, Session options, {bug: (check that must catch it, a word its verdict says)})
ZOO = {
    "gpt": (gpt.gpt, "chars", {"task": "sequence", "output": 0},
            {"no_mask": ("causality", "whole future"), "mask_off_by_one": ("causality", "off-by-one"),
             "heads_view": ("causality", "reshape"), "softmax_dim": ("causality", "whole future")}),
    "lstm_time_first": (lstm.rnn_model, "chars",
                        {"task": "sequence", "output": 0, "forward_kwargs": {"hidden": None}, "time_first": True},
                        {"batch_as_time": ("batch_dependency", "treats the batch as time"),
                         "bidirectional": ("causality", "bidirectional"),
                         "reshape_not_transpose": ("batch_dependency", "permute")}),
    "lstm_batch_first": (lstm.char_lstm, "chars", {"task": "sequence"},
                         {"no_batch_first": ("batch_dependency", "batch_first=True"),
                          "last_state": ("causality", "final state"), "mean_context": ("causality", "mean")}),
    "resnet": (vision.resnet, "digits16", {},
               {"swish_backward": ("gradient_check", "backward"), "fc_init": ("init_loss", "too large"),
                "softmax_head": ("architecture", "softmax output with cross entropy")}),
    "vit": (vision.vit, "digits16", {},
            {"mha_not_batch_first": ("batch_dependency", "across the batch"),
             "gelu_backward": ("gradient_check", "backward"), "head_init": ("init_loss", "too large")}),
    "mnist_cnn": (vision.mnist_cnn, "digits", {"loss": F.nll_loss},
                  {"softmax_nll": ("architecture", "nll_loss expects log-probabilities"),
                   "log_softmax_dim0": ("batch_dependency", "dim 0"),
                   "no_relu_fc": ("architecture", "linear without nonlinearity")}),
    "std_mlp": (other.std_mlp, "digits", {},
                {"batch_stats": ("batch_dependency", "statistics"),
                 "no_grad_features": ("gradient_flow", "torch.no_grad()"), "big_init": ("init_loss", "too large")}),
    "finetune": (other.finetune, "digits16", {},
                 {"freeze_after_head": ("gradient_flow", "frozen"), "head_in_list": ("gradient_flow", "nn.ModuleList"),
                  "normalize_dim0": ("batch_dependency", "dim 0")}),
    "tcn": (other.tcn, "sines", {"task": "sequence"},
            {"same_padding": ("causality", "padding"), "chomp_left": ("causality", "off-by-one"),
             "window_norm": ("causality", "statistics")}),
}

# bugs made in the Session's options rather than in the model's code
BUG_OPTIONS = {("lstm_time_first", "batch_as_time"): {"time_first": False}}

# the warnings a bug-free model may get, and why a user would agree with them
ALLOWED_WARN = {
    ("lstm_time_first", "bias_init"): "characters are imbalanced (spaces ~30x the rarest letter): starting the output "
                                      "bias at the log priors saves the first steps (II.5)",
    ("lstm_batch_first", "bias_init"): "the same imbalanced characters, same advice (II.5)",
}


def session(name: str, root, bug: str = "", **kw) -> wb.Session:
    """A Session on the zoo model ``name`` (with ``bug`` switched on), its data and its options."""
    factory, kind, opts, bugs = ZOO[name]
    if bug and bug not in bugs:
        raise KeyError(f"{name} has no bug {bug!r}; its bugs: {sorted(bugs)}")
    train, test = _data(kind)
    model = functools.wraps(factory)(functools.partial(factory, bug=bug)) if bug else factory
    return wb.Session(model, train, test, seed=0, root=root, **{**opts, **BUG_OPTIONS.get((name, bug), {}), **kw})


def bug_cases():
    """(model, bug, check, a word of its verdict) for every bug in the zoo."""
    return [(m, b, c, word) for m, (_, _, _, bugs) in ZOO.items() for b, (c, word) in bugs.items()]
