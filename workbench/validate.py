"""Arguments checked at the door: a bad value to fit, a session, a check, a search or early stopping
is refused before anything trains or touches the disk, with the problem and the fix named.

Each function raises a ``WorkbenchError`` subclass whose ``problem`` says what is wrong (the
argument, the value) and whose ``fix`` says what to pass instead. Recipe steps guarded here: II.1
(seeds), II.2 (augmentation off first), II.8 (overfit one batch), III.R9 (early stopping), III.B
(learning rate, search budgets).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping

import torch

from workbench.errors import ConfigError, DataError, ModelError, RunError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "step", "plateau")
EARLY_STOPPING_KEYS = ("patience", "monitor", "mode", "restore_best", "min_delta")
MONITORS = ("val_loss", "val_metric", "train_loss", "train_metric")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SEED = 2**63 - 1
MAX_LR = 10.0  # far above any learning rate that trains (B.1 sweeps 1e-7..10)


# -- numbers ----------------------------------------------------------------------------------------
def integer(name: str, value, *, low: int | None = None, high: int | None = None, fix: str) -> int:
    """``value`` as an int within [low, high]; bools, NaN, strings and fractions are refused."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok = math.isfinite(value) and float(value).is_integer()
    if not ok:
        raise ConfigError(f"{name} must be a whole number, got {value!r}", fix=fix)
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}" if low is not None else f"<= {high}"
        raise ConfigError(f"{name} must be {bounds}, got {v}", fix=fix)
    return v


def real(name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False,
         high_open: bool = False, fix: str) -> float:
    """``value`` as a finite float within its bounds; bools, NaN, inf and strings are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}", fix=fix)
    v = float(value)
    if low is not None and (v <= low if low_open else v < low):
        raise ConfigError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {v:g}", fix=fix)
    if high is not None and (v >= high if high_open else v > high):
        raise ConfigError(f"{name} must be {'<' if high_open else '<='} {high:g}, got {v:g}", fix=fix)
    return v


def flag(name: str, value, fix: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}", fix=fix)
    return value


# -- fit ----------------------------------------------------------------------------------------------
def fit_options(session, *, epochs, lr, optimizer="adam", weight_decay=0.0, augment=False, lr_schedule=None,
                early_stopping=None, batch_size=None, seed=None, name=None, reg_strength=None, ema=None,
                swa=False, callbacks=(), model_kwargs=None, tags=None, checkpoint=True, background=False) -> None:
    """Every argument of ``Session.fit`` checked before a run folder is created."""
    integer("epochs", epochs, low=1, high=1_000_000, fix="pass the number of passes over the data, e.g. epochs=5")
    learning_rate(lr)
    optimizer_spec(optimizer)
    real("weight_decay", weight_decay, low=0.0, fix="pass a decay >= 0 such as 1e-4, or 0 for none (III.R8)")
    augment_spec(session, augment)
    schedule_spec(lr_schedule)
    early_stopping_spec(early_stopping)
    if batch_size is not None:
        integer("batch_size", batch_size, low=1, high=1_000_000, fix="pass examples per step, e.g. batch_size=64")
    if seed is not None:
        seed_value(seed)
    if name is not None:
        run_name(name)
    if reg_strength is not None:
        real("reg_strength", reg_strength, low=0.0, fix="pass a strength >= 0, e.g. reg_strength=1e-4, or 0 for none")
    if ema is not None:
        real("ema", ema, low=0.0, high=1.0, low_open=True, high_open=True,
             fix="pass a decay between 0 and 1 such as ema=0.99, or ema=None for no averaging (IV.4)")
    flag("swa", swa, "pass swa=True to average the weights of the last epochs, else False")
    flag("checkpoint", checkpoint, "pass checkpoint=False to skip checkpoints, else leave it True")
    flag("background", background, "pass background=True to train in a thread, else False")
    _mapping("model_kwargs", model_kwargs, "pass the model factory's keywords as a dict, e.g. {'width': 64}")
    _mapping("tags", tags, "pass tags as a dict of names to values, e.g. {'note': 'baseline'}")
    if isinstance(callbacks, (str, bytes)) or not hasattr(callbacks, "__iter__"):
        raise ConfigError(f"callbacks must be a list of callback objects, got {callbacks!r}",
                          fix="pass callbacks=[my_callback] (objects with on_step_end, on_epoch_end, ...)")


def learning_rate(lr) -> float:
    fix = "pass a learning rate such as lr=1e-3; session.lr_find() suggests one (B.1)"
    v = real("lr", lr, low=0.0, low_open=True, fix=fix)
    if v > MAX_LR:
        raise ConfigError(f"lr={v:g} is above {MAX_LR:g}, far past any rate that trains", fix=fix)
    return v


def seed_value(seed) -> int:
    return integer("seed", seed, low=0, high=MAX_SEED, fix="pass a whole number such as seed=0 (II.1)")


def run_name(name) -> str:
    if not isinstance(name, str) or not RUN_NAME.match(name):
        raise ConfigError(f"run name {name!r} cannot be part of a folder name",
                          fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def optimizer_spec(optimizer) -> None:
    if callable(optimizer):
        return
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}",
                          fix=f"pass one of {', '.join(OPTIMIZERS)} (Adam first, III.M2) or a callable(params, lr, "
                              "weight_decay)")


def schedule_spec(spec) -> None:
    if spec is None or callable(spec):
        return
    if not isinstance(spec, str) or spec not in SCHEDULES:
        raise ConfigError(f"unknown lr_schedule {spec!r}",
                          fix=f"pass None (no decay first, III.M4), one of {', '.join(SCHEDULES)}, "
                              "or a callable(optimizer)")


def augment_spec(session, augment) -> None:
    if callable(augment) or augment is False or augment is None:
        return
    if augment is not True:
        raise ConfigError(f"augment must be True, False or a callable on a batch, got {augment!r}",
                          fix="pass augment=False (II.2: off first), True for small image shifts, or a callable")
    shape = tuple(getattr(session, "input_shape", ()))
    if len(shape) != 3:
        raise ConfigError(f"augment=True shifts images, but each input here has shape {shape}, not "
                          "(channels, height, width)",
                          fix="pass augment=False, or a callable that augments your kind of input")


def early_stopping_spec(spec) -> None:
    """None/False, True, an int patience >= 1, a dict of EarlyStopping's keywords, or an EarlyStopping."""
    fix = "pass early_stopping=3 (patience) or a dict such as {'patience': 3, 'monitor': 'val_loss'} (III.R9)"
    if type(spec).__name__ == "EarlyStopping":
        spec = {"patience": spec.patience, "monitor": spec.monitor, "mode": spec.mode}
    if spec is None or isinstance(spec, bool):
        return
    if isinstance(spec, numbers.Real):
        integer("early_stopping patience", spec, low=1, fix=fix)
        return
    if not isinstance(spec, dict):
        raise ConfigError(f"early_stopping must be an int patience or a dict, got {spec!r}", fix=fix)
    unknown = sorted(set(spec) - set(EARLY_STOPPING_KEYS), key=str)
    if unknown:
        raise ConfigError(f"early_stopping has no option {', '.join(map(repr, unknown))}",
                          fix=f"use only {', '.join(EARLY_STOPPING_KEYS)}")
    if "patience" in spec:
        integer("early_stopping patience", spec["patience"], low=1, fix=fix)
    if spec.get("monitor", "val_loss") not in MONITORS:
        raise ConfigError(f"early_stopping monitor {spec['monitor']!r} is not a column of the epoch table",
                          fix=f"use one of {', '.join(MONITORS)}")
    if spec.get("mode", "min") not in ("min", "max"):
        raise ConfigError(f"early_stopping mode must be 'min' or 'max', got {spec['mode']!r}",
                          fix="use 'min' for losses and 'max' for metrics such as accuracy")
    if "min_delta" in spec:
        real("early_stopping min_delta", spec["min_delta"], low=0.0, fix="pass a small margin >= 0 such as 1e-4")
    if "restore_best" in spec:
        flag("early_stopping restore_best", spec["restore_best"], "pass True or False")


def _mapping(name: str, value, fix: str) -> None:
    if value is not None and not (isinstance(value, dict) and all(isinstance(k, str) for k in value)):
        raise ConfigError(f"{name} must be a dict with string keys, got {value!r}", fix=fix)


# -- session and data ---------------------------------------------------------------------------------
TASKS = ("classification", "regression", "sequence")


def session_args(*, task, seed, batch_size, num_workers, reg_strength, device) -> None:
    """The plain arguments of ``Session(...)``, before any data is read."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}", fix=f"pass task= one of {', '.join(TASKS)}")
    seed_value(seed)
    integer("batch_size", batch_size, low=1, high=1_000_000, fix="pass examples per step, e.g. batch_size=64")
    integer("num_workers", num_workers, low=0, high=1024, fix="pass 0 (load in the main process) or a few workers")
    real("reg_strength", reg_strength, low=0.0, fix="pass a strength >= 0, e.g. reg_strength=1e-4, or 0 for none")
    device_spec(device)


def device_spec(device) -> None:
    fix = "pass device='auto' (a GPU when there is one), 'cpu' or 'cuda'"
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ConfigError(f"device must be a string such as 'cpu', got {device!r}", fix=fix)
    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}", fix=fix) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU", fix="pass device='cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device type {dev.type!r} is not supported", fix=fix)


def raw_data(data, split: str) -> None:
    """An ``(X, Y)`` pair as given: both tensors (or arrays) with one row per example, as many X as Y."""
    fix = f"pass {split} as a map-style Dataset yielding (x, y), an (X, Y) pair of tensors, or an image folder path"
    if data is None:
        if split == "train":
            raise DataError("a training set is required", fix=fix)
        return
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        if isinstance(data, Mapping) or not (isinstance(data, (str, os.PathLike))
                                             or (hasattr(data, "__getitem__") and hasattr(data, "__len__"))):
            raise DataError(f"{split}: expected a Dataset, an (X, Y) pair or a folder, got {type(data).__name__}",
                            fix=fix)
        return  # a Dataset or a folder: checked when read
    X, Y = (torch.as_tensor(v) if _array_like(v) else v for v in data)
    for what, t in (("X", X), ("Y", Y)):
        if not isinstance(t, torch.Tensor):
            raise DataError(f"{split}: {what} is a {type(t).__name__}, not a tensor or array",
                            fix=f"pass {split} as (X, Y) with X of shape (N, ...) and Y of shape (N,)")
        if t.dim() == 0:
            raise DataError(f"{split}: {what} is a single number (a 0-d tensor), not one row per example",
                            fix=f"pass {split} as (X, Y) with X of shape (N, ...) and Y of shape (N,)")
    if len(X) != len(Y):
        raise DataError(f"{split}: X has {len(X)} examples but Y has {len(Y)}",
                        fix="pass one label per example (X and Y of the same length)")
    if len(X) == 0:
        raise DataError(f"{split} is empty: X has no examples", fix=f"pass at least one example in {split}")
    if X.is_floating_point() and not torch.isfinite(X).all():
        rows = torch.nonzero(~torch.isfinite(X.reshape(len(X), -1)).all(1)).flatten()[:5].tolist()
        raise DataError(f"{split}: X holds NaN or inf values (examples {rows})",
                        fix="drop or repair those examples (e.g. torch.nan_to_num) before building the session")


def _array_like(v) -> bool:
    return hasattr(v, "__array__") and not isinstance(v, torch.Tensor)


def session_data(train, others: dict, task: str) -> None:
    """Examples of every split shaped alike, each input at least 1-D; labels usable for the task."""
    from workbench.datasets import labels_of

    x0 = torch.as_tensor(train[0][0])
    if x0.dim() == 0:
        raise DataError("train: each example's input is a single number (a 0-d tensor)",
                        fix="give the inputs a feature axis: X of shape (N, 1), e.g. X.unsqueeze(1)")
    for split, ds in others.items():
        if ds is None:
            continue
        xs = torch.as_tensor(ds[0][0])
        if tuple(xs.shape) != tuple(x0.shape):
            raise DataError(f"{split}: examples have shape {tuple(xs.shape)} but train's have {tuple(x0.shape)}",
                            fix=f"preprocess {split} like train (same size and channels), "
                                "e.g. the same image_folder(size=)")
    for split, ds in {"train": train, **others}.items():
        if ds is not None:
            labels(labels_of(ds), split, task)


def labels(y: torch.Tensor, split: str, task: str) -> None:
    if not y.is_floating_point():
        return
    nan = torch.isnan(y) | torch.isinf(y)
    if nan.any():
        where = torch.nonzero(nan.reshape(len(y), -1).any(1)).flatten()[:5].tolist()
        raise DataError(f"{split}: labels hold NaN or inf (examples {where})",
                        fix="drop or repair those examples before building the session")
    if task in ("classification", "sequence") and torch.equal(y, y.round()):
        raise DataError(f"{split}: classification labels are floats ({y.flatten()[:3].tolist()} ...)",
                        fix="pass integer class indices, e.g. Y.long()")


def model_parameters(model) -> None:
    """The model has something to train."""
    if not any(p.requires_grad for p in model.parameters()):
        raise ModelError(f"the model {type(model).__name__} has no trainable parameters, so training cannot "
                         "change it", fix="give it layers with weights (nn.Linear, nn.Conv2d...) or unfreeze them "
                                         "(requires_grad=True)")


# -- checks, search, resume ---------------------------------------------------------------------------
def check_options(name: str, options: dict) -> None:
    """Budgets of the sanity checks: how many batches and steps (II.8)."""
    fix = "pass a positive count, e.g. batches=5, steps=200 (II.8: overfit 5-10 batches)"
    for key in ("batches", "steps", "epochs", "batch_size", "n", "trials"):
        if key in options and options[key] is not None:
            integer(f"{name} {key}", options[key], low=1, fix=fix)
    if "lr" in options and options["lr"] is not None:
        learning_rate(options["lr"])


def search_options(*, trials=None, epochs=None, total_trials=None) -> None:
    """A search's budget (B.2, B.3): trials >= 0 (0 runs none), epochs and total_trials >= 1."""
    if trials is not None:
        integer("trials", trials, low=0, fix="pass how many trials this call runs, e.g. trials=8")
    if epochs is not None:
        integer("epochs", epochs, low=1, fix="pass epochs per trial, 1-5 for a coarse search (B.2), or leave it out")
    if total_trials is not None:
        integer("total_trials", total_trials, low=1, fix="pass the study's total budget, e.g. total_trials=40")


def checkpoint_fits(model, state: dict, run_id: str) -> None:
    """The checkpoint's weights fit the model the session builds: same names and shapes."""
    saved, now = state.get("model", {}), model.state_dict()
    missing, extra = sorted(set(now) - set(saved)), sorted(set(saved) - set(now))
    wrong = [k for k in set(now) & set(saved) if tuple(now[k].shape) != tuple(saved[k].shape)]
    if missing or extra or wrong:
        detail = "; ".join(s for s in (
            f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
            f"other shapes for {sorted(wrong)[:3]}" if wrong else "") if s)
        raise RunError(f"run {run_id} was trained with another model than this session builds ({detail})",
                       fix=f"resume it from a session built with its model ({state.get('meta', {}).get('model')!r} "
                           "with the same arguments), or start a new run with session.fit()")
