"""Distillation: one small network trained on a teacher's (often an ensemble's) soft targets (recipe IV.5).

``distill(session, teacher)`` trains a student on

    loss = alpha * T² * KL(teacher_T || student_T) + (1 - alpha) * hard_loss(student, y)

where ``x_T = softmax(logits / T)`` (Hinton et al. 2015; T² keeps the soft gradients' scale independent
of T). For an ``Ensemble`` teacher the soft target is the mean of its members' softened probabilities.
For regression the soft term is the MSE to the teacher's prediction (T plays no part).

It reports, on the whole test split (II.3): the teacher, the same student trained from scratch with
``session.fit`` (same initialisation, epochs, optimizer) and the distilled student, with parameters
and the median inference time of each over the test split. The distilled student is a run in the
store (config, per-step and per-epoch metrics, checkpoints) like any other.
"""

from __future__ import annotations

import copy
import inspect
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from workbench.engine.rng import seeded
from workbench.ensemble.members import Ensemble, EnsembleError, EnsembleResult, _record_json
from workbench.errors import ModelError, RunError
from workbench.store import Run
from workbench.train import evaluate, fit

RECIPE = "IV.5"


def distillation_loss(student_out: torch.Tensor, teacher_soft: torch.Tensor, y: torch.Tensor, task,
                      temperature: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, soft, hard) losses. ``teacher_soft``: softened probabilities (classification) or predictions."""
    hard = task.data_loss(student_out, y)
    if task.real_valued:
        soft = F.mse_loss(student_out, teacher_soft)
    else:
        c = student_out.shape[-1]
        log_p = F.log_softmax(student_out.reshape(-1, c) / temperature, dim=-1)
        # batchmean is the true KL per example; x T² so the soft gradients keep their size as T grows
        soft = F.kl_div(log_p, teacher_soft.reshape(-1, c), reduction="batchmean") * temperature ** 2
    return alpha * soft + (1.0 - alpha) * hard, soft, hard


@dataclass
class DistillResult:
    """Teacher vs student from scratch vs distilled student, on the whole test split."""

    table: pd.DataFrame            # model, run_id, params, loss, metric, n_eval, inference_ms
    run: Run                       # the distilled student's run
    scratch_run: Run | None
    student: nn.Module
    temperature: float
    alpha: float
    metric_name: str
    split: str
    notes: list[str] = field(default_factory=list)
    path: Path | None = None

    def row(self, name: str) -> dict:
        return self.table.set_index("model").loc[name].to_dict()

    @property
    def speedup(self) -> float:
        """Teacher inference time / student inference time (median over repeated passes)."""
        return self.row("teacher")["inference_ms"] / max(self.row("distilled")["inference_ms"], 1e-9)

    def summary(self) -> str:
        t, d = self.row("teacher"), self.row("distilled")
        s = f" vs scratch {self.row('scratch')['metric']:.4f}" if "scratch" in set(self.table["model"]) else ""
        return (f"{RECIPE} distilled student {self.metric_name} {d['metric']:.4f}{s}; teacher {t['metric']:.4f} "
                f"({int(t['params'])} vs {int(d['params'])} parameters, {self.speedup:.1f}x faster) "
                f"on all {int(d['n_eval'])} {self.split} examples")

    def to_dict(self) -> dict:
        return {"kind": "distill", "recipe": RECIPE, "temperature": self.temperature, "alpha": self.alpha,
                "metric_name": self.metric_name, "split": self.split, "run_id": self.run.id,
                "scratch_run_id": self.scratch_run.id if self.scratch_run else None,
                "table": self.table.to_dict("records"), "speedup": self.speedup, "notes": self.notes,
                "summary": self.summary(), "time": time.time()}

    def __repr__(self) -> str:
        return f"DistillResult({self.summary()})"


def distill(session, teacher, student=None, temperature: float = 4.0, alpha: float = 0.7, epochs: int | None = None,
            lr: float | None = None, optimizer=None, weight_decay: float | None = None, width: int | None = None,
            seed: int | None = None, batch_size: int | None = None, scratch: bool = True, repeats: int = 7,
            name: str = "distill") -> DistillResult:
    """Train ``student`` on ``teacher``'s soft targets and compare it with the teacher and a scratch student.

    ``teacher``: an nn.Module, an ``Ensemble``/``EnsembleResult`` or a run id / Run (its last
    checkpoint). ``student``: an nn.Module, a factory, or None for ``session.new_model(width=...)`` at
    half the factory's default width (or ``width``) when the factory accepts one. ``alpha`` weighs the
    soft (teacher) term, ``1 - alpha`` the hard-label term. ``scratch=False`` skips the baseline.
    ``epochs``, ``lr``, ``optimizer`` and ``weight_decay`` default to ``session.chosen_config()`` (the LR
    finder's pick, the best search trial or your last completed run; 5 epochs of Adam at 1e-3 without one).
    """
    epochs, lr, optimizer, weight_decay = _chosen(session, epochs, lr, optimizer, weight_decay)
    if not float(temperature) > 0:
        raise EnsembleError(f"temperature must be > 0, got {temperature!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise EnsembleError(f"alpha (weight of the soft targets) must lie in [0, 1], got {alpha!r}")
    if int(epochs) < 1:
        raise EnsembleError(f"epochs must be at least 1, got {epochs!r}")
    temperature, alpha, epochs = float(temperature), float(alpha), int(epochs)
    seed = session.seed if seed is None else int(seed)
    batch_size = int(batch_size or session.batch_size)
    teacher_module, teacher_desc, teacher_ids = _resolve_teacher(session, teacher)
    student_init, model_kwargs = _resolve_student(session, student, width, seed)

    config = {"kind": "distill", "recipe": RECIPE, "model": session.model_name, "model_kwargs": model_kwargs,
              "task": session.task.name, "num_classes": session.num_classes, "data": session.name,
              "n_train": len(session.train), "n_eval": len(session.eval_set), "eval_split": session.eval_split,
              "epochs": epochs, "lr": float(lr), "optimizer": optimizer if isinstance(optimizer, str) else
              repr(optimizer), "weight_decay": float(weight_decay), "batch_size": batch_size, "seed": seed,
              "device": session.device.type, "temperature": temperature, "alpha": alpha, "teacher": teacher_desc,
              "teacher_runs": teacher_ids, "name": name, "parent": teacher_ids[0] if teacher_ids else None,
              "tags": {"recipe": RECIPE},
              # a student not built by the session's factory cannot be rebuilt by session.load_run: say which
              "student": "session" if student is None else getattr(student, "__name__", type(student).__name__)}
    student_model = copy.deepcopy(student_init)
    run = _train(session, config, teacher_module, student_model, optimizer)

    scratch_run = None
    if scratch:  # the same architecture, initialisation and budget, on the hard labels only
        scratch_run = session.fit(epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay, seed=seed,
                                  batch_size=batch_size, model=copy.deepcopy(student_init), model_kwargs=model_kwargs,
                                  name=f"{name}-scratch", tags={"recipe": RECIPE, "distill_baseline": run.id})
        if scratch_run.status != "completed":
            raise RunError(f"the scratch student ended {scratch_run.status} (run {scratch_run.id})")

    split = "test" if session.test is not None else "eval"
    entries = [("teacher", teacher_module, teacher_ids[0] if len(teacher_ids) == 1 else None)]
    if scratch_run is not None:
        entries.append(("scratch", scratch_run.model, scratch_run.id))
    entries.append(("distilled", student_model, run.id))
    rows = _measure_all(session, entries, split, repeats)
    result = DistillResult(table=pd.DataFrame(rows), run=run, scratch_run=scratch_run, student=student_model,
                           temperature=temperature, alpha=alpha, metric_name=session.task.metric, split=split)
    result.path = _record_json(session, "distill", result.to_dict())
    return result


def _chosen(session, epochs, lr, optimizer, weight_decay):
    """The caller's values, the gaps filled from the session's chosen configuration (B.1-B.3)."""
    c = session.chosen_config() if hasattr(session, "chosen_config") else {}
    pick = lambda given, key, default: given if given is not None else c.get(key, default)  # noqa: E731
    return (pick(epochs, "epochs", 5), pick(lr, "lr", 1e-3), pick(optimizer, "optimizer", "adam"),
            pick(weight_decay, "weight_decay", 0.0))


# ------------------------------------------------------------------------------------------- training
def _train(session, config: dict, teacher: nn.Module, student: nn.Module, optimizer) -> Run:
    """The distillation run: the engine with the distillation loss, seeded, whole eval set after each epoch,
    logged, checkpointed and seen by instruments and live views like any fit."""
    task, T, alpha = session.task, config["temperature"], config["alpha"]
    teacher.eval()  # soft targets from the teacher's prediction mode: BN statistics, no dropout

    def loss_fn(model, x, y):
        with torch.no_grad():
            soft_target = _soft_targets(teacher, x, T, task)
        out = model(x)
        loss, soft, hard = distillation_loss(out, soft_target, y, task, T, alpha)
        return loss, {"data_loss": loss, "soft_loss": soft, "hard_loss": hard}, out

    extra = {k: config[k] for k in ("recipe", "temperature", "alpha", "teacher", "teacher_runs", "student")}
    run = fit(session, epochs=config["epochs"], lr=config["lr"], optimizer=optimizer,
              weight_decay=config["weight_decay"], seed=config["seed"], batch_size=config["batch_size"],
              name=config["name"], parent=config["parent"] or False, model=student,
              model_kwargs=config["model_kwargs"], tags=config["tags"], reg_strength=0.0, loss_fn=loss_fn,
              kind="distill", extra=extra, callbacks=[PartMeans(("soft_loss", "hard_loss"))])
    if run.status != "completed":
        raise RunError(f"distillation {run.status} at step {run.trainer.step} (run {run.id}): lower lr or "
                       "temperature")
    return run


class PartMeans:
    """A run callback: per-epoch means of named loss parts (e.g. soft and hard), summed on the device."""

    def __init__(self, names):
        self.names, self.sums, self.n = tuple(names), {}, 0

    def on_step_end(self, engine) -> None:
        for k in self.names:
            v = engine.last_parts[k].detach() * engine.last_batch
            self.sums[k] = v if k not in self.sums else self.sums[k] + v
        self.n += engine.last_batch

    def on_epoch_end(self, engine, row: dict) -> None:
        if self.n:
            values = torch.stack([self.sums[k].float() for k in self.names]).tolist()  # one read an epoch
            row.update({k: v / self.n for k, v in zip(self.names, values, strict=True)})
        self.sums, self.n = {}, 0


def _soft_targets(teacher: nn.Module, x, T: float, task) -> torch.Tensor:
    if isinstance(teacher, Ensemble):
        return teacher(x) if task.real_valued else teacher.probs(x, temperature=T)
    out = teacher(x)
    return out if task.real_valued else F.softmax(out / T, dim=-1)


# ------------------------------------------------------------------------------------------- resolving
def _resolve_teacher(session, teacher):
    """(module on the session's device, a description, the run ids it came from)."""
    if isinstance(teacher, EnsembleResult):
        return teacher.module.to(session.device), f"{teacher.kind} ensemble of {len(teacher.module)}", teacher.run_ids
    if isinstance(teacher, Ensemble):
        return teacher.to(session.device), f"ensemble of {len(teacher)}", []
    if isinstance(teacher, nn.Module):
        return teacher.to(session.device), type(teacher).__name__, []
    if isinstance(teacher, Run | str):
        rid = teacher.id if isinstance(teacher, Run) else teacher
        loaded = session.load_run(rid)
        if loaded.model is None:
            raise RunError(f"teacher run {rid} has no checkpoint to load")
        return loaded.model, f"run {rid}", [rid]
    raise EnsembleError(f"teacher must be an nn.Module, an Ensemble/EnsembleResult or a run id, "
                        f"got {type(teacher).__name__}")


def _resolve_student(session, student, width, seed):
    """(a freshly initialised student on the device, the model_kwargs that rebuild it from the session)."""
    if student is None:
        if session.accepts("width"):
            width = width or _half_default_width(session.factory)
            kwargs = {"width": width} if width else {}
        else:
            kwargs = {}
        return session.new_model(seed=seed, **kwargs), kwargs
    if isinstance(student, nn.Module):
        model = student
    elif callable(student):
        with seeded(seed):  # the student's initialisation from the seed, the process's generators untouched
            offered = {"num_classes": session.output_size, "width": width,
                       "in_channels": session.input_shape[0] if len(session.input_shape) == 3 else None}
            params = inspect.signature(student).parameters
            model = student(**{k: v for k, v in offered.items() if v is not None and k in params})
        if not isinstance(model, nn.Module):
            raise ModelError(f"the student factory returned {type(model).__name__}, not an nn.Module")
    else:
        raise EnsembleError(f"student must be None, an nn.Module or a factory, got {type(student).__name__}")
    model = model.to(session.device)
    x, y = session.batch("train", 2)
    with torch.no_grad():
        model.eval()
        out = model(x.to(session.device))  # materialises lazy layers; the shape must fit the task
        model.train()
    session.task.check_output(out, y.to(session.device))
    return model, {}


def _half_default_width(factory):
    try:
        default = inspect.signature(factory).parameters["width"].default
    except (KeyError, TypeError, ValueError):
        return None
    return max(1, default // 2) if isinstance(default, int) else None


# ------------------------------------------------------------------------------------------- measuring
def _measure_all(session, entries, split: str, repeats: int) -> list[dict]:
    """Whole-split loss/metric of each (label, model, run_id), and its median inference time over the split.

    The timed passes are interleaved (teacher, student, teacher, ...) so that load from other processes
    falls on every model alike; the ratio is the number to read, not the absolute milliseconds.
    """
    batches = [x.to(session.device) for x, _ in session.loader(split, shuffle=False, batch_size=512)]
    rows, times, modes = [], {}, []
    for label, model, run_id in entries:
        ev = evaluate(session, model, split)
        rows.append({"model": label, "run_id": run_id, "params": sum(p.numel() for p in model.parameters()),
                     "loss": ev["loss"], "metric": ev["metric"], "n_eval": ev["n"]})
        modes.append(model.training)
        model.eval()
        times[label] = []
    try:
        with torch.no_grad():
            for _label, model, _ in entries:  # warm-up: first-call allocations are not inference cost
                _pass(session, model, batches)
            for _ in range(max(1, repeats)):
                for label, model, _ in entries:
                    times[label].append(_pass(session, model, batches))
    finally:
        for (_, model, _), was in zip(entries, modes, strict=True):
            model.train(was)
    for row in rows:
        row["inference_ms"] = 1000 * statistics.median(times[row["model"]])
        row["inference_ms_min"] = 1000 * min(times[row["model"]])  # the least disturbed pass, under CPU load
    return rows


def _pass(session, model, batches) -> float:
    cuda = session.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for x in batches:
        model(x)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0
