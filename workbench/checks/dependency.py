"""Backprop charts dependencies (recipe II.12): batch_dependency and causality.

batch_dependency: take the loss as the sum of the outputs of example i and backprop; the gradient
on the inputs must be zero for every other example (catches ``view`` where ``permute`` was needed,
a time-first layer fed batch-first data, and any mixing across the batch dimension). causality
(task "sequence"): the output at time t must have zero gradient with respect to inputs after t.
Integer inputs (token ids) are differentiated through the output of the first ``nn.Embedding``,
in whatever layout the model hands it the ids (time-first models transpose them). A zero-initialised
weight (torchvision ViT's head) blocks every gradient: it is given small random values first, and
the verdict says so.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.checks.base import perturb_zero_layers, register, result, split_tensors
from workbench.engine.rng import seeded
from workbench.errors import ModelError

BATCH, CAUSAL = "batch_dependency", "causality"
_BN = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)


def forward_with_probe(model: nn.Module, x: torch.Tensor):
    """(output, probe, to_batch_first): ``probe`` is the tensor whose gradient shows what each output depends
    on — the input itself, or the first embedding's output for integer ids; ``to_batch_first(grad)`` puts its
    gradient in the layout of ``x`` (batch on dim 0)."""
    if x.is_floating_point():
        probe = x.detach().clone().requires_grad_(True)
        return model(probe), probe, lambda g: g
    emb = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if emb is None:
        raise ModelError("the inputs are integers and the model has no nn.Embedding to differentiate through; "
                         "dependencies can only be charted on float inputs or embedding outputs")
    box = {}

    def hook(mod, inp, out):
        if "probe" not in box:  # the first call sees the raw ids
            out.retain_grad()
            box["probe"], box["ids"] = out, inp[0]
        return out

    h = emb.register_forward_hook(hook)
    try:
        out = model(x)
    finally:
        h.remove()
    if "probe" not in box or not box["probe"].requires_grad:
        raise ModelError("the embedding's output does not require grad (frozen embedding?); cannot chart dependencies")
    ids = box["ids"]
    if ids.shape == x.shape and torch.equal(ids, x):
        return out, box["probe"], lambda g: g
    if ids.dim() >= 2 and ids.transpose(0, 1).shape == x.shape and torch.equal(ids.transpose(0, 1), x):
        return out, box["probe"], lambda g: g.transpose(0, 1)  # a time-first model: (T, B, E) -> (B, T, E)
    raise ModelError(f"the first embedding receives ids of shape {tuple(ids.shape)}, not the batch {tuple(x.shape)} "
                     "or its transpose; dependencies cannot be mapped back to examples")


def _grad_of(model, x, select, seed):
    """|gradient| on the probe of ``select(output).sum()``, batch first: shape (B, ...), and the output."""
    model.zero_grad(set_to_none=True)
    with seeded(seed):  # the same dropout mask for every backward
        out, probe, to_batch_first = forward_with_probe(model, x)
        select(out).sum().backward()
    return to_batch_first(probe.grad.detach().abs()), out


def _mode(model, mode):
    has_bn = any(isinstance(m, _BN) for m in model.modules())
    if mode == "auto":
        mode = "eval" if has_bn else "train"
    model.train(mode == "train")
    return mode, has_bn


def _all_zero(model, x, seed) -> bool:
    g, _ = _grad_of(model, x, lambda o: o, seed)
    return not bool(g.any())


def unblock(model, x, seed) -> list[str]:
    """When every input gradient is zero because a weight is all zero (a zero-initialised head), give those
    weights small random values; the names of the weights changed (empty when none was needed)."""
    if not _all_zero(model, x, seed):
        return []
    return perturb_zero_layers(model, seed)


def _zero_note(perturbed):
    return (f" The weights {', '.join(perturbed[:3])} start at zero, which makes every input gradient zero; they "
            "were given small random values for this check." if perturbed else "")


def _batch_leak_message(leaks, n):
    first = leaks[0]
    earlier_only = all(max(lk["leaks_from"]) < lk["example"] for lk in leaks)
    if earlier_only and len(leaks) >= n - 1:
        return (f"output of example {first['example']} depends on examples {first['leaks_from'][:8]}, and every "
                "example only on those before it: the model runs a recurrence or causal attention along dimension 0,"
                " i.e. it treats the batch as time. A time-first layer (nn.LSTM/GRU/Transformer without "
                "batch_first=True) is fed batch-first data: build it with batch_first=True, or pass "
                "Session(time_first=True) when the whole model is time-first.")
    return (f"output of example {first['example']} depends on examples {first['leaks_from'][:8]} ({len(leaks)} of "
            f"{n} outputs leak): the model mixes the batch — look for view/reshape where a permute/transpose was "
            "needed, statistics or a softmax/normalisation over dim 0, or a layer that treats dim 0 as a sequence.")


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
    perturbed = unblock(model, x, session.seed)
    leaks, self_zero, matrix = [], [], []
    for i in range(n):
        g, _ = _grad_of(model, x, lambda o, i=i: o[i], session.seed)
        per = g.reshape(n, -1).sum(1)
        matrix.append(per.tolist())
        top = float(per.max())
        bad = [j for j in range(n) if j != i and per[j] > tol * max(top, 1e-30)]
        if bad:
            leaks.append({"example": i, "leaks_from": bad})
        if per[i] == 0:
            self_zero.append(i)
    measured = {"examples": n, "leaking_outputs": len(leaks), "mode": mode, "zero_weights_perturbed": len(perturbed)}
    details = {"dependency_matrix": matrix, "leaks": leaks, "mode": mode, "perturbed": perturbed,
               "note": ("evaluated in eval mode: batch norm in train mode normalises with the batch's statistics, "
                        "so it couples examples by design; in eval mode it uses running statistics")
               if mode == "eval" and has_bn else ""}
    expected = "zero input gradient from every other example"
    if leaks:
        return result(BATCH, "fail", _batch_leak_message(leaks, n) + _zero_note(perturbed), measured=measured,
                      expected=expected, details=details)
    if len(self_zero) == n:
        return result(BATCH, "fail", "the outputs do not depend on any input (all input gradients are zero, and no "
                      "all-zero weight explains it): the model ignores its input — a detached graph, or every output "
                      "read from a position that never sees the input (e.g. attention across the batch, not the "
                      "tokens)",
                      measured=measured, expected=expected, details=details)
    note = " (eval mode: batch norm uses running statistics)" if mode == "eval" and has_bn else ""
    return result(BATCH, "pass", f"each of {n} outputs depends only on its own example{note}." + _zero_note(perturbed),
                  measured=measured, expected=expected, details=details)


def _causal_leak_message(offending, T):
    """What the measured leak pattern is, and the causes that produce that pattern."""
    t0, s0 = offending[0]["t"], offending[0]["depends_on"][0]
    head = f"the output at time {t0} depends on the input at time {s0} (the future; {len(offending)} positions leak)"
    contiguous = all(o["depends_on"] == list(range(o["t"] + 1, max(o["depends_on"]) + 1)) for o in offending)
    reach = {max(o["depends_on"]) - o["t"] for o in offending if max(o["depends_on"]) < T - 1}
    if contiguous and not reach:
        return (head + ": each position sees the whole future — no causal mask, a bidirectional layer, symmetric "
                "('same') padding of a convolution, or statistics (mean, norm, final state) over the whole sequence.")
    if contiguous and len(reach) == 1:
        k = reach.pop()
        return (head + f": each position sees exactly {k} step(s) ahead — an off-by-one (a mask's diagonal, "
                "inputs and targets shifted the wrong way, padding cut on the wrong side)"
                + (f", repeated through {k} stacked layers." if k > 1 else "."))
    return (head + ": positions see irregular parts of the future — a reshape that mixes time steps (view or reshape "
            "where a transpose belongs) or a normalisation over the time axis.")


@register(CAUSAL, "II.12", tasks=("sequence",), order=70)
def causality(session, *, examples: int = 2, max_positions: int = 64, mode: str = "eval", tol: float = 1e-6):
    """For each time t (up to ``max_positions``, evenly spread), backprop ``output[:, t].sum()``; any input
    time s > t with gradient above ``tol`` x the largest is a leak from the future."""
    x, y = split_tensors(session, "train", examples)
    if x.dim() < 2:
        return result(CAUSAL, "skip", f"sequence inputs must be (batch, time, ...), got shape {tuple(x.shape)}")
    model = session.new_model()
    mode, _ = _mode(model, mode)
    T = x.shape[1]
    with torch.no_grad():
        out = model(x)
    if out.dim() < 2 or out.shape[1] != T:
        return result(CAUSAL, "skip", f"the model returns shape {tuple(out.shape)} for inputs {tuple(x.shape)}: "
                      "causality needs one output per time step, (batch, time, ...); for a time-first model pass "
                      "Session(time_first=True)")
    perturbed = unblock(model, x, session.seed)
    times = torch.linspace(0, T - 1, min(T, max_positions)).round().long().unique().tolist()
    offending, matrix = [], {}
    for t in times:
        g, _ = _grad_of(model, x, lambda o, t=t: o[:, t], session.seed)
        per_time = g.reshape(g.shape[0], g.shape[1], -1).sum(-1).sum(0)  # (T,)
        matrix[t] = per_time.tolist()
        top = float(per_time.max())
        future = [s for s in range(t + 1, T) if per_time[s] > tol * max(top, 1e-30)]
        if future:
            offending.append({"t": t, "depends_on": future})
    measured = {"positions_checked": len(times), "leaking_positions": len(offending), "T": T}
    details = {"dependency": matrix, "leaks": offending, "mode": mode, "perturbed": perturbed}
    expected = "output at t has zero gradient w.r.t. inputs at s > t"
    if offending:
        return result(CAUSAL, "fail", _causal_leak_message(offending, T) + _zero_note(perturbed), measured=measured,
                      expected=expected, details=details)
    return result(CAUSAL, "pass", f"no output depends on future inputs ({len(times)} positions of {T} checked)."
                  + _zero_note(perturbed), measured=measured, expected=expected, details=details)
