"""Fit and resume: the session's training runs, as configurations of the one engine (workbench/engine/).

Defaults follow the recipe: Adam (III.M2), no LR decay (III.M4), no augmentation (II.2), the
whole held-out set evaluated after each epoch (II.3), a NaN/inf loss ends the run as ``diverged``
with everything logged up to it. Per-run callbacks are objects with any of ``on_run_start``,
``on_step_end``, ``on_epoch_end(engine, row)`` (may add columns to the epoch's row) and
``on_run_end``; session-wide subscribers use ``session.on(...)`` instead.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass

import torch
from torch import nn

from workbench import validate
from workbench.engine.averaging import WeightAveraging
from workbench.engine.config import RUNTIME_FIELDS, RunConfig, describe
from workbench.engine.evaluate import evaluate as _evaluate
from workbench.engine.loop import Engine
from workbench.engine.precision import check_precision
from workbench.engine.rng import RngStream
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


Trainer = Engine  # the name instruments and callbacks knew the loop by


@dataclass(frozen=True)
class Ended:
    """Where a finished run's engine stopped: all that a run keeps of it."""

    step: int
    epoch: int
    steps_per_epoch: int


def evaluate(session, model: nn.Module, split: str = "eval", batch_size: int = 512) -> dict:
    """Mean loss and metric of ``model`` over every example of a split (recipe II.3)."""
    return _evaluate(session, model, split, batch_size=batch_size)


def fit(session, epochs: int = 5, lr: float = 1e-3, optimizer="adam", weight_decay: float = 0.0, augment=False,
        lr_schedule=None, early_stopping=None, callbacks=(), background: bool = False, *, model=None,
        seed: int | None = None, batch_size: int | None = None, name: str | None = None, parent=None,
        checkpoint: bool = True, reg_strength: float | None = None, model_kwargs: dict | None = None,
        ema: float | None = None, swa: bool = False, tags: dict | None = None, precision: str = "32",
        channels_last: bool = False, compile: bool = False, checkpoint_every: int = 0, log_every: int = 32,
        loss_fn=None, kind: str = "fit", extra: dict | None = None) -> Run:
    """Train and return the Run (see ``Session.fit``)."""
    validate.fit_options(session, epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                         augment=augment, lr_schedule=lr_schedule, early_stopping=early_stopping,
                         batch_size=batch_size, seed=seed, name=name, reg_strength=reg_strength, ema=ema, swa=swa,
                         callbacks=callbacks, model_kwargs=model_kwargs, tags=tags, checkpoint=checkpoint,
                         background=background)
    seed = session.seed if seed is None else int(seed)
    model_kwargs = dict(model_kwargs or {})
    parent_id = parent.id if isinstance(parent, Run) else parent
    if parent_id is None and session.last_run is not None:  # parent=False: a run that starts from nothing
        parent_id = session.last_run.id
    live = {"optimizer": optimizer, "lr_schedule": lr_schedule, "augment": augment, "early_stopping": early_stopping}
    described = {k: describe(v, k) for k, v in live.items()}
    cfg = RunConfig(
        model=session.model_name, model_kwargs=model_kwargs, task=session.task.name,
        num_classes=session.num_classes, data=session.name, n_train=len(session.train),
        n_eval=len(session.eval_set), eval_split=session.eval_split, epochs=int(epochs), lr=float(lr),
        weight_decay=float(weight_decay), batch_size=int(batch_size or session.batch_size), seed=seed,
        device=session.device.type,
        reg_strength=session.reg_strength if reg_strength is None else float(reg_strength),
        regularizer=getattr(session.regularizer, "__name__", None) if session.regularizer else
        ("l2" if (reg_strength or session.reg_strength) else None),
        init_hooks=sorted(session.init_hooks), ema=ema, swa=bool(swa), name=name, parent=parent_id or None,
        tags=tags or {}, precision=check_precision(precision), channels_last=bool(channels_last),
        compile=bool(compile), checkpoint_every=int(checkpoint_every or 0),
        data_view=getattr(session, "data_view", None), kind=kind, extra=dict(extra or {}),
        runtime=[k for k in RUNTIME_FIELDS if described[k][1]],
        **{k: v[0] for k, v in described.items()})
    callbacks = list(callbacks) + _averaging(cfg)  # a bad ema/swa option is refused before a run exists
    if model is None:  # built before the run folder: a model that cannot train leaves nothing on disk
        model = session.new_model(seed=seed, **model_kwargs)
    else:
        model = model.to(session.device)
    validate.model_parameters(model)
    run = session.store.create(cfg.to_json(), name=name)
    with run.failing_on_error():  # a run that fails at start is recorded "failed", never left "running"
        engine = _engine(session, run, model, cfg, live, callbacks, loss_fn, log_every)
        return _launch(session, run, engine, cfg, background, checkpoint)


def resume(session, run_id: str, epochs: int | None = None, background: bool = False, augment=None,
           optimizer=None, lr_schedule=None, early_stopping=None) -> Run:
    """Continue a run from its last checkpoint (from scratch, same seed, when it has none).

    A run trained with a runtime object (a callable optimizer, schedule or augmentation, an
    EarlyStopping object) needs it again: only its description is on disk.
    """
    live_run = session._live_runs.get(run_id)
    if live_run is not None and live_run.running:
        raise RunError(f"run {run_id} is still training")
    run = session.store.load(run_id)
    cfg = RunConfig.from_json(run.config)
    if epochs is not None:
        cfg = cfg.replace(epochs=validate.integer("epochs", epochs, low=1, fix="pass the total number of epochs"))
    given = {"optimizer": optimizer, "lr_schedule": lr_schedule, "augment": augment, "early_stopping": early_stopping}
    missing = [k for k in cfg.runtime if given[k] is None]
    if missing:
        what = ", ".join(f"{k}={getattr(cfg, k)}" for k in missing)
        raise RunError(f"run {run_id} was trained with {what}, which cannot be rebuilt from disk; pass it again: "
                       f"session.resume({run_id!r}, " + ", ".join(f"{k}=..." for k in missing) + ")")
    live = {k: given[k] if given[k] is not None else getattr(cfg, k) for k in RUNTIME_FIELDS}
    run.acquire()  # one owner at a time (RunLockedError names the live owner's PID)
    try:  # nothing below the status change may leave a completed run marked "running"
        state = run.load_checkpoint() if run.checkpoints(mid_epoch=True) else None
        model = session.new_model(seed=cfg.seed, **cfg.model_kwargs)
        if state is not None:
            validate.checkpoint_fits(model, state, run_id)
        engine = _engine(session, run, model, cfg, live, _averaging(cfg), None, 32)
        if state is not None:
            engine.load_state(state)
        session.store.truncate_after(run, state["step"] if state else 0, state["epoch"] if state else 0)
    except BaseException:
        run.release()
        raise
    run.set_status("running", resumed_from=state["epoch"] if state else 0, pid=os.getpid())
    with run.failing_on_error():
        return _launch(session, run, engine, cfg, background, True)


def _engine(session, run, model, cfg: RunConfig, live: dict, callbacks, loss_fn, log_every) -> Engine:
    opt = make_optimizer(live["optimizer"], model.parameters(), cfg.lr, cfg.weight_decay)
    engine = Engine(session, model, opt, loss_fn=loss_fn, run=run, precision=cfg.precision,
                    channels_last=cfg.channels_last, compile=cfg.compile,
                    scheduler=make_schedule(live["lr_schedule"], opt, cfg.epochs),
                    augment=make_augment(live["augment"]), callbacks=callbacks, log_every=log_every,
                    rng=RngStream(cfg.seed), config=cfg.to_json(), checkpoint_every=cfg.checkpoint_every)
    engine.early = EarlyStopping.from_spec(live["early_stopping"])
    # the loader is made once per run: persistent workers then live across its epochs
    engine.loader = session.loader("train", shuffle=True, batch_size=cfg.batch_size, seed=cfg.seed)
    return engine


def _averaging(cfg: RunConfig) -> list:
    """The EMA / SWA callback a run asks for (IV.4), or none."""
    if cfg.ema is None and not cfg.swa:
        return []
    return [WeightAveraging(decay=cfg.ema, swa=cfg.swa)]


def _launch(session, run: Run, engine: Engine, cfg: RunConfig, background: bool, checkpoint: bool) -> Run:
    run.model = engine.model
    run.trainer = engine
    session._live_runs[run.id] = run
    session.last_run = run

    def work():
        try:
            status = engine.run_epochs(engine.loader, cfg.epochs, early=engine.early, checkpoint=checkpoint)
            run.set_status(status, epochs_done=engine.epoch, steps_done=engine.step)
        except BaseException as e:  # noqa: BLE001 - the run on disk records the failure
            run.error = _describe(e)
            run.set_status("failed", error=run.error, epochs_done=engine.epoch, steps_done=engine.step)
            _finish(session, run, engine)
            if isinstance(e, WorkbenchError):
                raise
            raise ModelError(run.error) from e
        _finish(session, run, engine)
        return run

    if background:
        run.thread = session.runner.submit("fit", work)
    else:
        session.runner.call("fit", work)
    return run


def _finish(session, run: Run, engine: Engine) -> None:
    run.close()
    run.export_csv()
    session.model = engine.model
    session.emit("run_end", run=run, status=run.status)
    engine._callback("on_run_end")
    # a finished run lets go of its optimizer state, gradients, loader and step buffers (memory comes back)
    engine.optimizer.zero_grad(set_to_none=True)
    run.trainer = Ended(engine.step, engine.epoch, engine.steps_per_epoch)
    session._live_runs.pop(run.id, None)


def _describe(e: BaseException) -> str:
    if isinstance(e, (DataError, ModelError, WorkbenchError)):
        return str(e)
    return f"training raised {type(e).__name__}: {e}"
