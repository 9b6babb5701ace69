"""Does the model use its input? input_independent (recipe II.7) and generalization (L.3 note).

input_independent trains the same seeded model twice on the same batches, once with every input
zeroed, and compares the held-out loss: real inputs must clearly win. A model that cannot take an
all-zero input (one that standardises each input divides 0 by 0) gets the mean training input
instead: just as constant, and the verdict says so. generalization trains briefly
on the full training set and asks the held-out metric to clearly beat chance and the best
input-independent (constant) prediction: a model can overfit a small sample with features unrelated
to the input (a bug such as labels shuffled apart from their inputs) but then fails here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workbench.checks.base import (
    batches,
    eval_subset,
    evaluate_on,
    frozen_skip,
    register,
    result,
    smoothed,
    split_tensors,
    train_steps,
)

II7, GEN = "input_independent", "generalization"


def _eval_limit(session, eval_examples):
    return eval_subset(len(session.split(session.eval_split)), eval_examples)


def constant_input(session, model) -> tuple[callable, str]:
    """(batch -> constant batch, what it is): zeros (recipe II.7), or the mean training input when the model
    gives non-finite outputs on zeros."""
    x, _ = split_tensors(session, "train", 256)
    with torch.no_grad():
        model.eval()
        finite = bool(torch.isfinite(model(torch.zeros_like(x[:2]))).all())
        model.train()
    if finite or not x.is_floating_point():
        return torch.zeros_like, "zeros"
    mean = x.mean(0, keepdim=True)
    return (lambda b: mean.expand_as(b).clone()), "mean training input"


_PEEK = 256  # held-out examples the early stops look at (eval mode: batch norm's running statistics count)


def held_out_stop(session, model, x, y, done, every: int = 10, min_steps: int = 20):
    """A ``stop(step, losses)`` for train_steps: every ``every`` steps from ``min_steps`` on, the eval-mode loss
    of ``model`` on ``x``/``y`` joins a history, and training stops when ``done(history)``."""
    history = []

    def stop(step, losses):
        if step < min_steps or step % every:
            return False
        history.append(evaluate_on(session, model, x, y)["loss"])
        return bool(done(history))

    return stop


@register(II7, "II.7", order=110)
def input_independent(session, *, steps: int = 150, lr: float = 3e-3, margin: float = 0.1,
                      eval_examples: int | None = None, stop_early: bool = True):
    """Train up to ``steps`` batches with zeroed inputs (until their held-out loss stops falling), then with
    real ones (same seed, same batches; until their held-out loss is clearly below the zero-input one); the held-out
    loss with real inputs must be at least ``margin`` (relative) below the zero-input loss.
    ``eval_examples``: held-out examples evaluated (None: all, up to 1024). ``stop_early=False``: always the
    full ``steps`` (the long budget the early stops are compared with in benchmarks/bench_checks.py)."""
    xe, ye = split_tensors(session, session.eval_split, _eval_limit(session, eval_examples))
    model = session.new_model()
    skip = frozen_skip(II7, model)
    if skip is not None:
        return skip
    const, what = constant_input(session, model)
    xs, ys = xe[:_PEEK], ye[:_PEEK]
    runs = {}
    for kind in ("zeros", "real"):
        model = session.new_model()
        x_peek = const(xs) if kind == "zeros" else xs
        if kind == "zeros":  # until the held-out loss stops falling
            done = (lambda h: len(h) >= 2 and h[-1] > min(h[:-1]) * 0.99)
        else:  # until real inputs are clearly below the zero-input level on held-out data
            level = evaluate_on(session, runs["zeros"]["model"], const(xs), ys)["loss"]
            done = (lambda h, level=level: h[-1] < level * (1 - 2 * margin))
        stop = held_out_stop(session, model, x_peek, ys, done) if stop_early else None
        losses = train_steps(session, model, batches(session, transform=const if kind == "zeros" else None), steps,
                             lr=lr, stop=stop)
        ev = evaluate_on(session, model, const(xe) if kind == "zeros" else xe, ye)
        runs[kind] = {**ev, "losses": losses, "steps": len(losses), "model": model}
    for run in runs.values():
        run.pop("model")
    z, r = runs["zeros"]["loss"], runs["real"]["loss"]
    gain = (z - r) / abs(z) if z and math.isfinite(z) else float("nan")
    measured = {"loss_real": r, "loss_zeros": z, "relative_gain": gain,
                f"{session.task.metric}_real": runs["real"]["metric"],
                f"{session.task.metric}_zeros": runs["zeros"]["metric"],
                "steps": [runs["zeros"]["steps"], runs["real"]["steps"]], "eval_examples": len(ye)}
    expected = {"loss_real_below": z * (1 - margin)}
    for run in runs.values():
        curve = run.pop("losses")
        run["train_curve"] = curve[:: max(1, len(curve) // 50)]
    details = {"runs": runs, "eval_split": session.eval_split, "constant_input": what}
    used = "" if what == "zeros" else (" All-zero inputs give non-finite outputs in this model (it normalises each "
                                       "input), so the constant input was the mean training input.")
    if not math.isfinite(r):
        return result(II7, "fail", "training on real inputs diverged (loss not finite)" + used, measured=measured,
                      expected=expected, details=details)
    if not math.isfinite(z):
        return result(II7, "fail", f"training on a constant input ({what}) gives a non-finite loss: the model cannot "
                      "take a constant input" + used, measured=measured, expected=expected, details=details)
    if gain >= margin:
        return result(II7, "pass", f"real inputs beat constant inputs ({what}): held-out loss {r:.3g} vs {z:.3g} "
                      f"({gain:.0%} lower).{used}", measured=measured, expected=expected, details=details)
    return result(II7, "fail", f"real inputs barely beat constant inputs ({what}; held-out loss {r:.3g} vs {z:.3g}): "
                  "the model is not extracting information from its input — check that inputs and labels stay "
                  f"paired through the pipeline and look at the batch view (II.10).{used}", measured=measured,
                  expected=expected, details=details)


def constant_baseline(session, y_eval: torch.Tensor) -> dict:
    """The best input-independent prediction, fit on the training labels, scored on the held-out labels."""
    y_train = session.labels("train").to(y_eval.device)
    if session.task.real_valued:
        mean = y_train.float().mean(0)
        mse = float(((y_eval.float() - mean) ** 2).reshape(len(y_eval), -1).mean())
        return {"loss": mse, "metric": mse}
    c = session.num_classes
    counts = torch.bincount(y_train.reshape(-1).long(), minlength=c).double() + 1e-3
    logp = (counts / counts.sum()).log().float().to(y_eval.device)
    yv = y_eval.reshape(-1).long()
    loss = float(F.cross_entropy(logp.expand(len(yv), -1), yv))
    majority = int(counts.argmax())
    return {"loss": loss, "metric": float((yv == majority).float().mean())}


@register(GEN, "L.3", order=120)
def generalization(session, *, steps: int = 300, lr: float = 3e-3, margin: float = 0.1,
                   eval_examples: int | None = None, stop_early: bool = True):
    """Train up to ``steps`` batches on the full training set (until the held-out loss is far below the
    constant prediction's); the held-out loss must be ``margin`` (relative) below the best constant
    prediction, and the metric clearly better than chance (3 standard errors). ``stop_early=False``: the
    full ``steps``."""
    xe, ye = split_tensors(session, session.eval_split, _eval_limit(session, eval_examples))
    base = constant_baseline(session, ye)
    model = session.new_model()
    skip = frozen_skip(GEN, model)
    if skip is not None:
        return skip
    target = constant_baseline(session, ye[:_PEEK])["loss"] * (1 - 3 * margin)
    stop = held_out_stop(session, model, xe[:_PEEK], ye[:_PEEK], lambda h: h[-1] < target) if stop_early else None
    losses = train_steps(session, model, batches(session), steps, lr=lr, stop=stop)
    ev = evaluate_on(session, model, xe, ye)
    higher = session.task.higher_is_better
    n = max(ev["n"], 1)
    p = min(max(base["metric"], 1e-6), 1 - 1e-6)
    se = math.sqrt(p * (1 - p) / n) if higher else 0.0
    metric_ok = ev["metric"] > base["metric"] + max(3 * se, 0.02) if higher else \
        ev["metric"] < base["metric"] * (1 - margin)
    loss_ok = ev["loss"] < base["loss"] * (1 - margin)
    measured = {"val_loss": ev["loss"], f"val_{session.task.metric}": ev["metric"],
                "constant_loss": base["loss"], f"chance_{session.task.metric}": base["metric"],
                "final_train_loss": smoothed(losses, 10), "steps": len(losses), "eval_examples": len(ye)}
    ii7 = session.results.get(II7)
    if ii7 is not None and ii7.status != "error" and math.isfinite(ii7.measured.get("loss_zeros", math.nan)):
        measured["input_independent_loss"] = ii7.measured["loss_zeros"]
        loss_ok = loss_ok and ev["loss"] < ii7.measured["loss_zeros"] * (1 - margin)
    expected = {"val_loss_below": base["loss"] * (1 - margin),
                f"val_{session.task.metric}_{'above' if higher else 'below'}":
                    base["metric"] + max(3 * se, 0.02) if higher else base["metric"] * (1 - margin)}
    details = {"train_curve": losses[:: max(1, len(losses) // 50)], "eval_split": session.eval_split}
    if loss_ok and metric_ok:
        return result(GEN, "pass", f"held-out {session.task.metric} {ev['metric']:.3g} beats chance "
                      f"{base['metric']:.3g} and the loss {ev['loss']:.3g} beats the constant prediction "
                      f"{base['loss']:.3g}.", measured=measured, expected=expected, details=details)
    train_fit = measured["final_train_loss"] < base["loss"] * (1 - margin)
    why = ("the model fits the training data but learns nothing that carries to held-out data: the labels may "
           "not belong to their inputs (shuffled apart), or the features are unrelated to the input"
           if train_fit else "the model learned nothing in the budget: check the learning rate and the pipeline "
           "(overfit_batch first)")
    ref = "chance" if higher else "the constant prediction"
    return result(GEN, "fail", f"held-out {session.task.metric} {ev['metric']:.3g} vs {ref} {base['metric']:.3g}, "
                  f"loss {ev['loss']:.3g} vs constant {base['loss']:.3g}: {why}.", measured=measured,
                  expected=expected, details=details)
