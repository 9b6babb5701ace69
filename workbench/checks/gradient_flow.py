"""gradient_flow (recipe II.12): before any training, does every trainable weight receive a gradient?

One forward and backward of the data loss on a few training examples of a fresh model. Found:
- no parameter requires grad (a fully frozen network: nothing can train);
- trainable tensors that receive no gradient at all (unused in the forward, run under
  ``torch.no_grad()`` or ``detach()``);
- modules with weights that the forward calls but the model does not register (kept in a python
  list, or captured by a closure from another copy): the optimizer never sees them.
Frozen tensors beside trainable ones (fine-tuning a head on a frozen backbone) are reported, not failed.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from workbench.checks.base import register, result, split_tensors, zero_weight_layers
from workbench.engine.rng import seeded

NAME = "gradient_flow"


def _called_modules(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[nn.Module]]:
    """(output, modules with their own parameters that ran in this thread during ``model(x)``)."""
    seen, me = [], threading.get_ident()

    def hook(mod, args, out):
        if threading.get_ident() == me and any(True for _ in mod.parameters(recurse=False)):
            seen.append(mod)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        out = model(x)
    finally:
        handle.remove()
    return out, seen


def flow(session, model: nn.Module, examples: int = 8) -> dict:
    """Frozen, trainable, gradient-less and unregistered parameters of ``model`` after one backward."""
    x, y = split_tensors(session, "train", examples)
    model.train()
    model.zero_grad(set_to_none=True)
    named = list(model.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    with seeded(session.seed):  # dropout in the forward draws from a stream of its own
        out, called = _called_modules(model, x)
    owned = {id(m) for m in model.modules()}
    stray = list({id(m): m for m in called if id(m) not in owned}.values())
    loss = session.data_loss(out, y)
    if loss.requires_grad:
        loss.backward()
    return {"frozen": [n for n, p in named if not p.requires_grad], "trainable": [n for n, _ in trainable],
            "no_grad": [n for n, p in trainable if p.grad is None],
            "zero_grad": [n for n, p in trainable if p.grad is not None and not bool(p.grad.any())],
            "stray": [f"{type(m).__name__} ({sum(p.numel() for p in m.parameters())} parameters)" for m in stray],
            "zero_weights": zero_weight_layers(model)}


def _stray_text(stray):
    return (f"the forward calls {len(stray)} module(s) with weights that the model does not register "
            f"({', '.join(stray[:3])}): kept in a python list or dict (use nn.ModuleList / nn.ModuleDict) or "
            "captured by a closure from another copy of the model — the optimizer never sees them")


@register(NAME, "II.12", order=35)
def check(session, *, examples: int = 8):
    """One backward of the data loss on ``examples`` training examples: every trainable tensor must get a
    gradient, at least one tensor must be trainable, and every module the forward runs must be registered."""
    model = session.new_model()
    f = flow(session, model, examples)
    n_all = len(f["frozen"]) + len(f["trainable"])
    measured = {"tensors": n_all, "trainable": len(f["trainable"]), "frozen": len(f["frozen"]),
                "without_gradient": len(f["no_grad"]), "unregistered_modules": len(f["stray"])}
    expected = "a gradient for every trainable tensor; every module in the forward registered"
    details = f
    problems = []
    if not f["trainable"]:
        problems.append(f"no parameter requires grad (all {n_all} tensors are frozen): nothing can train — set "
                        "requires_grad=True on the layers to train (a freezing loop run after the new head was "
                        "attached freezes the head too)")
    if f["no_grad"]:
        problems.append(f"{len(f['no_grad'])} of {len(f['trainable'])} trainable tensors receive no gradient "
                        f"({', '.join(f['no_grad'][:4])}): they are not used by the loss, or run under "
                        "torch.no_grad() / detach()")
    if f["stray"]:
        problems.append(_stray_text(f["stray"]))
    if problems:
        return result(NAME, "fail", "; ".join(problems) + ".", measured=measured, expected=expected, details=details)
    notes = []
    if f["frozen"]:
        notes.append(f"{len(f['frozen'])} of {n_all} tensors are frozen (requires_grad=False), as when fine-tuning "
                     "on a frozen backbone")
    if f["zero_grad"] and f["zero_weights"]:
        notes.append(f"{len(f['zero_grad'])} tensors get an all-zero gradient at initialisation because "
                     f"{', '.join(f['zero_weights'][:2])} start at zero; it moves after the first step")
    return result(NAME, "pass", f"all {len(f['trainable'])} trainable tensors receive a gradient"
                  + (f" ({'; '.join(notes)})" if notes else "") + ".", measured=measured, expected=expected,
                  details=details)
