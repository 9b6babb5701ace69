"""The fit loop: epochs, whole-set evaluation, cooperative stop, divergence, checkpoints, resume.

Defaults follow the recipe: Adam (III.M2), no LR decay (III.M4), no augmentation (II.2), the
whole held-out set evaluated after each epoch (II.3), a NaN/inf loss ends the run as ``diverged``
with everything logged up to it. Per-run callbacks are objects with any of ``on_run_start``,
``on_step_end``, ``on_epoch_end(trainer, row)`` (may add columns to the epoch's row) and
``on_run_end``; session-wide subscribers use ``session.on(...)`` instead.
"""

from __future__ import annotations

import copy
import math
import random
import threading
import time

import numpy as np
import torch
from torch import nn

from workbench.data.views import data_view_of
from workbench.errors import DataError, ModelError, RunError, WorkbenchError
from workbench.store import Run

OPTIMIZERS = ("adam", "adamw", "sgd")


def make_optimizer(name_or_factory, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam by default (III.M2); "sgd" is SGD with Nesterov momentum 0.9; or a callable(params, lr, wd)."""
    if callable(name_or_factory):
        return name_or_factory(params, lr=lr, weight_decay=weight_decay)
    name = str(name_or_factory).lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS} or a callable, got {name_or_factory!r}")


def make_schedule(spec, optimizer, epochs: int):
    """None (no decay, III.M4), "cosine", "step" (x0.1 at 50% and 75%), "plateau", or callable(optimizer)."""
    if spec is None:
        return None
    if callable(spec):
        return spec(optimizer)
    if spec == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if spec == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, [max(1, epochs // 2), max(1, 3 * epochs // 4)], 0.1)
    if spec == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=2)
    raise ValueError(f"lr_schedule must be None, 'cosine', 'step', 'plateau' or a callable, got {spec!r}")


def make_augment(spec):
    """False (II.2), True (small random shifts, per example), or a callable on a batch tensor."""
    if not spec:
        return None
    if callable(spec):
        return spec
    from torchvision.transforms import v2

    shift = v2.RandomAffine(degrees=0, translate=(0.125, 0.125))
    return lambda x: torch.stack([shift(xi) for xi in x])


class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights (III.R9)."""

    def __init__(self, patience: int = 3, monitor: str = "val_loss", mode: str = "min", restore_best: bool = True,
                 min_delta: float = 0.0):
        self.patience, self.monitor, self.mode = int(patience), monitor, mode
        self.restore_best, self.min_delta = restore_best, float(min_delta)
        self.best, self.best_epoch, self.best_state, self.bad = None, 0, None, 0

    @classmethod
    def from_spec(cls, spec):
        if spec is None or spec is False:
            return None
        if isinstance(spec, EarlyStopping):
            return spec
        if isinstance(spec, bool):
            return cls()
        if isinstance(spec, int):
            return cls(patience=spec)
        if isinstance(spec, dict):
            return cls(**spec)
        raise ValueError("early_stopping must be None, an int patience, a dict or an EarlyStopping")

    def update(self, row: dict, model: nn.Module) -> bool:
        """Record the epoch; True when training should stop."""
        v = row.get(self.monitor)
        if v is None or not math.isfinite(v):
            return False
        better = self.best is None or (v < self.best - self.min_delta if self.mode == "min"
                                       else v > self.best + self.min_delta)
        if better:
            self.best, self.best_epoch, self.bad = v, row["epoch"], 0
            if self.restore_best:
                self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.bad += 1
        return self.bad >= self.patience


class Trainer:
    """Runs the loop for one Run; callbacks and instruments read its attributes."""

    def __init__(self, session, run: Run, model: nn.Module, config: dict, callbacks=()):
        self.session, self.run, self.model, self.config = session, run, model, config
        self.task = session.task
        self.device = session.device
        self.optimizer = make_optimizer(config["optimizer_obj"], model.parameters(), config["lr"],
                                        config["weight_decay"])
        self.scheduler = make_schedule(config["lr_schedule_obj"], self.optimizer, config["epochs"])
        self.augment = make_augment(config["augment_obj"])
        self.early = EarlyStopping.from_spec(config["early_stopping_obj"])
        self.callbacks = list(callbacks)
        self.loader = session.loader("train", shuffle=True, batch_size=config["batch_size"], seed=config["seed"])
        self.steps_per_epoch = max(1, len(self.loader))
        self.step = 0
        self.epoch = 0
        self.reg_strength = config["reg_strength"]

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, model: nn.Module | None = None, split: str = "eval") -> dict:
        """Loss and metric over the WHOLE split (recipe II.3); ``n`` counts the examples seen."""
        return evaluate(self.session, model or self.model, split)

    # -- the loop --------------------------------------------------------------------------------
    def train(self, epochs: int) -> str:
        s, run = self.session, self.run
        self._callback("on_run_start")
        s.emit("run_start", run=run, trainer=self)
        status = "completed"
        while self.epoch < epochs:
            status = self._train_epoch()
            if status != "running":
                break
            row = self._end_epoch()
            if self.early is not None and self.early.update(row, self.model):
                if self.early.restore_best and self.early.best_state is not None:
                    self.model.load_state_dict(self.early.best_state)
                run.log({"kind": "early_stop", "epoch": self.epoch, "best_epoch": self.early.best_epoch,
                         "best": self.early.best, "monitor": self.early.monitor})
                status = "completed"
                break
            if run.stop_requested:
                status = "stopped"
                break
            status = "completed"
        return status

    def _train_epoch(self) -> str:
        s, run, task, model = self.session, self.run, self.task, self.model
        model.train()
        loss_sum = score_sum = 0.0
        n_seen = 0
        check_labels = task.name in ("classification", "sequence")
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if check_labels and self.step < self.steps_per_epoch:
                task.check_labels(y, "train batch")
            if self.augment is not None:
                x = self.augment(x)
            try:
                out = model(x)
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"the model raised {type(e).__name__} on a training batch of shape "
                                 f"{tuple(x.shape)}: {e}") from e
            if self.step == 0:
                task.check_output(out, y)
            data_loss = task.data_loss(out, y)
            if self.reg_strength:
                reg_loss = s.reg_loss(model, self.reg_strength)
                loss = data_loss + reg_loss
                rl = reg_loss.item()
            else:
                loss, rl = data_loss, 0.0
            self.step += 1
            dl = data_loss.item()
            record = {"kind": "step", "step": self.step, "epoch": self.epoch + (n_seen + len(y)) / self._n_train,
                      "data_loss": dl, "reg_loss": rl, "loss": dl + rl, "lr": self.optimizer.param_groups[0]["lr"]}
            if not math.isfinite(dl + rl):
                run.log(record)
                run.log({"kind": "diverged", "step": self.step, "epoch": record["epoch"],
                         "data_loss": dl, "reg_loss": rl})
                return "diverged"
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if s.bus.has("after_backward"):
                s.emit("after_backward", run=run, trainer=self, step=self.step, model=model,
                       optimizer=self.optimizer)
            self.optimizer.step()
            run.log(record)
            with torch.no_grad():
                sc, cnt = task.score_tensor(out.detach(), y)
            loss_sum += dl * len(y)
            score_sum = score_sum + sc  # a tensor: read once at the end of the epoch, no sync per step
            n_seen += cnt
            if s.bus.has("step_end"):
                s.emit("step_end", run=run, trainer=self, step=self.step, epoch=record["epoch"], data_loss=dl,
                       reg_loss=rl, model=model, x=x, y=y, output=out)
            self._callback("on_step_end")
            if run.stop_requested:
                self._epoch_train = (loss_sum / max(n_seen, 1), float(score_sum) / max(n_seen, 1))
                return "stopped"
        self._epoch_train = (loss_sum / max(n_seen, 1), float(score_sum) / max(n_seen, 1))
        return "running"

    @property
    def _n_train(self) -> int:
        return len(self.session.train)

    def _end_epoch(self) -> dict:
        s, run = self.session, self.run
        self.epoch += 1
        ev = self.evaluate()
        train_loss, train_metric = self._epoch_train
        row = {"kind": "epoch", "epoch": self.epoch, "step": self.step,
               "train_loss": train_loss, "train_metric": train_metric,
               "val_loss": ev["loss"], "val_metric": ev["metric"], "n_eval": ev["n"],
               "metric": self.task.metric, "eval_split": s.eval_split,
               "lr": self.optimizer.param_groups[0]["lr"], "time": time.time()}
        self._callback("on_epoch_end", row)
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(row["val_loss"])
            else:
                self.scheduler.step()
        run.log(row)
        if self.config.get("checkpoint", True):
            run.save_checkpoint(self.state(), self.epoch)
        s.emit("epoch_end", run=run, trainer=self, epoch=self.epoch, step=None, row=row)
        return row

    def _callback(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self, *args)

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue: weights, optimizer, scheduler, RNG states, position."""
        np_state = np.random.get_state()
        state = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch, "step": self.step,
            "rng": {"torch": torch.get_rng_state(), "loader": self.loader.generator.get_state(),
                    "python": _py_state_to_plain(random.getstate()),
                    "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]},
            "meta": {"run": self.run.id, "model": self.session.model_name, "task": self.task.name},
        }
        if torch.cuda.is_available():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        if self.scheduler is not None and hasattr(self.scheduler, "state_dict"):
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state and self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.loader.generator.set_state(rng["loader"])
        random.setstate(_py_state_from_plain(rng["python"]))
        npst = rng["numpy"]
        np.random.set_state((npst[0], npst[1].numpy().astype(np.uint32), *npst[2:]))


@torch.no_grad()
def evaluate(session, model: nn.Module, split: str = "eval", batch_size: int = 512) -> dict:
    """Mean loss and metric of ``model`` over every example of a split (recipe II.3)."""
    task = session.task
    was = model.training
    model.eval()
    loss_sum = score_sum = 0.0
    n = 0
    try:
        for x, y in session.loader(split, shuffle=False, batch_size=batch_size):
            x, y = x.to(session.device), y.to(session.device)
            out = model(x)
            loss_sum += float(task.data_loss(out, y)) * len(y)
            sc, cnt = task.score(out, y)
            score_sum += sc
            n += cnt
    finally:
        model.train(was)
    return {"loss": loss_sum / max(n, 1), "metric": score_sum / max(n, 1), "n": n}


def fit(session, epochs: int = 5, lr: float = 1e-3, optimizer="adam", weight_decay: float = 0.0, augment=False,
        lr_schedule=None, early_stopping=None, callbacks=(), background: bool = False, *, model=None,
        seed: int | None = None, batch_size: int | None = None, name: str | None = None, parent=None,
        checkpoint: bool = True, reg_strength: float | None = None, model_kwargs: dict | None = None,
        ema: float | None = None, swa: bool = False, tags: dict | None = None) -> Run:
    """Train and return the Run (see ``Session.fit``)."""
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    seed = session.seed if seed is None else int(seed)
    model_kwargs = dict(model_kwargs or {})
    parent_id = parent.id if isinstance(parent, Run) else parent
    if parent_id is None and session.last_run is not None:  # parent=False: a run that starts from nothing
        parent_id = session.last_run.id
    parent_id = parent_id or None
    config = {
        "model": session.model_name, "model_kwargs": model_kwargs, "task": session.task.name,
        "num_classes": session.num_classes, "data": session.name, "n_train": len(session.train),
        "n_eval": len(session.eval_set), "eval_split": session.eval_split,
        "epochs": int(epochs), "lr": float(lr),
        "optimizer": optimizer if isinstance(optimizer, str) else repr(optimizer),
        "weight_decay": float(weight_decay), "augment": augment if isinstance(augment, bool) else repr(augment),
        "lr_schedule": lr_schedule if lr_schedule is None or isinstance(lr_schedule, str) else repr(lr_schedule),
        "early_stopping": early_stopping if early_stopping is None or isinstance(early_stopping, (int, dict))
        else repr(early_stopping),
        "batch_size": int(batch_size or session.batch_size), "seed": seed, "device": session.device.type,
        "reg_strength": session.reg_strength if reg_strength is None else float(reg_strength),
        "regularizer": getattr(session.regularizer, "__name__", None) if session.regularizer else
        ("l2" if (reg_strength or session.reg_strength) else None),
        "init_hooks": sorted(session.init_hooks), "ema": ema, "swa": swa, "name": name, "parent": parent_id,
        "tags": tags or {}, "data_view": data_view_of(session),
    }
    runtime = {"optimizer_obj": optimizer, "lr_schedule_obj": lr_schedule, "augment_obj": augment,
               "early_stopping_obj": early_stopping, "checkpoint": checkpoint}
    callbacks = list(callbacks)
    if ema is not None or swa:
        from workbench.ensemble import WeightAveraging

        callbacks.append(WeightAveraging(decay=ema, swa=swa))
    run = session.store.create(config, name=name)
    if model is None:
        model = session.new_model(seed=seed, **model_kwargs)
    else:
        model = model.to(session.device)
    return _launch(session, run, model, {**config, **runtime}, callbacks, background, start=None)


def resume(session, run_id: str, epochs: int | None = None, background: bool = False, augment=None) -> Run:
    """Continue a run from its last checkpoint (from scratch, same seed, when it has none).

    A run trained with a custom augmentation callable needs it again as ``augment=``: only its
    description is on disk.
    """
    live = session._live_runs.get(run_id)
    if live is not None and live.running:
        raise RunError(f"run {run_id} is still training")
    run = session.store.load(run_id)
    config = dict(run.config)
    if epochs is not None:
        config["epochs"] = int(epochs)
    saved_augment = config.get("augment", False)
    if augment is None and not isinstance(saved_augment, bool):
        raise RunError(f"run {run_id} was trained with the augmentation {saved_augment}, which cannot be rebuilt "
                       "from disk; pass it again: session.resume(run_id, augment=...)")
    runtime = {"optimizer_obj": config["optimizer"], "lr_schedule_obj": config.get("lr_schedule"),
               "augment_obj": saved_augment if augment is None else augment,
               "early_stopping_obj": config.get("early_stopping"),
               "checkpoint": True}
    state = run.load_checkpoint() if run.checkpoints() else None
    session.store.truncate_after(run, state["step"] if state else 0, state["epoch"] if state else 0)
    run.set_status("running", resumed_from=state["epoch"] if state else 0, pid=_pid())
    model = session.new_model(seed=config["seed"], **config.get("model_kwargs", {}))
    callbacks = []
    if config.get("ema") is not None or config.get("swa"):
        from workbench.ensemble import WeightAveraging

        callbacks.append(WeightAveraging(decay=config.get("ema"), swa=config.get("swa", False)))
    return _launch(session, run, model, {**config, **runtime}, callbacks, background, start=state)


def _launch(session, run: Run, model, config, callbacks, background, start) -> Run:
    session.seed_everything(config["seed"])
    trainer = Trainer(session, run, model, config, callbacks)
    if start is not None:
        trainer.load_state(start)
    run.model = model
    run.trainer = trainer
    session._live_runs[run.id] = run
    session.last_run = run

    def work():
        try:
            status = trainer.train(config["epochs"])
            run.set_status(status, epochs_done=trainer.epoch, steps_done=trainer.step)
        except Exception as e:  # noqa: BLE001 - the run on disk records the failure
            run.error = _describe(e)
            run.set_status("failed", error=run.error, epochs_done=trainer.epoch, steps_done=trainer.step)
            if not background:
                run.close()
                session.emit("run_end", run=run, status=run.status)
                if isinstance(e, WorkbenchError):
                    raise
                raise ModelError(run.error) from e
        finally:
            run.close()
            run.export_csv()
        session.model = model
        session.emit("run_end", run=run, status=run.status)
        trainer._callback("on_run_end")

    if background:
        run.thread = threading.Thread(target=work, name=f"fit-{run.id}", daemon=True)
        run.thread.start()
    else:
        work()
    return run


def _describe(e: Exception) -> str:
    if isinstance(e, (DataError, ModelError)):
        return str(e)
    return f"training raised {type(e).__name__}: {e}"


def _pid() -> int:
    import os

    return os.getpid()


def _py_state_to_plain(st):
    return [st[0], list(st[1]), st[2]]


def _py_state_from_plain(st):
    return (int(st[0]), tuple(int(v) for v in st[1]), st[2])
