"""The one evaluation function: mean loss and metric of a model over every example it is given (recipe II.3).

Given a split name it reads the whole split through the session's loader; given an ``(x, y)`` pair
of tensors it reads them in chunks. Sums stay on the device and are read once at the end.
"""

from __future__ import annotations

import torch
from torch import nn

from workbench.engine.precision import autocast


@torch.no_grad()
def evaluate(session, model: nn.Module, data="eval", *, batch_size: int = 512, precision: str = "32",
             channels_last: bool = False, loss_fn=None) -> dict:
    """``{"loss", "metric", "n"}`` over every example of ``data`` (a split name, a DataLoader or an ``(x, y)`` pair),
    in eval mode (the model's mode is put back). ``loss_fn(out, y)`` defaults to the task's data loss."""
    task = session.task
    loss_fn = loss_fn or task.data_loss
    was = model.training
    model.eval()
    loss_sum = score_sum = None
    n = 0
    try:
        for x, y in _batches(session, data, batch_size):
            x, y = x.to(session.device, non_blocking=True), y.to(session.device, non_blocking=True)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(session.device, precision):
                out = model(x)
            out = out.float() if out.is_floating_point() else out
            # float64 sums: thousands of batches add up without float32 rounding
            loss = loss_fn(out, y).detach().double() * len(y)
            sc, cnt = task.score_tensor(out, y)
            loss_sum = loss if loss_sum is None else loss_sum + loss
            score_sum = sc if score_sum is None else score_sum + sc
            n += cnt
    finally:
        model.train(was)
    if loss_sum is None:
        return {"loss": float("nan"), "metric": float("nan"), "n": 0}
    loss_v, score_v = torch.stack([loss_sum.reshape(()), torch.as_tensor(score_sum, device=loss_sum.device)
                                   .double().reshape(())]).tolist()
    return {"loss": loss_v / max(n, 1), "metric": score_v / max(n, 1), "n": n}


def _batches(session, data, batch_size):
    if isinstance(data, str):
        return session.loader(data, shuffle=False, batch_size=batch_size)
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        return ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))
    return data


