"""determinism (recipe II.1): two short trainings from the same seed must give identical losses.

Both runs go through the session's own seeded DataLoader (so random transforms in the dataset are
covered) and Adam. When they differ the check says where first: the initial weights (an unseeded
generator in the model's construction), the data (unseeded randomness in the dataset or its
transforms), the forward pass (noise drawn from numpy, python ``random`` or a torch.Generator that
the seed does not reach) or later steps (non-deterministic kernels: ``torch.use_deterministic_algorithms``).
"""

from __future__ import annotations

import itertools

import torch

from workbench.checks.base import register, result, train_steps

NAME = "determinism"


def _run(session, steps, lr):
    """One short training on the engine (the loop fit uses), from the session's seed; what each step saw."""
    model = session.new_model()
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    loader = session.loader("train", shuffle=True, seed=session.seed)
    trace = []

    def keep(engine, x, y, out, loss):
        trace.append({"x": x.detach().clone(), "y": y.detach().clone(), "out": out.detach().clone(), "loss": loss})

    epochs = itertools.chain.from_iterable(loader for _ in itertools.count())  # reshuffles each epoch
    train_steps(session, model, epochs, steps, lr=lr, on_step=keep)
    for t in trace:
        t["loss"] = float(t["loss"])  # read once the training is done: no sync per step
    return init, trace


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b) or (torch.isnan(a) == torch.isnan(b)).all()
                                       and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))


@register(NAME, "II.1", order=45)
def check(session, *, steps: int = 8, lr: float = 1e-3):
    """Train twice for ``steps`` batches from the session's seed and compare weights, data, outputs and
    losses exactly, step by step."""
    init_a, a = _run(session, steps, lr)
    init_b, b = _run(session, steps, lr)
    losses = [[s["loss"] for s in a], [s["loss"] for s in b]]
    measured = {"steps": len(a), "max_loss_difference": max((abs(p - q) for p, q in zip(*losses, strict=True)),
                                                              default=0.0)}
    details = {"losses_a": losses[0], "losses_b": losses[1]}
    expected = "identical losses at every step"
    diff_w = [k for k in init_a if not _same(init_a[k], init_b[k])]
    if diff_w:
        measured["first_difference_step"] = 0
        return result(NAME, "fail", f"two models built with the same seed start from different weights "
                      f"({', '.join(diff_w[:3])}): the model's construction draws from a generator the seed does "
                      "not reach (numpy default_rng(), an unseeded torch.Generator, time).", measured=measured,
                      expected=expected, details={**details, "differs": "initial weights", "tensors": diff_w})
    for step, (p, q) in enumerate(zip(a, b, strict=True), start=1):
        if not (_same(p["x"], q["x"]) and _same(p["y"], q["y"])):
            where, msg = "data", (f"the batches differ at step {step}: the dataset or its transforms use randomness "
                                  "the seed does not reach (seed numpy/random, or pass a seeded generator).")
        elif not _same(p["out"], q["out"]):
            where = "forward"
            msg = (f"the same weights and batch give different outputs at step {step}: the forward pass draws random "
                   "numbers outside torch's seeded generator (numpy, python random, an unseeded torch.Generator)"
                   if step == 1 else f"the outputs first differ at step {step} (same data): the backward or the "
                   "optimizer step is not deterministic — try torch.use_deterministic_algorithms(True).")
        elif p["loss"] != q["loss"]:
            where, msg = "loss", f"the loss differs at step {step} with identical outputs: the loss is random."
        else:
            continue
        measured["first_difference_step"] = step
        details.update(differs=where, step=step)
        return result(NAME, "fail", msg, measured=measured, expected=expected, details=details)
    return result(NAME, "pass", f"two runs from seed {session.seed} agree exactly for {len(a)} steps "
                  "(weights, batches, outputs, losses).", measured=measured, expected=expected, details=details)
