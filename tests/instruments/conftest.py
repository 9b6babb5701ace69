"""A hand-written training loop that emits the session's events like the Trainer does.

Tests use it to hold the weights before and after each optimizer step, the activations and the
gradients — the independent side of each instrument's numbers.
"""

from types import SimpleNamespace

import pytest
import torch


class ManualRun:
    """Just enough of a Run for the instruments: an id, a log, a stop flag, the model."""

    def __init__(self, model):
        self.id, self.model, self.logged, self.stopped = "manual", model, [], False

    def log(self, record):
        self.logged.append(record)

    def stop(self):
        self.stopped = True


def drive(session, model, steps, lr=1e-2, batch_size=32):
    """Train ``model`` with Adam for ``steps`` steps, emitting events; returns per-step weights before/after."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = session.loader("train", batch_size=batch_size, seed=0)
    run = ManualRun(model)
    trainer = SimpleNamespace(model=model, optimizer=opt, task=session.task, epoch=0, step=0,
                              steps_per_epoch=len(loader), session=session)
    session.emit("run_start", run=run, trainer=trainer)
    saved = {}
    step = 0
    while step < steps:
        for x, y in loader:
            x, y = x.to(session.device), y.to(session.device)
            step += 1
            trainer.step = step
            out = model(x)
            loss = session.data_loss(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            session.emit("after_backward", run=run, trainer=trainer, step=step, model=model, optimizer=opt)
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
            opt.step()
            after = {n: p.detach().clone() for n, p in model.named_parameters()}
            saved[step] = SimpleNamespace(before=before, after=after, grads=grads, loss=loss.item())
            session.emit("step_end", run=run, trainer=trainer, step=step, epoch=step / len(loader),
                         data_loss=loss.detach(), reg_loss=0.0, model=model, x=x, y=y, output=out)
            session.emit("steps_logged", run=run, records=[{
                "kind": "step", "step": step, "epoch": step / len(loader), "data_loss": loss.item(), "reg_loss": 0.0,
                "loss": loss.item(), "lr": lr}])
            if step >= steps or run.stopped:
                break
        if run.stopped:
            break
    session.emit("run_end", run=run, status="completed")
    return run, saved


@pytest.fixture
def manual():
    return drive
