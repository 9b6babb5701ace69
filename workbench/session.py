"""The Session: one object holding the data, the model factory, the loss, the seed and every run.

Checks, instruments and views read and write only through it (see DESIGN.md). Seeding covers
python, numpy, torch and the DataLoader (recipe II.1); runs persist under ``root``.
"""

from __future__ import annotations

import copy
import inspect
import random
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from workbench import validate
from workbench.book import Book, ReportsView, ResultsView
from workbench.datasets import as_dataset, labels_of, preprocessing_of
from workbench.engine.rng import seeded
from workbench.engine.runner import Runner
from workbench.errors import DataError, ModelError, RunError
from workbench.events import EventBus, Handle
from workbench.store import Run, RunStore
from workbench.tasks import make_task


class Session:
    """The shared training session behind every check, instrument and view.

    ``model`` is an ``nn.Module`` (copied for each run from its initial state) or a zero-argument
    factory; a factory that accepts ``num_classes``, ``in_channels`` or ``width`` gets them.
    ``train``/``test``/``val`` are map-style Datasets yielding ``(x, y)`` or ``(X, Y)`` tensor pairs.
    """

    def __init__(self, model, train, test=None, *, val=None, task: str = "classification",
                 num_classes: int | None = None, loss: Callable | None = None,
                 regularizer: Callable[[nn.Module], torch.Tensor] | None = None, reg_strength: float = 0.0,
                 seed: int = 0, device: str = "auto", root="runs", batch_size: int = 64, name: str | None = None,
                 num_workers: int = 0, deterministic: bool = False, output=None, forward_kwargs=None,
                 time_first: bool = False):
        from workbench.adapt import adapter

        validate.session_args(task=task, seed=seed, batch_size=batch_size, num_workers=num_workers,
                              reg_strength=reg_strength, device=device)  # issue 13: bad input named before use
        for split, data in (("train", train), ("test", test), ("val", val)):
            validate.raw_data(data, split)
        # a model returning (logits, loss) / a dict, needing keyword inputs, or time-first (see workbench.adapt)
        self._adapt = adapter(output, forward_kwargs, time_first)
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.num_workers = int(num_workers)
        self.batch_size = int(batch_size)
        self.train = as_dataset(train, "train")
        if self.train is None:
            raise DataError("a training set is required")
        self.test = as_dataset(test, "test")
        self.val = as_dataset(val, "val")
        validate.session_data(self.train, {"val": self.val, "test": self.test}, task)
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        self.regularizer = regularizer
        self.reg_strength = float(reg_strength)
        self.bus = EventBus()
        self.store = RunStore(root)
        self.name = name or getattr(self.train, "name", "") or type(self.train).__name__
        self.runner = Runner(self.name)  # long work runs here, one job at a time (fit, checks, search, ...)
        self._live_runs: dict[str, Run] = {}
        self.last_run: Run | None = None
        self.book = Book(self._book_directory, emit=self.emit, context=self)  # every result, recorded here
        self.results, self.reports = ResultsView(self.book), ReportsView(self.book)  # older dict-shaped views
        self.human_baseline: float | None = None  # recipe II.6
        self.instruments: list = []
        self.init_hooks: dict[str, Callable[[nn.Module], None]] = {}  # name -> hook(model), run by new_model

        x0, y0 = self.train[0]
        self.input_shape = tuple(x0.shape)
        self._factory, self._template = self._model_source(model)
        self.model_name = getattr(model, "__name__", None) or type(model).__name__
        if task in ("classification", "sequence") and num_classes is None:
            num_classes = self._infer_num_classes()
        self.task = make_task(task, num_classes=num_classes, loss=loss)
        self._validate_labels()
        self.model = self.new_model()

    # ------------------------------------------------------------------------------- properties
    @property
    def num_classes(self) -> int | None:
        return self.task.num_classes

    @property
    def eval_set(self) -> Dataset:
        """The held-out set evaluated after every epoch: val when given, else test (recipe II.3)."""
        return self.val if self.val is not None else (self.test if self.test is not None else self.train)

    @property
    def eval_split(self) -> str:
        return "val" if self.val is not None else ("test" if self.test is not None else "train")

    @property
    def preprocessing(self):
        return preprocessing_of(self.train)

    @property
    def root(self):
        return self.store.root

    def describe(self) -> str:
        """One line for a title bar: data · model · seed · device."""
        return f"{self.name} · {self.model_name} · seed {self.seed} · {self.device.type}"

    def __repr__(self) -> str:
        return f"Session({self.describe()}, task={self.task.name}, runs={len(self.store.ids())})"

    # ------------------------------------------------------------------------------- seeding
    def seed_everything(self, seed: int | None = None) -> int:
        """Seed python, numpy and torch process-wide (recipe II.1), for the user's own code; returns the seed.

        The package itself never calls it: its trainings draw from their own streams (engine/rng.py)."""
        seed = self.seed if seed is None else int(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if self.deterministic and self.device.type == "cuda":
            # cuDNN picks non-deterministic convolution kernels unless told otherwise (recipe II.1 on a GPU)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        return seed

    def rng_state(self) -> dict:
        """The global RNG states, to restore after a check (a check must leave no trace)."""
        state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def set_rng_state(self, state: dict) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if "cuda" in state:
            torch.cuda.set_rng_state_all(state["cuda"])

    # ------------------------------------------------------------------------------- models
    def new_model(self, width: int | None = None, seed: int | None = None, **kwargs) -> nn.Module:
        """A fresh model with the session's seeded initialisation, on the session's device.

        ``width`` (and other keyword arguments) go to a factory that accepts them (recipe II.9).
        """
        if self.deterministic and self.device.type == "cuda":
            # cuDNN picks non-deterministic convolution kernels unless told otherwise (recipe II.1 on a GPU)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        with seeded(self.seed if seed is None else int(seed)):  # the process's generators are left alone
            if self._template is not None:
                if width is not None or kwargs:
                    raise ModelError("the session was given a module, not a factory; "
                                     "pass a factory accepting width= for capacity experiments")
                model = copy.deepcopy(self._template)
            else:
                model = self._build(width, **kwargs)
            model = self._adapt(model).to(self.device)
            self._probe(model)
            for hook in self.init_hooks.values():  # e.g. the output bias set by apply_bias_init (II.5)
                with torch.no_grad():
                    hook(model)
        return model

    @property
    def factory(self) -> Callable | None:
        """The model factory, or None when the session was given a module."""
        return self._factory

    def accepts(self, name: str) -> bool:
        """Whether the model factory takes keyword ``name`` (e.g. ``width``)."""
        if self._factory is None:
            return False
        try:
            params = inspect.signature(self._factory).parameters
        except (TypeError, ValueError):
            return False
        return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())

    def _model_source(self, model):
        if isinstance(model, nn.Module):
            return None, copy.deepcopy(model)
        if callable(model):
            return model, None
        raise ModelError(f"model must be an nn.Module or a zero-argument factory, got {type(model).__name__}")

    def _build(self, width, **kwargs) -> nn.Module:
        offered = {"num_classes": self.output_size,
                   "in_channels": self.input_shape[0] if len(self.input_shape) == 3 else None,
                   "width": width, **kwargs}
        args = {k: v for k, v in offered.items() if v is not None and self.accepts(k)}
        try:
            model = self._factory(**args)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"the model factory {self.model_name}({args}) raised {type(e).__name__}: {e}") from e
        if not isinstance(model, nn.Module):
            raise ModelError(f"the model factory returned {type(model).__name__}, not an nn.Module")
        return model

    def _probe(self, model: nn.Module) -> None:
        """One forward pass on two examples: materialises lazy layers and checks the output shape."""
        x, y = self.batch("train", 2)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(x.to(self.device))
        except Exception as e:  # noqa: BLE001
            hint = ("; if forward needs more inputs, pass them as Session(forward_kwargs={...})"
                    if isinstance(e, TypeError) and "argument" in str(e) else "")
            raise ModelError(f"the model raised {type(e).__name__} on an input batch of shape "
                             f"{tuple(x.shape)}: {e}{hint}") from e
        finally:
            model.train(was_training)
        if not isinstance(out, torch.Tensor):
            from workbench.adapt import describe, suggest

            raise ModelError(f"the model returned {describe(out)}; it must return a tensor: "
                             f"pass {suggest(out)} to say which part is the prediction")
        if hasattr(self, "task"):
            self.task.check_output(out, y.to(self.device))

    # ------------------------------------------------------------------------------- data
    def loader(self, split: str = "train", *, shuffle: bool | None = None, batch_size: int | None = None,
               seed: int | None = None, drop_last: bool = False) -> DataLoader:
        """A DataLoader over a split, its shuffling seeded from the session's seed (recipe II.1)."""
        ds = self.split(split)
        g = torch.Generator().manual_seed(self.seed if seed is None else int(seed))
        return DataLoader(ds, batch_size=batch_size or self.batch_size,
                          shuffle=(split == "train") if shuffle is None else shuffle,
                          generator=g, drop_last=drop_last, num_workers=self.num_workers,
                          worker_init_fn=_seed_worker if self.num_workers else None,
                          persistent_workers=self.num_workers > 0, pin_memory=self.device.type == "cuda")

    def split(self, name: str) -> Dataset:
        ds = {"train": self.train, "test": self.test, "val": self.val, "eval": self.eval_set}.get(name)
        if ds is None:
            raise DataError(f"the session has no {name!r} split")
        return ds

    def batch(self, split: str = "train", n: int | None = None, start: int = 0):
        """A fixed batch: the first ``n`` examples of a split (no shuffling), as tensors."""
        ds = self.split(split)
        n = min(n or self.batch_size, len(ds))
        items = [ds[i] for i in range(start, start + n)]
        try:
            return torch.stack([torch.as_tensor(it[0]) for it in items]), \
                torch.stack([torch.as_tensor(it[1]) for it in items])
        except RuntimeError as e:
            raise DataError(f"{split}: examples have different shapes and cannot form a batch ({e})") from None

    def labels(self, split: str = "train") -> torch.Tensor:
        return labels_of(self.split(split))

    def _infer_num_classes(self) -> int:
        ys = [labels_of(d) for d in (self.train, self.val, self.test) if d is not None]
        return max(int(y.max()) for y in ys) + 1

    @property
    def output_size(self) -> int:
        """Outputs per example the model must give: classes, vocabulary, or regression targets."""
        if self.task.num_classes is not None:
            return self.task.num_classes
        return max(1, int(torch.as_tensor(self.train[0][1]).numel()))

    def _validate_labels(self) -> None:
        for name in ("train", "val", "test"):
            ds = getattr(self, name)
            if ds is not None:
                self.task.check_labels(labels_of(ds), name)

    # ------------------------------------------------------------------------------- objective
    def data_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.task.data_loss(out, y)

    def reg_loss(self, model: nn.Module, strength: float | None = None) -> torch.Tensor:
        """The regularization term times its strength: the user's regularizer, else explicit L2."""
        k = self.reg_strength if strength is None else float(strength)
        if k == 0.0:
            return torch.zeros((), device=self.device)
        if self.regularizer is not None:
            return k * self.regularizer(model)
        return k * sum((p * p).sum() for n, p in model.named_parameters() if p.dim() > 1)

    # ------------------------------------------------------------------------------- events
    def on(self, event: str, callback: Callable, every: int = 1) -> Handle:
        """Call ``callback(event)`` on ``event``; returns a handle whose ``remove()`` detaches it."""
        return self.bus.on(event, callback, every)

    def emit(self, event: str, **payload) -> None:
        self.bus.emit(event, session=self, **payload)

    # ------------------------------------------------------------------------------- training
    def fit(self, epochs: int = 5, lr: float = 1e-3, optimizer="adam", weight_decay: float = 0.0,
            augment=False, lr_schedule=None, early_stopping=None, callbacks=(), *, background: bool = False,
            **options) -> Run:
        """Train a fresh seeded model (Adam, no decay, no augmentation by default: II.2, III.M2, III.M4).

        After each epoch the WHOLE held-out set is evaluated (II.3). Returns the Run; with
        ``background=True`` it trains as a job of the session's runner (``run.stop()``, ``run.wait()``).
        Speed options: ``precision="32" | "bf16" | "fp16"`` (autocast; a grad scaler for fp16),
        ``channels_last=True``, ``compile=True`` (torch.compile), ``checkpoint_every=K`` steps
        (mid-epoch checkpoints), ``log_every=N`` (step losses read from the device every N steps).
        """
        from workbench.train import fit

        return fit(self, epochs=epochs, lr=lr, optimizer=optimizer, weight_decay=weight_decay, augment=augment,
                   lr_schedule=lr_schedule, early_stopping=early_stopping, callbacks=callbacks,
                   background=background, **options)

    def resume(self, run_id: str, epochs: int | None = None, *, background: bool = False, augment=None,
               optimizer=None, lr_schedule=None, early_stopping=None) -> Run:
        """Continue a run from its last checkpoint, up to ``epochs`` in total (its config's by default).

        Runtime objects the run was trained with (a callable optimizer, schedule or augmentation) are
        passed again; a run that needs one says which."""
        from workbench.train import resume

        return resume(self, run_id, epochs=epochs, background=background, augment=augment, optimizer=optimizer,
                      lr_schedule=lr_schedule, early_stopping=early_stopping)

    # ------------------------------------------------------------------------------- runs
    def runs(self) -> pd.DataFrame:
        """Every run under ``root`` (also after a kernel restart), newest last; ``changed`` / ``one_thing``
        say what each run changed from the run it started from (recipe III.M3)."""
        from workbench.tune.compare import annotate_runs

        return annotate_runs(self.store.table(self._live_runs), self)

    def register_run(self, run: Run) -> None:
        """Make a run created outside ``fit`` (e.g. distillation) known as live to this session."""
        self._live_runs[run.id] = run

    def run(self, run: Run | str) -> Run:
        """A run by id, live in this process or on disk; a Run is returned as it is."""
        if isinstance(run, Run):
            return run
        if not isinstance(run, str):
            raise RunError(f"expected a Run or a run id, got {type(run).__name__}",
                           fix="pass a Run or an id from session.runs()")
        live = self._live_runs.get(run)
        if live is not None:
            return live
        loaded = self.store.load(run)
        loaded.model_loader = self._weights  # ``run.model`` reads the weights only when asked (memory)
        return loaded

    def load_run(self, run_id: str, checkpoint=None) -> Run:
        """A run from disk with its metrics, and its weights loaded into ``run.model``."""
        run = self.store.load(run_id)
        run.model = self._weights(run, checkpoint)
        return run

    def _weights(self, run: Run, checkpoint=None):
        """A fresh model holding ``run``'s checkpoint, or None when it has none. By default the weights the
        run ended with: the last checkpoint, or the best epoch's when early stopping restored it."""
        if not run.checkpoints():
            return None
        if checkpoint is None:
            checkpoint = _restored_checkpoint(run)
        state = run.load_checkpoint(checkpoint)
        model = self.new_model(**run.config.get("model_kwargs", {}))
        validate.checkpoint_fits(model, state, run.id)
        model.load_state_dict(state["model"])
        return model

    # ------------------------------------------------------------------------------- later parts
    # Each call below records its result in the session's book (workbench/book.py), whoever asked:
    # a notebook, the CLI or a button in the app. Views read the book; they never write results.
    def audit(self, splits=("train", "test"), **options):
        """Part I: duplicates, corruption, label issues, imbalance and leakage (recipe I.2)."""
        from workbench.data.audit import audit_session

        return self.book.record("audit", self.runner.call("audit", audit_session, self, splits=splits, **options))

    def check(self, name: str, **options):
        """Run one sanity check of part II by name; returns its Verdict (recorded by ``run_check``)."""
        from workbench.checks import run_check

        return run_check(self, name, **options)

    def checks(self, names=None, **options) -> list:
        """Run every check that applies to the task (or ``names``); returns their Verdicts."""
        from workbench.checks import run_checks

        return run_checks(self, names=names, **options)

    def apply_bias_init(self):
        """Set the output bias as the bias_init check suggests (recipe II.5)."""
        from workbench.checks.bias_init import apply_bias_init

        return apply_bias_init(self)

    def instrument(self, names="default", every: int | None = None, **options):
        """Attach part III instruments (a name, a list, or "default"); returns detachable handles."""
        from workbench.instruments import attach

        return attach(self, names=names, every=every, **options)

    def lr_find(self, **options):
        """LR range test (recipe B.1)."""
        from workbench.tune.lr_find import lr_find

        return self.book.record("lr_find", self.runner.call("lr_find", lr_find, self, **options))

    def search(self, space=None, **options):
        """Random search over LR and weight decay on Optuna (recipe B.2, B.3)."""
        from workbench.tune.search import search

        return self.book.record("search", self.runner.call("search", search, self, space=space, **options))

    def diagnose(self, run=None, **options):
        """Findings on a run's curves with the recipe's advice (recipe B.4); the last run you trained by default."""
        from workbench.chosen import last_user_run
        from workbench.tune.diagnose import diagnose

        if run is None:
            run = last_user_run(self, completed=False) or self.last_run
        return self.book.record("diagnosis", diagnose(self, run, **options))

    def interpret(self, run=None, split: str | None = None):
        """The confusion matrix and top losses of a finished run on the evaluation split (recipe B.4, I.2);
        the last completed run you trained by default."""
        from workbench.chosen import last_user_run
        from workbench.interpret import interpret

        run = self.run(run) if run is not None else last_user_run(self)
        return self.book.record("interpretation", interpret(self, run, split))

    def compare(self, run_a, run_b):
        """Configuration diff and metric deltas of two runs (recipe III.M3)."""
        from workbench.tune.compare import compare

        return self.book.record("compare", compare(self, run_a, run_b))

    def ensemble(self, kind: str = "seeds", n: int = 5, **options):
        """Ensembles of seeds, configurations or checkpoints (recipe IV.1-IV.3); seeds train with
        ``chosen_config()`` unless ``run=`` or lr/epochs/... are given."""
        from workbench.ensemble import ensemble

        return self.book.record("ensemble", self.runner.call("ensemble", ensemble, self, kind=kind, n=n,
                                                                **options))

    def distill(self, teacher, student=None, **options):
        """Distil a teacher (often an ensemble) into one network (recipe IV.5), trained with ``chosen_config()``
        unless lr/epochs/... are given."""
        from workbench.ensemble import distill

        return self.book.record("distill", self.runner.call("distill", distill, self, teacher, student, **options))

    # ------------------------------------------------------------------------------- the result book
    def chosen_config(self) -> dict:
        """What ensembles and distillation train with: the LR finder's pick, else the best search trial,
        else the last completed run you trained; ``source`` says where it came from (B.1-B.3, IV)."""
        from workbench.chosen import chosen_config

        return chosen_config(self)

    def choose_config(self, **values) -> dict:
        """Set lr, epochs, optimizer, weight_decay or batch_size by hand; it wins over the found ones."""
        from workbench.chosen import choose_config

        return choose_config(self, **values)

    @property
    def human_baseline(self) -> float | None:
        """Your accuracy on the human-baseline sample (II.6), once all of it is answered; read back from the
        book after a reload. Set it by hand to a number, or to None."""
        mine = getattr(self, "_human_baseline", None)
        if mine is not None:
            return mine
        hb = self.book.get("human_baseline") or {}
        return float(hb["accuracy"]) if hb.get("complete") else None

    @human_baseline.setter
    def human_baseline(self, value) -> None:
        self._human_baseline = None if value is None else float(value)

    def _book_directory(self):
        """Where the book lives: ``<root>/book/<key>``, the key naming the data, task, model and seed, so a
        new Session (a new browser tab) on the same root and data reads the same results."""
        from workbench.book import book_key

        return self.store.root / "book" / book_key(self)

    def with_data(self, changes=None, *, exclude=None, relabel=None) -> Session:
        """A new Session with examples left out or relabelled (recipe I.2 acted on); runs record it.

        ``changes``: ``report.exclude_list()``, the data browser's marks, or an AuditReport;
        ``exclude={"train": [3, 7]}``, ``relabel={"train": {5: "dog"}}``. ``data_view`` says which
        files or indices were left out and why, and goes into every run's config.
        """
        from workbench.data.views import session_with_view

        return session_with_view(self, changes, exclude=exclude, relabel=relabel)

    @classmethod
    def from_lightning(cls, module, datamodule=None, **options):
        """A Session over a LightningModule and its LightningDataModule, for the recipe's checks (II)."""
        from workbench.integrations.lightning import session_from_lightning

        return session_from_lightning(module, datamodule, **options)


def _seed_worker(worker_id: int) -> None:
    """Seed python and numpy in a DataLoader worker from the torch seed the loader's generator gave it."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _restored_checkpoint(run: Run):
    """The best epoch's checkpoint when early stopping put its weights back at the end, else None."""
    stop = next((r for r in reversed(run.extra_records) if r.get("kind") == "early_stop"), None)
    if not stop or not stop.get("restored"):
        return None
    path = run.dir / "checkpoints" / f"epoch-{int(stop['best_epoch']):04d}.pt"
    return path if path.exists() else None
