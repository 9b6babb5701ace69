"""A job's own random stream: seeded once, swapped into torch's generators only while the job holds them (II.1).

Dropout, random augmentations and weight initialisation draw from torch's process-wide generators.
Two sessions training at once in one process (two browser tabs of ``workbench serve``), or a check
run beside a background fit, would otherwise take numbers from one shared stream, and neither would
reproduce its solo losses. Each job keeps its own state (CPU, CUDA, python ``random`` and numpy)
and installs it under one process lock for the span of a step (torch's generators alone: see
``active``); the state the process had before is put back when the span ends. Nothing reseeds the
process's generators for good.

What this cannot cover: code on another thread that draws from torch's global generator directly
(``torch.rand`` in a user's cell) while a step holds the swap takes numbers from that job's stream.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading

import numpy as np
import torch

# One lock for every stream in the process: while a span holds it, torch's global generators belong to it.
_LOCK = threading.RLock()


@functools.cache
def _cuda_present() -> bool:
    # asked three times a step; without a GPU the answer costs ~17 us each time (measured), and it never changes
    return torch.cuda.is_available()


def _cuda_ready() -> bool:
    return _cuda_present() and torch.cuda.is_initialized()


class RngStream:
    """The random state of one job, as if ``torch.manual_seed(seed)`` (and python/numpy) were called for it alone."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.cpu = torch.Generator().manual_seed(self.seed).get_state()
        self.cuda: list[torch.Tensor] | None = None  # made on first use on a GPU (seeded like torch.manual_seed)
        self.python = random.Random(self.seed).getstate()
        self.numpy = np.random.RandomState(self.seed % 2**32).get_state()

    @contextlib.contextmanager
    def active(self, torch_only: bool = False):
        """Within this block torch, python ``random`` and numpy draw from this stream; before and after, from theirs.

        ``torch_only``: swap torch's generators (CPU and CUDA) alone. A training step uses it: dropout,
        augmentation and initialisation draw from torch, and swapping python's and numpy's states too
        cost 9% of a tiny_cnn step on a CPU (0.55 ms a step: a 115-step fit against the plain loop of
        benchmarks/bench_instruments.py in one process, 1.134 with all three swapped, 1.044 with torch's
        alone). Python ``random`` or numpy called inside a step draw from the process's streams.
        """
        with _LOCK:
            saved = _capture(torch_only)
            torch.set_rng_state(self.cpu)
            if not torch_only:
                random.setstate(self.python)
                np.random.set_state(self.numpy)
            if _cuda_ready():
                if self.cuda is None:
                    torch.cuda.manual_seed_all(self.seed)
                else:
                    torch.cuda.set_rng_state_all(self.cuda)
            try:
                yield self
            finally:
                self.cpu = torch.get_rng_state()
                if not torch_only:
                    self.python = random.getstate()
                    self.numpy = np.random.get_state()
                if _cuda_ready():
                    self.cuda = torch.cuda.get_rng_state_all()
                _restore(saved)

    def state(self) -> dict:
        """The stream's state for a checkpoint (restored with ``set_state``)."""
        return {"torch": self.cpu.clone(), "python": _py_to_plain(self.python), "numpy": _np_to_plain(self.numpy),
                **({"cuda": [c.clone() for c in self.cuda]} if self.cuda is not None else {})}

    def set_state(self, state: dict) -> None:
        self.cpu = state["torch"].clone()
        if "python" in state:
            self.python = _py_from_plain(state["python"])
        if "numpy" in state:
            self.numpy = _np_from_plain(state["numpy"])
        cuda = state.get("cuda")
        if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            self.cuda = [c.clone() for c in cuda]


@contextlib.contextmanager
def seeded(seed: int):
    """A one-off stream: the block draws as if freshly seeded with ``seed``; the process's generators are untouched."""
    with RngStream(seed).active() as stream:
        yield stream


def _capture(torch_only: bool = False) -> dict:
    st = {"torch": torch.get_rng_state()}
    if not torch_only:
        st.update(python=random.getstate(), numpy=np.random.get_state())
    if _cuda_ready():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _restore(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    if "python" in st:
        random.setstate(st["python"])
        np.random.set_state(st["numpy"])
    if "cuda" in st:
        torch.cuda.set_rng_state_all(st["cuda"])


# Checkpoints hold only tensors and plain values (torch.load(weights_only=True)).
def _py_to_plain(st):
    return [st[0], list(st[1]), st[2]]


def _py_from_plain(st):
    return (int(st[0]), tuple(int(v) for v in st[1]), st[2])


def _np_to_plain(st):
    return [st[0], torch.from_numpy(np.asarray(st[1]).astype(np.int64)), *st[2:]]


def _np_from_plain(st):
    return (st[0], st[1].numpy().astype(np.uint32), *st[2:])
