"""Your own training loop watched: live curves, every instrument and a stored run (recipe III.P, B.4).

Like W&B's ``watch`` or a TensorBoard ``SummaryWriter``, but with the recipe's instruments and
verdicts. ``wb.watch(model, optimizer)`` creates a run in the run store, attaches the instruments
(histograms P.3, update ratio P.5, first layer P.4, fixed-batch predictions II.11, grad norms and
the NaN/inf trap P.3, curves P.1) and plays the trainer's part on the session's bus: an optimizer
pre-step hook emits ``after_backward`` (gradients ready, weights not yet updated; under DDP they are
the all-reduced gradients), ``w.step(loss)`` emits ``step_end`` and keeps the loss on the device in
a ``StepLog`` (read back in batches: no host sync per step), ``w.epoch(...)`` writes the epoch row.
The loop adds a line per step and one per epoch::

    w = wb.watch(net, optimizer, train=trainloader, test=testloader, epochs=2)
    for epoch in range(2):
        for x, y in trainloader:
            ...; loss.backward(); optimizer.step()
            w.step(loss)
        w.epoch()          # the whole test set is evaluated when no val_loss is given (II.3)

The run ends by itself after ``epochs`` epochs, on ``w.close()``, at the end of a ``with`` block
(``failed`` with the error on an exception) or at interpreter exit. ``tensorboard=True`` writes
event files as it trains; ``serve=PORT`` serves the app over the run's session. An optimizer that
computes its gradients inside ``step(closure)`` (LBFGS, Lightning) needs ``optimizer_hook=False``
and ``w.gradients_ready()`` after the backward. Call ``w.step`` once per optimizer step. Owner: ``session=`` when given;
else a ``Session`` built from ``train=``/``test=`` (datasets or DataLoaders), which the app and the
checks can use; else a light owner (a ``RunStore`` under ``root`` and an ``EventBus``) with the
instruments that need no data. Under ``torchrun``/DDP only rank 0 records and instruments; the
other ranks get a watcher whose calls do nothing, so no rank waits on another.
"""

from __future__ import annotations

import atexit
import math
import os
import time
import weakref

import torch
from torch import nn
from torch.utils.data import DataLoader

from workbench.engine.steplog import StepLog
from workbench.errors import WorkbenchError
from workbench.events import EventBus
from workbench.store import RunStore
from workbench.tasks import make_task

NEEDS_DATA = ("predictions",)  # instruments that read a fixed held-out batch from the session
NEEDS_OPTIMIZER = ("update_ratio",)  # compares the weights before and after the optimizer's step


def rank() -> int:
    """This process's rank under torch.distributed / torchrun (0 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP / DataParallel / torch.compile wrappers: hooks and fixed-batch passes go there,
    so an instrument's extra forward never runs DDP's collectives on rank 0 alone."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


class LightOwner:
    """What a watched run needs when there is no Session: a run store, an event bus and a task."""

    def __init__(self, root="runs", task: str = "classification", num_classes: int | None = None, device=None):
        self.bus, self.store = EventBus(), RunStore(root)
        self.task = make_task(task, num_classes=num_classes)
        self.device = torch.device(device or "cpu")
        self.instruments: list = []
        self.input_shape = None
        self._live_runs: dict = {}
        self.last_run = None

    def on(self, event, callback, every: int = 1):
        return self.bus.on(event, callback, every)

    def emit(self, event: str, **payload) -> None:
        self.bus.emit(event, session=self, **payload)

    def register_run(self, run) -> None:
        self._live_runs[run.id] = run

    def instrument(self, names="default", every=None, **options):
        from workbench.instruments import attach

        return attach(self, names=names, every=every, **options)

    def runs(self):
        return self.store.table(self._live_runs)


class LoopState:
    """The trainer's attributes the instruments read (model, optimizer, task, step, epoch, steps_per_epoch)."""

    def __init__(self, model, optimizer, task=None, device=None, steps_per_epoch: int = 1):
        self.model, self.optimizer, self.task, self.device = model, optimizer, task, device
        self.step, self.epoch, self.steps_per_epoch = 0, 0, steps_per_epoch
        self.session = self.run = None

    def __repr__(self) -> str:
        return f"LoopState(step={self.step}, epoch={self.epoch})"


class Watch:
    """One watched run of a loop you wrote: ``step(loss)`` per step, ``epoch(...)`` per epoch, ``close()``."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *, session=None,
                 train=None, test=None, task: str = "classification", num_classes: int | None = None,
                 instruments="default", every: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, root="runs", name: str | None = None,
                 log_every: int = 32, config: dict | None = None, serve: int | bool = False,
                 tensorboard=False, optimizer_hook: bool = True):
        if not isinstance(model, nn.Module):
            raise WorkbenchError(f"wb.watch needs the nn.Module you train, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise WorkbenchError(f"optimizer must be a torch.optim.Optimizer (or None), got {type(optimizer).__name__}")
        self.active = rank() == 0
        self.model, self.optimizer, self.epochs = unwrap(model), optimizer, epochs
        spe = steps_per_epoch or (len(train) if isinstance(train, DataLoader) else None)
        self._batch_size = train.batch_size if isinstance(train, DataLoader) else None
        self.trainer = LoopState(self.model, optimizer, steps_per_epoch=spe or 1)
        self._spe_known = spe is not None
        self.closed, self.run, self.session, self.server, self.tensorboard = False, None, None, None, None
        self._hooks, self._epoch_losses, self._epoch_start = [], [], 0
        self._score = self._count = None
        if not self.active:  # DDP rank > 0: quiet, no hooks, no run, nothing to wait for
            self.closed = True
            return
        self._own(session, train, test, task, num_classes, root)
        self._attach(instruments, every, tensorboard)
        self._start(name, config or {}, log_every)
        if optimizer is not None and optimizer_hook:
            self._hooks.append(optimizer.register_step_pre_hook(self._before_update))
        _open.add(self)
        if serve:
            self.serve(5006 if serve is True else int(serve))

    # -- setup -----------------------------------------------------------------------------------
    def _own(self, session, train, test, task, num_classes, root) -> None:
        self.device = _device_of(self.model)
        self.session = session if session is not None else _owner(self.model, train, test, task, num_classes,
                                                                   root, self.device)
        self.task = self.session.task
        self.trainer.task, self.trainer.device, self.trainer.session = self.task, self.device, self.session

    def _attach(self, instruments, every, tensorboard) -> None:
        if instruments is not None:
            from workbench.instruments import _names, attach

            # an instrument the session already has (an open view streams it) is kept, unless ``every`` differs
            have = {i.name: i.every for i in getattr(self.session, "instruments", []) if hasattr(i, "every")}
            names = [n for n in _names(instruments)
                     if not (n in NEEDS_DATA and not hasattr(self.session, "batch"))
                     and not (n in NEEDS_OPTIMIZER and self.optimizer is None)
                     and not (n in have and every in (None, have[n]))]
            attach(self.session, names, every=every)
        if tensorboard:  # True: <run>/tensorboard; a path: <path>/<run id>
            from workbench.instruments.tensorboard_live import TensorBoardLive

            self.tensorboard = TensorBoardLive(None if tensorboard is True else tensorboard).attach(self.session)

    def _start(self, name, extra: dict, log_every: int) -> None:
        opt = self.optimizer
        group = opt.param_groups[0] if opt is not None else {}
        config = {"model": type(self.model).__name__, "task": self.task.name, "num_classes": self.task.num_classes,
                  "data": getattr(self.session, "name", None), "epochs": self.epochs,
                  "optimizer": _optimizer_name(opt), "optimizer_class": type(opt).__name__ if opt else None,
                  "lr": group.get("lr"), "batch_size": self._batch_size,
                  "weight_decay": group.get("weight_decay"), "device": self.device.type, "seed": None,
                  "world_size": world_size(), "source": "watch", "name": name, "parent": None, "tags": {}, **extra}
        if self.epochs is None:
            del config["epochs"]  # unknown: views then show the epochs done, not a wrong total
        self.run = self.session.store.create(config, name=name)
        self.run.model, self.run.trainer, self.trainer.run = self.model, self.trainer, self.run
        self.session.register_run(self.run)
        self.session.last_run = self.run
        self.steplog = StepLog(self.run, self.session.emit, every=log_every)
        self.session.emit("run_start", run=self.run, trainer=self.trainer)

    # -- the loop's lines ------------------------------------------------------------------------
    def gradients_ready(self, optimizer=None) -> None:
        """Tell the instruments the gradients are final and the weights not yet updated (``after_backward``).

        The optimizer's pre-step hook calls it; call it yourself with ``optimizer_hook=False`` when the
        optimizer computes its gradients inside ``step(closure)`` (LBFGS, Lightning's automatic optimization).
        """
        self._before_update(optimizer or self.optimizer, (), {})

    def _before_update(self, optimizer, args, kwargs) -> None:
        # the optimizer's pre-step hook: gradients are final (all-reduced under DDP), weights not yet updated
        if not self.closed and self.session.bus.has("after_backward"):
            self.session.emit("after_backward", run=self.run, trainer=self.trainer, step=self.trainer.step + 1,
                              model=self.model, optimizer=optimizer)

    def step(self, loss: torch.Tensor, *, output: torch.Tensor | None = None, y: torch.Tensor | None = None,
             x: torch.Tensor | None = None, reg_loss=0.0) -> bool:
        """Report one training step's loss (after ``optimizer.step()``); False once the run asked to stop.

        The loss stays on the device (read in batches); pass ``output`` and ``y`` for the training metric.
        """
        if self.closed:
            return not self.active  # a quiet rank keeps going; a closed run says stop
        if not isinstance(loss, torch.Tensor):
            raise WorkbenchError(f"w.step(loss) needs the loss tensor (not {type(loss).__name__}): pass the value "
                                 "you called backward() on, without .item()")
        if self.optimizer is None and self.session.bus.has("after_backward"):
            self._before_update(None, (), {})  # no optimizer hook: the gradients are still in .grad
        t = self.trainer
        t.step += 1
        # x axis in epochs (P.1); before the first epoch ends without a known length, steps sit at its start
        in_epoch = t.step - self._epoch_start if self._spe_known else 0
        epoch = t.epoch + min(in_epoch, t.steps_per_epoch) / t.steps_per_epoch
        lr = self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None
        if self.steplog.add(t.step, epoch, {"data_loss": loss, "reg_loss": reg_loss}, lr):
            self._flush()
        if output is not None and y is not None:
            self._add_score(output, y)
        if self.session.bus.has("step_end"):
            self.session.emit("step_end", run=self.run, trainer=t, step=t.step, epoch=epoch,
                              data_loss=loss.detach(), reg_loss=reg_loss, model=self.model, x=x, y=y, output=output)
        return not (self.run.stop_requested or self.steplog.diverged)

    @torch.no_grad()
    def _add_score(self, output, y) -> None:
        sc, cnt = self.task.score_tensor(output.detach(), y)
        self._score = sc if self._score is None else self._score + sc  # a device tensor: read once per epoch
        self._count = cnt if self._count is None else self._count + cnt

    def _flush(self) -> None:
        self._epoch_losses += [r["loss"] for r in self.steplog.flush()]

    def epoch(self, val_loss: float | None = None, val_metric: float | None = None, **extra) -> dict:
        """End an epoch: its train loss (mean step loss), the validation numbers given, or the whole
        held-out set evaluated when the owner has one (II.3); returns the epoch's row."""
        if self.closed:
            return {}
        self._flush()
        t = self.trainer
        t.epoch += 1
        if not self._spe_known:
            t.steps_per_epoch, self._spe_known = max(1, t.step), True
        self._epoch_start = t.step
        row = {"kind": "epoch", "epoch": t.epoch, "step": t.step, "metric": self.task.metric,
               "train_loss": _mean(self._epoch_losses), "train_metric": self._train_metric(),
               "val_loss": math.nan, "val_metric": math.nan, "n_eval": None,
               "lr": self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None, "time": time.time()}
        if val_loss is None and hasattr(self.session, "eval_set"):
            row.update(self._evaluate())
        else:
            row.update(val_loss=_num(val_loss), val_metric=_num(val_metric))
        row.update({k: _num(v) for k, v in extra.items()})
        self._epoch_losses, self._score, self._count = [], None, None
        self.run.log(row)
        self.session.emit("epoch_end", run=self.run, trainer=t, epoch=t.epoch, step=None, row=row)
        if self.epochs is not None and t.epoch >= self.epochs:
            self.close()
        return row

    def _train_metric(self) -> float:
        if self._score is None:
            return math.nan
        return float(self._score) / max(int(self._count), 1)

    def _evaluate(self) -> dict:
        from workbench.train import evaluate

        ev = evaluate(self.session, self.model)
        return {"val_loss": ev["loss"], "val_metric": ev["metric"], "n_eval": ev["n"],
                "eval_split": self.session.eval_split}

    # -- the end ---------------------------------------------------------------------------------
    def close(self, status: str | None = None, error: str | None = None) -> None:
        """End the run: read the last losses, set its status, tell the instruments and views; idempotent."""
        if self.closed:
            return
        self.closed = True
        _open.discard(self)
        for h in self._hooks:
            h.remove()
        self._flush()
        if status is None:
            status = "diverged" if self.steplog.diverged else "stopped" if self.run.stop_requested else "completed"
        extra = {"error": error} if error else {}
        self.run.set_status(status, epochs_done=self.trainer.epoch,
                            steps_done=self.trainer.step, **extra)
        self.run.error = error
        self.session.emit("run_end", run=self.run, status=status)
        self._record_verdicts()
        self.run.close()
        self.run.export_csv()
        if self.tensorboard is not None:
            self.tensorboard.detach()

    def _record_verdicts(self) -> None:
        """Each instrument's verdict at the end, on the run: another process (the app, a test) reads them back."""
        for inst in list(getattr(self.session, "instruments", [])):
            if getattr(inst, "run_id", None) == self.run.id:
                s = inst.summary()
                self.run.log({"kind": "instrument", "name": s.get("name"), "recipe": s.get("recipe"),
                              "status": s.get("status"), "verdict": str(s.get("verdict", "")),
                              "records": len(inst.records)})

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("stopped")
        elif self.active:
            self.close("failed", error=f"the training loop raised {exc_type.__name__}: {exc}")
        return False

    def serve(self, port: int = 5006, address: str = "127.0.0.1"):
        """Serve the workbench app over this run's session in a background thread (needs ``train=``).

        The server thread keeps the script alive after the loop, so the run can still be looked at:
        Ctrl+C ends it.
        """
        if not hasattr(self.session, "eval_set"):
            raise WorkbenchError("the app needs the data: pass train= (and test=) to wb.watch, or session=")
        import panel as pn

        from workbench.ui.app import create_app, load_extensions

        load_extensions()
        origins = [f"{address}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
        self.server = pn.serve({"/": lambda: create_app(self.session)}, port=port, address=address, show=False,
                               threaded=True, websocket_origin=origins, title="Recipe Workbench")
        return self.server

    def __repr__(self) -> str:
        run = self.run.id if self.run is not None else "quiet rank"
        t = self.trainer
        return f"Watch({run}, step={t.step}, epoch={t.epoch}, {'closed' if self.closed else 'open'})"


def watch(model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *, session=None, **options) -> Watch:
    """Watch a training loop you wrote: a stored run with live curves and every instrument (see ``Watch``)."""
    return Watch(model, optimizer, session=session, **options)


def _owner(model, train, test, task, num_classes, root, device):
    """A Session over the user's data (the app, the checks and the predictions need it), else a light owner."""
    if train is None:
        return LightOwner(root, task, num_classes, device)
    from workbench.session import Session

    train = train.dataset if isinstance(train, DataLoader) else train
    test = test.dataset if isinstance(test, DataLoader) else test
    session = Session(model, train, test, task=task, num_classes=num_classes, root=root, device=str(device))
    session.model = model  # the live module the loop trains, not the session's copy
    return session


def _optimizer_name(opt) -> str | None:
    """The name ``Session.fit`` knows for this optimizer (so "train like that run" works), else None."""
    from workbench.train import OPTIMIZERS

    name = type(opt).__name__.lower() if opt is not None else None
    return name if name in OPTIMIZERS else None


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _num(v) -> float:
    if v is None:
        return math.nan
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


_open: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_open_runs() -> None:
    # a script that ends without close(): its runs end as completed, not as "interrupted" on disk
    for w in list(_open):
        w.close()
