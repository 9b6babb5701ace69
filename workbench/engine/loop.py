"""The engine: the package's only optimizer-step loop (recipe II-IV; one loop, configured, never copied).

``Session.fit`` and ``resume``, every check that trains, the LR finder, search trials, the
cross-validated label model, ensemble members and distillation are configurations of it: a model,
an optimizer, a loss function ``loss_fn(model, x, y) -> (loss, parts, output)`` and a budget in
epochs (``run_epochs``: whole-set evaluation after each, II.3) or in steps (``run_steps``). Per-step
losses stay on the device and are read in batches (``StepLog``); checkpoints go to a background
writer; precision, channels_last and torch.compile are switches. Randomness comes from the job's
own ``RngStream``, installed only for the span of a step.

Run callbacks are objects with any of ``on_run_start(engine)``, ``on_step_end(engine)``,
``on_epoch_end(engine, row)`` (may add columns to the epoch's row) and ``on_run_end(engine)``;
session-wide subscribers use ``session.on(...)`` instead. Instruments read the engine's ``model``,
``optimizer``, ``task``, ``step``, ``epoch`` and ``steps_per_epoch``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from workbench.engine.checkpoint import CheckpointWriter
from workbench.engine.evaluate import evaluate as evaluate_fn
from workbench.engine.precision import autocast, check_precision, grad_scaler
from workbench.engine.rng import RngStream
from workbench.engine.steplog import StepLog
from workbench.errors import ModelError


def session_loss(session, reg_strength: float | None = None) -> Callable:
    """The session's objective: the task's data loss plus the regularization term (logged apart, III.R8)."""
    k = session.reg_strength if reg_strength is None else float(reg_strength)

    def loss_fn(model, x, y):
        out = model(x)
        data = session.task.data_loss(out, y)
        if not k:
            return data, {"data_loss": data}, out
        reg = session.reg_loss(model, k)
        return data + reg, {"data_loss": data, "reg_loss": reg}, out

    return loss_fn


class Engine:
    """One model training: the step, the epoch, the evaluation, the step log and the checkpoints."""

    def __init__(self, session, model: nn.Module, optimizer: torch.optim.Optimizer, *, loss_fn=None, run=None,
                 events: bool = True, precision: str = "32", channels_last: bool = False, compile: bool = False,
                 scheduler=None, augment=None, callbacks=(), log_every: int = 32, rng: RngStream | None = None,
                 config: dict | None = None, checkpoint_every: int = 0):
        self.session, self.task, self.device = session, session.task, session.device
        self.model, self.optimizer, self.run = model, optimizer, run
        self.config = dict(config or {})
        self.loss_fn = loss_fn or session_loss(session, self.config.get("reg_strength"))
        self.precision = check_precision(precision)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        # compile wraps the forward only; the raw module stays what instruments, checkpoints and views see
        self.forward_model = torch.compile(model) if compile else model
        self.scaler = grad_scaler(self.device, self.precision)
        self.scheduler, self.augment = scheduler, augment
        self.callbacks = list(callbacks)
        self.events = bool(events) and run is not None
        self.rng = rng or RngStream(session.seed)
        self.steplog = StepLog(run, session.emit if self.events else None, every=log_every)
        self.checkpoint_every = int(checkpoint_every or 0)
        self.writer: CheckpointWriter | None = None
        self.step = self.epoch = 0
        self.steps_per_epoch = 1
        self.loader = None
        self._eval_loader = None
        self._epoch_start_loader = None  # the loader's generator as the epoch began (mid-epoch checkpoints)
        self._batch_in_epoch = 0
        self._resume_skip = 0

    @classmethod
    def quiet(cls, session, model: nn.Module, optimizer, *, seed: int | None = None, reg_strength=None) -> Engine:
        """An engine with no run on disk and no events: for the checks, the LR finder, label cross-validation."""
        return cls(session, model, optimizer, run=None, events=False, config={"reg_strength": reg_strength},
                   rng=RngStream(session.seed if seed is None else int(seed)))

    # -- one step ---------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor):
        """One optimizer step on a batch; returns ``(loss, parts, output)`` as device tensors (no host sync)."""
        model, opt = self.model, self.optimizer
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.rng.active(torch_only=True):  # per step: torch's generators only (the cost, see rng.py)
            if self.augment is not None:
                x = self.augment(x)
            try:
                with autocast(self.device, self.precision):
                    loss, parts, out = self.loss_fn(self.forward_model, x, y)
            except ModelError:
                raise
            except Exception as e:  # noqa: BLE001 - the user's model: say where it broke
                raise ModelError(f"the model raised {type(e).__name__} on a training batch of shape "
                                 f"{tuple(x.shape)}: {e}") from e
            if self.step == 0:
                self.task.check_output(out, y)
            self.last_parts, self.last_batch = parts, len(y)  # for callbacks that sum named parts
            opt.zero_grad(set_to_none=True)
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        self.step += 1
        if self.events and self.session.bus.has("after_backward"):
            if self.scaler is not None:
                self.scaler.unscale_(opt)  # instruments read true gradient norms
            self.session.emit("after_backward", run=self.run, trainer=self, step=self.step, model=model,
                              optimizer=opt)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        return loss.detach(), parts, out

    def _log_step(self, epoch_pos: float, parts: dict) -> None:
        due = self.steplog.add(self.step, epoch_pos, parts, self.optimizer.param_groups[0]["lr"])
        if due:
            self.steplog.flush()

    # -- step budget ------------------------------------------------------------------------------
    def run_steps(self, batches: Iterable | tuple, steps: int, on_step=None, mode=None) -> list[float]:
        """Up to ``steps`` steps on ``batches`` (an iterator of ``(x, y)``, or one fixed pair); the data losses.

        ``on_step(engine, x, y, out, loss)`` may return True to stop. Stops at a NaN/inf loss (seen when
        the buffered losses are read: every ``log_every`` steps). ``mode(model)`` runs after ``model.train()``
        (e.g. dropout off for overfit_batch); ``on_step`` puts it back if it evaluates in between.
        """
        self.steplog.keep = True
        self.model.train()
        if mode is not None:
            mode(self.model)
        fixed = isinstance(batches, tuple)
        it = None if fixed else iter(batches)
        for _ in range(int(steps)):
            x, y = batches if fixed else next(it)
            loss, parts, out = self.train_step(x, y)
            self._log_step(float(self.step), parts)
            if self.steplog.diverged is not None:
                break
            if on_step is not None and on_step(self, x, y, out, loss):
                break
        self.steplog.flush()
        return list(self.steplog.values)

    # -- epoch budget -----------------------------------------------------------------------------
    def run_epochs(self, loader, epochs: int, *, early=None, checkpoint: bool = True) -> str:
        """Train until ``epochs`` epochs are done; after each, evaluate the whole held-out set (II.3).

        Returns the run's status: completed, stopped (``run.stop()``), diverged (NaN/inf loss, or a
        non-finite validation loss after an epoch).
        """
        self.loader = loader
        self.steps_per_epoch = max(1, len(loader))
        self.writer = (CheckpointWriter(self.run, background=self.device.type != "cpu")
                       if (checkpoint and self.run is not None) else None)
        self._callback("on_run_start")
        if self.events:
            self.session.emit("run_start", run=self.run, trainer=self)
        status = "completed"
        try:
            while self.epoch < epochs:
                status = self._train_epoch()
                if status != "running":
                    break
                row = self._end_epoch()
                if not math.isfinite(row["val_loss"]):
                    status = "diverged"  # e.g. lr=inf: finite training losses can still leave NaN weights
                    self._log({"kind": "diverged", "step": self.step, "epoch": self.epoch, "where": "val_loss"})
                    break
                if early is not None and early.update(row, self.model):
                    restored = early.restore_best and early.best_state is not None
                    if restored:
                        self.model.load_state_dict(early.best_state)
                    # "restored": the run's model is the best epoch's (its checkpoint), not the last one's
                    self._log({"kind": "early_stop", "epoch": self.epoch, "best_epoch": early.best_epoch,
                               "best": early.best, "monitor": early.monitor, "restored": restored})
                    status = "completed"
                    break
                if self.run is not None and self.run.stop_requested:
                    status = "stopped"
                    break
                status = "completed"
        finally:
            self.steplog.flush()
            if self.writer is not None:
                self.writer.close()
        if self.steplog.diverged is not None:
            status = "diverged"  # the last read found a NaN/inf loss (a trap's stop is that too)
        return status

    def _train_epoch(self) -> str:
        self.model.train()
        n_train = len(self.loader.dataset)
        seen, loss_sum, score_sum = 0, None, None
        gen = getattr(self.loader, "generator", None)
        self._epoch_start_loader = gen.get_state() if gen is not None else None
        skip, self._resume_skip = self._resume_skip, 0
        for i, (x, y) in enumerate(self.loader):
            self._batch_in_epoch = i + 1
            if i < skip:  # resumed from a mid-epoch checkpoint: these batches were trained before
                seen += len(y)
                continue
            loss, parts, out = self.train_step(x, y)
            seen += len(y)
            self._log_step(self.epoch + seen / n_train, parts)
            with torch.no_grad():  # sums stay on the device: read once at the end of the epoch
                sc, _ = self.task.score_tensor(out.detach(), y.to(self.device, non_blocking=True))
                d = parts["data_loss"].detach().double() * len(y)
                loss_sum = d if loss_sum is None else loss_sum + d
                score_sum = sc if score_sum is None else score_sum + sc
            if self.events and self.session.bus.has("step_end"):
                self.session.emit("step_end", run=self.run, trainer=self, step=self.step,
                                  epoch=self.epoch + seen / n_train, data_loss=parts["data_loss"].detach(),
                                  reg_loss=parts.get("reg_loss", 0.0), model=self.model, x=x, y=y, output=out)
            self._callback("on_step_end")
            if self.steplog.diverged is not None:
                return "diverged"
            if self.checkpoint_every and self.writer is not None and self.step % self.checkpoint_every == 0:
                self.steplog.flush()  # records on disk reach the checkpoint's step before it is written
                self.writer.submit(self.state(mid_epoch=True), self.epoch, step=self.step)
            if self.run is not None and self.run.stop_requested:
                self._epoch_train = self._read_sums(loss_sum, score_sum, seen)
                return "stopped"
        self._batch_in_epoch = 0
        self.steplog.flush()
        if self.steplog.diverged is not None:
            return "diverged"
        self._epoch_train = self._read_sums(loss_sum, score_sum, seen)
        return "running"

    @staticmethod
    def _read_sums(loss_sum, score_sum, n) -> tuple[float, float]:
        if loss_sum is None:
            return math.nan, math.nan
        lv, sv = torch.stack([loss_sum.reshape(()), torch.as_tensor(score_sum).to(loss_sum.device).double()
                              .reshape(())]).tolist()
        return lv / max(n, 1), sv / max(n, 1)

    def _end_epoch(self) -> dict:
        self.epoch += 1
        ev = self.evaluate()
        train_loss, train_metric = self._epoch_train
        row = {"kind": "epoch", "epoch": self.epoch, "step": self.step, "train_loss": train_loss,
               "train_metric": train_metric, "val_loss": ev["loss"], "val_metric": ev["metric"], "n_eval": ev["n"],
               "metric": self.task.metric, "eval_split": self.session.eval_split,
               "lr": self.optimizer.param_groups[0]["lr"], "time": time.time()}
        self._callback("on_epoch_end", row)
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(row["val_loss"])
            else:
                self.scheduler.step()
        self._log(row)
        if self.writer is not None:
            self.writer.submit(self.state(), self.epoch)
        if self.events:
            self.session.emit("epoch_end", run=self.run, trainer=self, epoch=self.epoch, step=None, row=row)
        return row

    def evaluate(self, model: nn.Module | None = None, split: str = "eval") -> dict:
        """Loss and metric over the WHOLE split (recipe II.3); ``n`` counts the examples seen."""
        data = split
        if split == "eval" and self.session.num_workers:
            if self._eval_loader is None:  # persistent workers live across epochs only if the loader does
                self._eval_loader = self.session.loader("eval", shuffle=False, batch_size=512)
            data = self._eval_loader
        return evaluate_fn(self.session, model or self.model, data, precision=self.precision,
                           channels_last=self.channels_last)

    def _log(self, record: dict) -> None:
        if self.run is not None:
            self.run.log(record)

    def _callback(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self, mid_epoch: bool = False) -> dict:
        """Everything needed to continue: weights, optimizer, scheduler, scaler, RNG streams, position.

        A mid-epoch state also holds the loader's generator as the epoch began and the batches done, so
        a resume replays the same order and skips what was trained."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epoch": self.epoch, "step": self.step, "rng": self.rng.state(),
                 "meta": {"run": getattr(self.run, "id", None), "model": self.session.model_name,
                          "task": self.task.name}}
        if self.loader is not None and getattr(self.loader, "generator", None) is not None:
            state["rng"]["loader"] = self.loader.generator.get_state()
        if mid_epoch and self._epoch_start_loader is not None:
            state["rng"]["loader"] = self._epoch_start_loader
            state["batch_in_epoch"] = self._batch_in_epoch
        if self.scheduler is not None and hasattr(self.scheduler, "state_dict"):
            state["scheduler"] = self.scheduler.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state and self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state and self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.rng.set_state(state["rng"])
        if self.loader is not None and "loader" in state["rng"]:
            self.loader.generator.set_state(state["rng"]["loader"])
        self._resume_skip = int(state.get("batch_in_epoch", 0))
