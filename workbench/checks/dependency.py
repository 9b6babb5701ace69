"""Backprop charts dependencies (recipe II.12): batch_dependency and causality.

batch_dependency: take the loss as the sum of the outputs of example i and backprop; the gradient
on the inputs must be zero for every other example (catches ``view`` where ``permute`` was needed,
and any mixing across the batch dimension). causality (task "sequence"): the output at time t must
have zero gradient with respect to inputs after t. Integer inputs (token ids) are differentiated
through the output of the first ``nn.Embedding``.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.checks.base import register, result, split_tensors
from workbench.engine.rng import seeded
from workbench.errors import ModelError

BATCH, CAUSAL = "batch_dependency", "causality"
_BN = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)


def forward_with_probe(model: nn.Module, x: torch.Tensor):
    """(output, probe): ``probe`` is the tensor whose gradient shows what each output depends on —
    the input itself, or the first embedding's output when the inputs are integer ids."""
    if x.is_floating_point():
        probe = x.detach().clone().requires_grad_(True)
        return model(probe), probe
    emb = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if emb is None:
        raise ModelError("the inputs are integers and the model has no nn.Embedding to differentiate through; "
                         "dependencies can only be charted on float inputs or embedding outputs")
    box = {}

    def hook(mod, inp, out):
        if "probe" not in box:  # the first call sees the raw ids
            out.retain_grad()
            box["probe"] = out
        return out

    h = emb.register_forward_hook(hook)
    try:
        out = model(x)
    finally:
        h.remove()
    if "probe" not in box or not box["probe"].requires_grad:
        raise ModelError("the embedding's output does not require grad (frozen embedding?); cannot chart dependencies")
    return out, box["probe"]


def _grad_of(model, x, select, seed):
    """Gradient on the probe of ``select(output).sum()``, per example and time: shape (B,) or (B, T)."""
    model.zero_grad(set_to_none=True)
    with seeded(seed):  # the same dropout mask for every backward
        out, probe = forward_with_probe(model, x)
        select(out).sum().backward()
    g = probe.grad.detach().abs()
    return g, out.shape


def _mode(model, mode):
    has_bn = any(isinstance(m, _BN) for m in model.modules())
    if mode == "auto":
        mode = "eval" if has_bn else "train"
    model.train(mode == "train")
    return mode, has_bn


@register(BATCH, "II.12", order=60)
def batch_dependency(session, *, examples: int = 8, mode: str = "auto", tol: float = 1e-6):
    """Backprop ``output[i].sum()`` for each of ``examples`` examples; any other example with input gradient
    above ``tol`` x the largest is a leak. ``mode``: "auto" (eval when the model has batch norm — in train
    mode batch norm couples the batch by design —, else train with a fixed dropout seed), "eval" or "train"."""
    x, _ = split_tensors(session, "train", examples)
    n = len(x)
    if n < 2:
        return result(BATCH, "skip", "needs at least two training examples")
    model = session.new_model()
    mode, has_bn = _mode(model, mode)
    leaks, self_zero, matrix = [], [], []
    for i in range(n):
        g, shape = _grad_of(model, x, lambda o, i=i: o[i], session.seed)
        per = g.reshape(n, -1).sum(1)
        matrix.append(per.tolist())
        top = float(per.max())
        bad = [j for j in range(n) if j != i and per[j] > tol * max(top, 1e-30)]
        if bad:
            leaks.append({"example": i, "leaks_from": bad})
        if per[i] == 0:
            self_zero.append(i)
    measured = {"examples": n, "leaking_outputs": len(leaks), "mode": mode}
    details = {"dependency_matrix": matrix, "leaks": leaks, "mode": mode,
               "note": ("evaluated in eval mode: batch norm in train mode normalises with the batch's statistics, "
                        "so it couples examples by design; in eval mode it uses running statistics")
               if mode == "eval" and has_bn else ""}
    expected = "zero input gradient from every other example"
    if leaks:
        first = leaks[0]
        return result(BATCH, "fail", f"output of example {first['example']} depends on examples "
                      f"{first['leaks_from'][:8]} ({len(leaks)} of {n} outputs leak): the model mixes the batch — "
                      "look for view/reshape where a permute/transpose was needed, or an op across dim 0.",
                      measured=measured, expected=expected, details=details)
    if len(self_zero) == n:
        return result(BATCH, "warn", "the outputs do not depend on any input (all input gradients are zero): the "
                      "model ignores its input or the graph is detached", measured=measured, expected=expected,
                      details=details)
    note = " (eval mode: batch norm uses running statistics)" if mode == "eval" and has_bn else ""
    return result(BATCH, "pass", f"each of {n} outputs depends only on its own example{note}.",
                  measured=measured, expected=expected, details=details)


@register(CAUSAL, "II.12", tasks=("sequence",), order=70)
def causality(session, *, examples: int = 2, max_positions: int = 64, mode: str = "eval", tol: float = 1e-6):
    """For each time t (up to ``max_positions``, evenly spread), backprop ``output[:, t].sum()``; any input
    time s > t with gradient above ``tol`` x the largest is a leak from the future."""
    x, _ = split_tensors(session, "train", examples)
    if x.dim() < 2:
        return result(CAUSAL, "error", f"sequence inputs must be (batch, time, ...), got shape {tuple(x.shape)}")
    model = session.new_model()
    mode, _ = _mode(model, mode)
    T = x.shape[1]
    times = torch.linspace(0, T - 1, min(T, max_positions)).round().long().unique().tolist()
    first, offending, matrix = None, [], {}
    for t in times:
        g, shape = _grad_of(model, x, lambda o, t=t: o[:, t], session.seed)
        per_time = g.reshape(g.shape[0], g.shape[1], -1).sum(-1).sum(0)  # (T,)
        matrix[t] = per_time.tolist()
        top = float(per_time.max())
        future = [s for s in range(t + 1, T) if per_time[s] > tol * max(top, 1e-30)]
        if future:
            offending.append({"t": t, "depends_on": future})
            if first is None:
                first = (t, future[0])
    measured = {"positions_checked": len(times), "leaking_positions": len(offending), "T": T}
    details = {"dependency": matrix, "leaks": offending, "mode": mode}
    expected = "output at t has zero gradient w.r.t. inputs at s > t"
    if first is not None:
        return result(CAUSAL, "fail", f"the output at time {first[0]} depends on the input at time {first[1]} "
                      f"(the future; {len(offending)} of {len(times)} positions leak): check the causal mask "
                      "(off by one?) or the padding of causal convolutions.", measured=measured,
                      expected=expected, details=details)
    return result(CAUSAL, "pass", f"no output depends on future inputs ({len(times)} positions of {T} checked).",
                  measured=measured, expected=expected, details=details)
