"""What a task means for the loss, the metric and the model's output: classification, regression, sequence.

Checks, the fit loop and the views ask the task instead of branching on its name themselves.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from workbench.errors import DataError, ModelError

TASKS = ("classification", "regression", "sequence")


class Task:
    """Loss, metric and shape rules for one kind of problem."""

    name = ""
    metric = ""  # the number besides the loss a person understands (recipe II.6)
    higher_is_better = True

    def __init__(self, num_classes: int | None = None, loss=None):
        self.num_classes = num_classes
        self.custom_loss = loss

    def data_loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.custom_loss is not None:
            return self.custom_loss(out, y)
        return self.default_loss(out, y)

    def default_loss(self, out, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, out: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
        """Sum of the per-example metric and the number of examples it counts."""
        total, n = self.score_tensor(out, y)
        return float(total), n

    def score_tensor(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``score`` as a tensor, so a training loop can add it up without a device sync per step."""
        raise NotImplementedError

    def check_output(self, out, y) -> None:
        """Raise ModelError when the model's output cannot fit the labels."""

    def check_labels(self, y: torch.Tensor, where: str) -> None:
        """Raise DataError when labels are unusable for this task."""

    def expected_init_loss(self, y_train: torch.Tensor) -> float | None:
        """The loss a well-initialised model should start from (recipe II.4, L.1)."""
        return None

    @property
    def real_valued(self) -> bool:
        """True when the targets are real values scored by MSE (regression, real-valued sequences)."""
        return not self.higher_is_better


class Classification(Task):
    name, metric = "classification", "accuracy"

    def default_loss(self, out, y):
        return F.cross_entropy(out, y)

    def score_tensor(self, out, y):
        return (out.argmax(1) == y).sum(), len(y)

    def check_output(self, out, y):
        if out.dim() != 2:
            raise ModelError(f"classification needs model output of shape (batch, {self.num_classes}); "
                             f"the model returned shape {tuple(out.shape)}")
        if self.num_classes is not None and out.shape[1] != self.num_classes:
            raise ModelError(f"the model returns {out.shape[1]} scores per example but the data has "
                             f"{self.num_classes} classes; set the output layer to {self.num_classes}")
        if out.shape[0] != y.shape[0]:
            raise ModelError(f"the model returned {out.shape[0]} rows for a batch of {y.shape[0]} examples")

    def check_labels(self, y, where):
        if y.is_floating_point():
            if not torch.equal(y, y.round()):
                raise DataError(f"{where}: classification labels must be integers, got floats like "
                                f"{y[(y != y.round())][:3].tolist()}; use task='regression' for real targets")
        if y.dim() != 1:
            raise DataError(f"{where}: classification labels must be one integer per example, "
                            f"got shape {tuple(y.shape)}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (self.num_classes is not None and hi >= self.num_classes):
            raise DataError(f"{where}: labels range over [{lo}, {hi}] but num_classes={self.num_classes}; "
                            f"labels must lie in [0, {self.num_classes - 1}]")

    def expected_init_loss(self, y_train):
        return math.log(self.num_classes) if self.num_classes else None


class Regression(Task):
    name, metric, higher_is_better = "regression", "mse", False

    def default_loss(self, out, y):
        return F.mse_loss(_match(out, y), y.to(out.dtype))

    def score_tensor(self, out, y):
        err = (_match(out, y) - y.to(out.dtype)) ** 2
        return err.reshape(len(y), -1).mean(1).sum(), len(y)

    def check_output(self, out, y):
        if out.shape[0] != y.shape[0] or _match(out, y).shape != y.shape:
            raise ModelError(f"regression output of shape {tuple(out.shape)} does not fit targets of shape "
                             f"{tuple(y.shape)}")

    def check_labels(self, y, where):
        if not torch.isfinite(y.float()).all():
            raise DataError(f"{where}: regression targets hold NaN or inf")

    def expected_init_loss(self, y_train):
        y = y_train.float()
        return float(y.var(unbiased=False).mean()) if len(y) > 1 else None


class Sequence(Task):
    """Autoregressive: inputs (B, T, ...), one output per time step.

    Integer targets (B, T) are tokens: outputs (B, T, V), cross-entropy, token accuracy. Floating
    targets (B, T) or (B, T, D) are real values per step (forecasting): outputs of the same shape
    (or (B, T, 1) for (B, T)), MSE. The training labels decide, when the session validates them.
    """

    name, metric = "sequence", "token_accuracy"

    def __init__(self, num_classes=None, loss=None):
        super().__init__(num_classes, loss)
        self.real = False

    def _set_real(self) -> None:
        # real-valued steps: no vocabulary, MSE and a lower-is-better metric, as for regression
        self.real, self.num_classes, self.metric, self.higher_is_better = True, None, "mse", False

    def default_loss(self, out, y):
        if self.real:
            return Regression.default_loss(self, out, y)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    def score_tensor(self, out, y):
        if self.real:
            return Regression.score_tensor(self, out, y)
        return (out.argmax(-1) == y).float().mean(1).sum(), len(y)

    def check_output(self, out, y):
        if self.real:
            if out.dim() < 2 or out.shape[:2] != y.shape[:2] or _match(out, y).shape != y.shape:
                raise ModelError(f"a real-valued sequence model must return one value per step shaped like the "
                                 f"targets {tuple(y.shape)}; it returned {tuple(out.shape)}")
            return
        if out.dim() != 3 or out.shape[:2] != y.shape[:2]:
            raise ModelError(f"a sequence model must return (batch, time, vocab) matching targets "
                             f"{tuple(y.shape)}; it returned {tuple(out.shape)}")
        if self.num_classes is not None and out.shape[-1] != self.num_classes:
            raise ModelError(f"the model returns {out.shape[-1]} scores per step but the vocabulary "
                             f"has {self.num_classes} tokens")

    def check_labels(self, y, where):
        if y.dim() < 2:
            raise DataError(f"{where}: sequence targets must be (time,) per example, got shape {tuple(y.shape)}")
        if y.is_floating_point():
            if where == "train" or self.real:
                self._set_real()
            Regression.check_labels(self, y, where)
            return
        if self.real:
            raise DataError(f"{where}: the training targets are real values but {where}'s are integers; "
                            "use one dtype for every split")
        Classification.check_labels(self, y.reshape(-1), where)

    def expected_init_loss(self, y_train):
        if self.real:
            return Regression.expected_init_loss(self, y_train)
        return math.log(self.num_classes) if self.num_classes else None


def make_task(name: str, num_classes=None, loss=None) -> Task:
    """The Task object for ``name``."""
    kinds = {"classification": Classification, "regression": Regression, "sequence": Sequence}
    if name not in kinds:
        raise ValueError(f"task must be one of {TASKS}, got {name!r}")
    return kinds[name](num_classes=num_classes, loss=loss)


def _match(out, y):
    if out.shape != y.shape and out.numel() == y.numel():
        return out.reshape(y.shape)
    return out
