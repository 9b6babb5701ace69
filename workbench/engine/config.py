"""A run's configuration: a frozen record written as ``config.json``, apart from the live objects it needs.

Everything a run is (data, model arguments, optimizer, schedule, budget, seed, precision) is a plain
JSON value here. A callable optimizer, schedule, augmentation or early-stopping object is a runtime
object: the config keeps its description and lists its name in ``runtime``, and a resume must be
given it again (B.5, B.6: a run repeated exactly, or refused with what to pass).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

RUNTIME_FIELDS = ("optimizer", "lr_schedule", "augment", "early_stopping")


@dataclass(frozen=True)
class RunConfig:
    """What a run is, as JSON. ``runtime`` names the fields that were live objects (only described here)."""

    model: str
    task: str
    epochs: int
    lr: float
    seed: int
    batch_size: int
    optimizer: str = "adam"
    weight_decay: float = 0.0
    augment: bool | str = False
    lr_schedule: str | None = None
    early_stopping: int | dict | str | None = None
    model_kwargs: dict = field(default_factory=dict)
    num_classes: int | None = None
    data: str = ""
    n_train: int = 0
    n_eval: int = 0
    eval_split: str = "test"
    device: str = "cpu"
    reg_strength: float = 0.0
    regularizer: str | None = None
    init_hooks: list = field(default_factory=list)
    ema: float | None = None
    swa: bool = False
    name: str | None = None
    parent: str | None = None
    tags: dict = field(default_factory=dict)
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False
    checkpoint_every: int = 0
    data_view: dict | None = None
    kind: str = "fit"
    runtime: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # what a run kind adds (distillation's temperature, teacher ...)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        return {**d, **extra}

    @classmethod
    def from_json(cls, d: dict) -> RunConfig:
        """From a ``config.json`` (older files too: unknown keys go to ``extra``, missing ones take defaults)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names and k != "id"}
        if "runtime" not in known:  # written before runtime objects were listed: a repr means one was used
            known["runtime"] = [k for k in RUNTIME_FIELDS if _looks_like_repr(d.get(k))]
        for k in ("model", "task"):
            known.setdefault(k, "")
        known.setdefault("epochs", 1)
        known.setdefault("lr", 1e-3)
        known.setdefault("seed", 0)
        known.setdefault("batch_size", 64)
        return cls(**known, extra=extra)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)


def describe(value, name: str) -> tuple[object, bool]:
    """(the JSON form of an option, whether it was a runtime object)."""
    if name == "early_stopping":
        if value is None or isinstance(value, (bool, int, dict)):
            return value, False
        return repr(value), True
    if name == "augment" and isinstance(value, bool):
        return value, False
    if value is None or isinstance(value, str):
        return value, False
    return repr(value), True


def _looks_like_repr(v) -> bool:
    return isinstance(v, str) and (v.startswith("<") or "(" in v or " at 0x" in v)
