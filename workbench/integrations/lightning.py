"""PyTorch Lightning: ``Trainer(callbacks=[RecipeCallback()])`` gives the workbench run, instruments and views (III.P).

Install with ``pip install recipe-workbench[lightning]``. The callback drives a ``wb.watch`` watcher
from Lightning's hooks: ``on_before_optimizer_step`` (gradients final and, under the DDP strategy,
all-reduced; weights not yet updated) emits ``after_backward``, ``on_train_batch_end`` reports the
step's loss (kept on the device), ``on_train_epoch_end`` writes the epoch row with the validation
numbers the module logged (``val_loss``/``val_acc`` by default) or, when it logged none, the whole
validation set evaluated (II.3). Only global rank 0 records. A run the trap or the app asks to stop
sets ``trainer.should_stop``. ``session_from_lightning`` (``wb.Session.from_lightning``) puts the
module and its datamodule into a Session so every recipe check runs on them.
"""

from __future__ import annotations

import importlib.util

from workbench.errors import WorkbenchError

if importlib.util.find_spec("lightning") is None:  # pragma: no cover - the optional extra is missing
    raise WorkbenchError("the Lightning integration needs Lightning: pip install recipe-workbench[lightning]")

import lightning.pytorch as pl  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from workbench.watch import Watch  # noqa: E402


class RecipeCallback(pl.Callback):
    """The recipe's instruments and a stored run for a Lightning ``Trainer``; options go to ``wb.watch``."""

    def __init__(self, session=None, *, val_loss: str = "val_loss", val_metric: str = "val_acc", **watch_options):
        super().__init__()
        self.session, self.options = session, watch_options
        self.keys = (val_loss, val_metric)
        self.watch: Watch | None = None

    @property
    def run(self):
        return None if self.watch is None else self.watch.run

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        if not trainer.optimizers:
            raise WorkbenchError("RecipeCallback: the Trainer has no optimizer (configure_optimizers returned none)")
        options = dict(self.options)
        if self.session is None and "train" not in options:
            options["train"] = _dataset(trainer.train_dataloader)
            options.setdefault("test", _dataset(trainer.val_dataloaders))
        self.watch = Watch(pl_module, trainer.optimizers[0], session=self.session, optimizer_hook=False,
                           epochs=trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None,
                           steps_per_epoch=_steps(trainer.num_training_batches), **options)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.watch is not None:
            self.watch.gradients_ready(optimizer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.watch is None or self.watch.closed:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:  # manual optimisation returning nothing: nothing to report
            return
        if not self.watch.step(loss):
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.watch is None or self.watch.closed:
            return
        metrics = trainer.callback_metrics
        loss_key, metric_key = self.keys
        if loss_key in metrics:
            self.watch.epoch(val_loss=metrics[loss_key], val_metric=metrics.get(metric_key))
        else:
            self.watch.epoch()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.watch is not None:
            self.watch.close("stopped" if trainer.should_stop and self.watch.trainer.epoch < (self.watch.epochs or 0)
                             else None)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.watch is not None and not self.watch.closed:
            self.watch.close("stopped" if isinstance(exception, KeyboardInterrupt) else "failed",
                             error=f"Lightning training raised {type(exception).__name__}: {exception}")


def session_from_lightning(module, datamodule=None, *, train=None, test=None, loss=None, **session_options):
    """A Session over a LightningModule (its ``forward`` is the model) and its data, for the recipe's checks.

    Data: ``train=``/``test=`` or the datamodule's ``train_dataloader()`` and ``val_dataloader()``
    (``test_dataloader()`` when it has no validation set). Loss: ``loss=``, else the module's
    ``loss_fn`` or ``criterion`` attribute, else the task's default (cross-entropy): the checks need
    the loss as ``loss(output, target)`` to split it per example, which a ``training_step`` cannot give.
    """
    from workbench.session import Session

    if not isinstance(module, pl.LightningModule):
        raise WorkbenchError(f"Session.from_lightning needs a LightningModule, got {type(module).__name__}")
    if train is None:
        if datamodule is None:
            raise WorkbenchError("Session.from_lightning needs the data: pass a LightningDataModule or train=")
        datamodule.prepare_data()
        datamodule.setup("fit")
        train = _dataset(datamodule.train_dataloader())
        test = test if test is not None else _dataset(_first_loader(datamodule))
    loss = loss or next((getattr(module, a) for a in ("loss_fn", "criterion") if callable(getattr(module, a, None))),
                        None)
    return Session(module, train, test, loss=loss, **session_options)


def _first_loader(datamodule):
    for name in ("val_dataloader", "test_dataloader"):
        try:
            loader = getattr(datamodule, name)()
        except (NotImplementedError, AttributeError, pl.utilities.exceptions.MisconfigurationException):
            continue
        if loader is not None:
            return loader
    return None


def _dataset(loaders):
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    if isinstance(loaders, dict):
        loaders = next(iter(loaders.values()), None)
    return loaders.dataset if isinstance(loaders, DataLoader) else loaders


def _steps(n) -> int | None:
    return int(n) if isinstance(n, int) or (isinstance(n, float) and n != float("inf")) else None
