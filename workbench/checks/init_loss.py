"""init_loss (recipe II.4, L.1): the loss at initialisation, regularization off, against the value it must have.

C-class cross-entropy starts at log C when the scores are small and balanced; regression starts at
the MSE of predicting the target mean (the variance of y) when the outputs are near that mean. A
loss far above means over-confident or badly scaled initial scores (e.g. logits x50).
"""

from __future__ import annotations

import torch

from workbench.checks.base import register, result, split_tensors

NAME = "init_loss"


@register(NAME, "II.4", order=30)
def check(session, *, examples: int = 512, warn_tol: float = 0.1, fail_tol: float = 0.5):
    """Loss of a fresh seeded model on ``examples`` training examples vs log C / var(y).

    ``warn_tol``/``fail_tol``: allowed relative deviation |measured/expected - 1| before warn/fail.
    The model is evaluated in train mode (as training starts: batch norm on batch statistics).
    """
    y_all = session.labels("train")
    expected = session.task.expected_init_loss(y_all)
    if expected is None or expected <= 0:
        return result(NAME, "skip", "no expected initial loss is known for this task and loss")
    x, y = split_tensors(session, "train", examples)
    model = session.new_model()
    model.train()
    with torch.no_grad():
        out = model(x)
        loss = float(session.data_loss(out, y))  # data loss only: regularization off (L.1)
    ratio = loss / expected
    dev = abs(ratio - 1.0)
    measured = {"loss": loss, "expected": expected, "ratio": ratio,
                "output_std": float(out.float().std()), "n": len(y)}
    real = session.task.real_valued
    what = f"var(y) = {expected:.4g}" if real else f"log {session.num_classes} = {expected:.4g}"
    details = {"tolerances": {"warn": warn_tol, "fail": fail_tol}}
    if real:
        details["target_mean"] = session.labels("train").float().mean(0).tolist()
    if not torch.isfinite(torch.tensor(loss)):
        return result(NAME, "fail", "the loss at initialisation is not finite: check the model's output "
                      "and the loss function", measured=measured, expected=expected, details=details)
    if dev <= warn_tol:
        status, msg = "pass", f"initial loss {loss:.4g} matches {what} (ratio {ratio:.3f})."
    elif real and 1 - fail_tol <= ratio < 1:
        # MSE below var(y) at init: random features of inputs that hold lagged targets already correlate with
        # them (forecasting); only a far lower loss hints at targets leaking into the inputs
        status, msg = "pass", (f"initial loss {loss:.4g} is below {what} (ratio {ratio:.2f}): the untrained model's "
                               "predictions already correlate with the targets, as when inputs hold earlier values.")
    else:
        status = "warn" if dev <= fail_tol else "fail"
        if real and ratio > 1:
            hint = "set the output bias to the target mean (II.5, see bias_init) or standardise the targets"
        elif real:
            hint = ("the untrained model already explains most of the targets' variance: look for targets leaking "
                    "into the inputs")
        elif ratio > 1:
            hint = ("the initial scores are too large or confident: scale down the last layer's weights "
                    "(or zero them) so the model starts near uniform predictions")
        else:
            hint = ("the initial loss is below chance: the model knows the answer before training — look for "
                    "labels leaking into the inputs or a loss that is not the plain data loss")
        msg = f"initial loss {loss:.4g} vs {what} (ratio {ratio:.2f}): {hint}."
    return result(NAME, status, msg, measured=measured, expected=expected, details=details)
