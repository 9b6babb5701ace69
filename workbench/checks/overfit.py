"""overfit_batch (recipe II.8, L.3): can the model drive the loss to ~0 on a few fixed mini-batches?

Regularization and augmentation off, the same fixed examples for training and evaluation. A model
that cannot memorise 64-640 examples has a bug (or far too little capacity). Reaching 100%
accuracy with the loss stuck high is the signature of probabilities fed to a loss that applies its
own softmax: the loss floor of cross-entropy on softmax outputs is log(e + C - 1) - 1.
"""

from __future__ import annotations

import math

from workbench.checks.base import evaluate_on, register, result, train_steps

NAME = "overfit_batch"


@register(NAME, "II.8", order=100)
def check(session, *, batches: int = 1, batch_size: int | None = None, steps: int = 500, lr: float = 3e-3,
          target_loss: float = 0.02, eval_every: int = 10):
    """Train on ``batches`` fixed mini-batches (the first examples of the training set, 5-10 for L.3)
    for up to ``steps`` full-batch Adam steps; pass when the eval-mode loss on them is below
    ``target_loss`` (x var(y) for regression) and the accuracy is 100%."""
    bs = int(batch_size or session.batch_size)
    n = min(len(session.train), bs * int(batches))
    x, y = session.batch("train", n)
    x, y = x.to(session.device), y.to(session.device)
    classify = session.task.name != "regression"
    goal = target_loss if classify else target_loss * session.task.expected_init_loss(y.cpu())
    model = session.new_model()
    evals, reached = [], None

    def judge(engine, *_):  # evaluate every eval_every steps; stop as soon as the batch is memorised
        nonlocal reached
        if engine.step % eval_every and engine.step != steps:
            return False
        ev = evaluate_on(session, model, x, y)
        evals.append({"step": engine.step, **ev})
        if ev["loss"] <= goal and (not classify or ev["metric"] >= 1.0):
            reached = engine.step
            return True
        return False

    # data loss only: regularization off (L.3); the same fixed batch every step
    curve = train_steps(session, model, (x, y), steps, lr=lr, on_step=judge)
    last = evals[-1] if evals else {"loss": float("nan"), "metric": float("nan")}
    measured = {"final_loss": last["loss"], session.task.metric: last["metric"], "steps": reached or len(curve),
                "initial_loss": curve[0] if curve else float("nan"), "examples": n}
    expected = {"loss_below": goal, **({session.task.metric: 1.0} if classify else {})}
    details = {"curve": curve, "evals": evals, "budget": steps}
    if reached is not None:
        return result(NAME, "pass", f"memorised {n} examples: loss {curve[0]:.3g} → {last['loss']:.3g} in "
                      f"{reached} steps, {session.task.metric} {last['metric']:.0%}.", measured=measured,
                      expected=expected, details=details)
    if not curve or not math.isfinite(curve[-1]):
        return result(NAME, "fail", "the loss became NaN/inf while overfitting a batch: lower the learning rate "
                      "or look for a numerically unsafe op (log of 0, division)", measured=measured,
                      expected=expected, details=details)
    c = session.num_classes or 0
    floor = math.log(math.e + c - 1) - 1 if classify and c > 1 else None
    if classify and last["metric"] >= 1.0 and floor is not None and abs(last["loss"] - floor) < 0.1 * floor + 0.02:
        msg = (f"accuracy reached 100% but the loss is stuck at {last['loss']:.3g}, the floor of cross-entropy on "
               f"softmax outputs (log(e+{c}-1)-1 = {floor:.3g}): the model applies softmax before a loss that "
               "applies its own — return raw logits.")
        details["softmax_floor"] = floor
    else:
        msg = (f"could not overfit {n} examples in {steps} steps (loss {curve[0]:.3g} → {last['loss']:.3g}, "
               f"{session.task.metric} {last['metric']:.3g}): look for a bug in the model or the loss, try other "
               "learning rates and initialisations, or a bigger model.")
    return result(NAME, "fail", msg, measured=measured, expected=expected, details=details)
