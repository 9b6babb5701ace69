"""Part III's plots as live data: curves, histograms, update ratio, first layer, predictions, grad norms.

``attach(session, names="default", every=None)`` subscribes instruments to the session's events and
returns handles whose ``remove()`` detaches them; ``session.instruments`` lists what is attached.
Each instrument cites its recipe step (``.recipe``), buffers a bounded history readable from another
thread (``since(version)``, ``frame()``, ``snapshot()``) and gives a verdict (``summary()``).
"""

from __future__ import annotations

from workbench.errors import WorkbenchError
from workbench.instruments.base import Instrument, InstrumentHandle
from workbench.instruments.curves import Curves
from workbench.instruments.first_layer import FirstLayer
from workbench.instruments.grad_norms import GradNorms
from workbench.instruments.histograms import Histograms
from workbench.instruments.predictions import Predictions
from workbench.instruments.update_ratio import UpdateRatio

REGISTRY: dict[str, type[Instrument]] = {}


def register(cls: type[Instrument]) -> type[Instrument]:
    """Make an Instrument subclass attachable by its ``name``."""
    if not cls.name:
        raise WorkbenchError(f"{cls.__name__} has no name to register under")
    REGISTRY[cls.name] = cls
    return cls


for _cls in (Curves, Histograms, UpdateRatio, FirstLayer, Predictions, GradNorms):
    register(_cls)

DEFAULT = tuple(REGISTRY)


def attach(session, names="default", every: int | None = None, **options) -> list[InstrumentHandle]:
    """Attach instruments by name ("default" = all), each at ``every`` steps or its own default cadence.

    An instrument of the same name already attached to the session is replaced (so a view can
    change the cadence); ``options`` go to the instruments that accept them (e.g. ``k=16``).
    """
    wanted = _names(names)
    handles = []
    for name in wanted:
        for old in [i for i in session.instruments if getattr(i, "name", None) == name]:
            old.detach()
        cls = REGISTRY[name]
        accepted = {k: v for k, v in options.items() if k in _init_params(cls)}
        cadence = every if cls.cadence_unit == "step" else None
        handles.append(cls(every=cadence, **accepted).attach(session))
    return handles


def detach(session, names="default") -> None:
    """Detach the named instruments (all by default) from the session."""
    wanted = set(_names(names))
    for inst in [i for i in session.instruments if getattr(i, "name", None) in wanted]:
        inst.detach()


def get(session, name: str) -> Instrument | None:
    """The attached instrument called ``name``, or None."""
    return next((i for i in session.instruments if getattr(i, "name", None) == name), None)


def summaries(session) -> list[dict]:
    """Every attached instrument's verdict (what diagnosis reads)."""
    return [i.summary() for i in session.instruments if isinstance(i, Instrument)]


def _names(names) -> list[str]:
    if names is None or names == "default" or names == "all":
        return list(DEFAULT)
    if isinstance(names, str):
        names = [names]
    try:
        names = list(names)
    except TypeError:
        raise WorkbenchError(f"names must be 'default', a name or a list of names, got {names!r}") from None
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise WorkbenchError(f"unknown instrument(s) {', '.join(map(repr, unknown))}; "
                             f"instruments are {', '.join(REGISTRY)}")
    return names


def _init_params(cls) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters) - {"self", "every"}


__all__ = ["attach", "detach", "get", "summaries", "register", "REGISTRY", "DEFAULT", "Instrument",
           "InstrumentHandle", "Curves", "Histograms", "UpdateRatio", "FirstLayer", "Predictions", "GradNorms"]
