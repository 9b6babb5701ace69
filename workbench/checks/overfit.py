"""overfit_batch (recipe II.8, L.3): can the model drive the loss to what a few fixed mini-batches allow?

Regularization (the penalty and dropout) and augmentation off, the same fixed examples for training
and evaluation. The goal is what the batch allows, not a flat 0: identical contexts with different
targets (sequences sharing a prefix, duplicated images with different labels) bound the loss from
below and the accuracy from above (``workbench.checks.achievable``). A model that cannot get there
on 64-640 examples has a bug (or far too little capacity). When every example is right but the loss
stops falling well above the floor, the outputs are squashed before the loss; at the floor of
cross-entropy on softmax outputs, log(e + C - 1) - 1, the cause is named.
"""

from __future__ import annotations

import math

import torch

from workbench.checks.achievable import achievable
from workbench.checks.base import evaluate_on, frozen_skip, register, result, train_steps

NAME = "overfit_batch"


def _goal(session, x, y, target_loss):
    real = session.task.real_valued
    bound = achievable(x, y, causal=session.task.name == "sequence", real=real)
    scale = session.task.expected_init_loss(y.cpu()) if real else 1.0
    return bound, bound["loss_floor"] + target_loss * (scale or 1.0)


def _falling(evals, rel=0.05) -> bool:
    """True when the eval loss still fell by more than ``rel`` over the last fifth of the evaluations."""
    if len(evals) < 5:
        return False
    k = max(1, len(evals) // 5)
    before, now = evals[-1 - k]["loss"], evals[-1]["loss"]
    return now < before * (1 - rel)


def dropout_off(model) -> None:
    """Dropout to eval mode (the rest of the model stays in train mode): dropout is regularization, off for L.3."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.eval()


def _stalled(evals, window: int = 15, rel: float = 0.01) -> bool:
    """True when the best eval loss of the last ``window`` evaluations is within ``rel`` of the best before."""
    if len(evals) <= 2 * window:
        return False
    before = min(e["loss"] for e in evals[:-window])
    return min(e["loss"] for e in evals[-window:]) > before * (1 - rel)


def _quartered_since_all_right(evals, best_metric) -> bool:
    """True when every example has been right for 5+ evaluations and the loss has since fallen 4x (still falling
    steadily: the verdict is a pass, only the loss's last digits are left)."""
    if best_metric is None:
        return False
    right = [i for i, e in enumerate(evals) if e["metric"] >= best_metric - 1e-9]
    if not right or len(evals) - right[0] < 5 or evals[-1]["metric"] < best_metric - 1e-9:
        return False
    return evals[-1]["loss"] < 0.25 * evals[right[0]]["loss"]


@register(NAME, "II.8", order=100)
def check(session, *, batches: int = 1, batch_size: int | None = None, steps: int = 1000, lr: float = 3e-3,
          target_loss: float = 0.02, eval_every: int = 10, stop_early: bool = True):
    """Train on ``batches`` fixed mini-batches (the first examples of the training set, 5-10 for L.3)
    for up to ``steps`` full-batch Adam steps; pass when the eval-mode loss on them is within ``target_loss``
    (x var(y) for real targets) of the floor the batch allows and the accuracy is the most it allows.
    Training stops once the loss has stalled for 150 steps unless ``stop_early=False``."""
    bs = int(batch_size or session.batch_size)
    n = min(len(session.train), bs * int(batches))
    x, y = session.batch("train", n)
    x, y = x.to(session.device), y.to(session.device)
    classify = not session.task.real_valued
    bound, goal = _goal(session, x, y, target_loss)
    best_metric = bound["max_accuracy"] if classify else None
    model = session.new_model()
    skip = frozen_skip(NAME, model)
    if skip is not None:
        return skip
    evals, reached = [], None

    def judge(engine, *_) -> bool:  # evaluate every eval_every steps; stop at the goal, when stalled, or the cap
        nonlocal reached
        step = engine.step
        if step % eval_every and step != steps:
            return False
        ev = evaluate_on(session, model, x, y)
        dropout_off(model)  # the evaluation put every module back in train mode
        evals.append({"step": step, **ev})
        if ev["loss"] <= goal and (not classify or ev["metric"] >= best_metric - 1e-9):
            reached = step
            return True
        # the verdict is clear: ``steps`` is only the budget's cap
        return stop_early and (_stalled(evals) or _quartered_since_all_right(evals, best_metric))

    # data loss only: regularization off (L.3); the same fixed batch every step; dropout off
    curve = train_steps(session, model, (x, y), steps, lr=lr, on_step=judge, mode=dropout_off)
    last = evals[-1] if evals else {"loss": float("nan"), "metric": float("nan")}
    return _verdict(session, n, steps, curve, evals, last, reached, bound, goal, best_metric)


def _verdict(session, n, steps, curve, evals, last, reached, bound, goal, best_metric):
    metric = session.task.metric
    classify = best_metric is not None
    measured = {"final_loss": last["loss"], metric: last["metric"], "steps": reached or len(curve),
                "initial_loss": curve[0] if curve else float("nan"), "examples": n,
                "loss_floor": bound["loss_floor"]}
    expected = {"loss_below": goal, **({metric: best_metric} if classify else {})}
    details = {"curve": curve, "evals": evals, "budget": steps, "achievable": bound}
    floor_note = ""
    if bound["ambiguous"]:
        floor_note = (f" The batch allows no better: {bound['ambiguous']} predictions share their context with a "
                      f"different target (loss floor {bound['loss_floor']:.3g}"
                      + (f", accuracy at most {best_metric:.1%}" if classify else "") + ").")
    if reached is not None:
        return result(NAME, "pass", f"memorised {n} examples: loss {curve[0]:.3g} → {last['loss']:.3g} in {reached} "
                      f"steps, {metric} {last['metric']:.3g}.{floor_note}", measured=measured, expected=expected,
                      details=details)
    if not curve or not math.isfinite(curve[-1]):
        return result(NAME, "fail", "the loss became NaN/inf while overfitting a batch: lower the learning rate "
                      "or look for a numerically unsafe op (log of 0, division)", measured=measured,
                      expected=expected, details=details)
    all_right = classify and last["metric"] >= best_metric - 1e-9
    if all_right and _falling(evals):
        return result(NAME, "pass", f"memorised {n} examples: {metric} {last['metric']:.1%} (the most the batch "
                      f"allows) in {len(curve)} steps; the loss {last['loss']:.3g} is still falling (from "
                      f"{curve[0]:.3g}), slowly, as with frozen layers or a small head.{floor_note}",
                      measured=measured, expected=expected, details=details)
    if all_right:
        c = session.num_classes or 0
        floor = math.log(math.e + c - 1) - 1 if c > 1 else None
        if floor is not None and abs(last["loss"] - floor) < 0.1 * floor + 0.02:
            details["softmax_floor"] = floor
            msg = (f"every example is right but the loss is stuck at {last['loss']:.3g}, the floor of cross-entropy "
                   f"on softmax outputs (log(e+{c}-1)-1 = {floor:.3g}): the model applies softmax before a loss that "
                   "applies its own — return raw logits.")
        else:
            msg = (f"every example is right but the loss stopped falling at {last['loss']:.3g}, above the "
                   f"{goal:.3g} the batch allows: the outputs are bounded before the loss (a softmax, sigmoid or "
                   "clamp in the model), or the loss has a term that cannot reach zero.")
        return result(NAME, "fail", msg + floor_note, measured=measured, expected=expected, details=details)
    got = f"{metric} {last['metric']:.3g}" + (f" of {best_metric:.3g} possible" if classify else "")
    return result(NAME, "fail", f"could not overfit {n} examples in {steps} steps (loss {curve[0]:.3g} → "
                  f"{last['loss']:.3g}, floor {bound['loss_floor']:.3g}; {got}): look for a bug in the model or the "
                  f"loss, try other learning rates and initialisations, or a bigger model.{floor_note}",
                  measured=measured, expected=expected, details=details)
