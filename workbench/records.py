"""A run's records: metrics.jsonl read past damaged lines, and a bounded in-memory window of steps.

Reading keeps every good line and reports the bad ones by number, so one damaged line (a disk
error, a half-written line from a killed process, a hand edit) never hides the records after it.
The step window keeps the recent steps in memory and reads older ones back from disk, so a long run
holds a fixed amount of memory however many steps it takes (recipe III.P: the curves stay complete).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path

WINDOW = 4096  # step records kept in memory per run; older ones are read back from disk


def iter_records(path: Path, bad: list[int] | None = None) -> Iterator[dict]:
    """Every good record of a metrics file, in order; the numbers of bad lines go to ``bad``.

    A line is bad when it is not a JSON object or has no newline (the write in flight when the
    process died). Lines are numbered from 1.
    """
    if not Path(path).exists():
        return
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            rec = _parse(raw)
            if rec is None:
                if bad is not None:
                    bad.append(number)
                continue
            yield rec


def _parse(raw: bytes) -> dict | None:
    if not raw.endswith(b"\n"):
        return None
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return rec if isinstance(rec, dict) else None


def read_records(path: Path) -> tuple[list[dict], list[int]]:
    """(every good record, the numbers of the bad lines skipped)."""
    bad: list[int] = []
    return list(iter_records(path, bad)), bad


class RecordWindow:
    """The step records of a run as a read-only sequence: recent ones in memory, all of them on disk.

    ``len()`` counts every record ever appended; indexing and slicing use those absolute positions,
    so a reader that remembers "I have seen n" keeps working after old records left memory.
    """

    def __init__(self, read_all: Callable[[], Iterator[dict]], maxlen: int | None = None):
        self._read_all = read_all
        self._recent: deque[dict] = deque(maxlen=maxlen or WINDOW)
        self._count = 0
        self._lock = threading.Lock()  # the training thread appends while a view thread reads

    @property
    def dropped(self) -> int:
        """How many of the oldest records are no longer in memory."""
        return self._count - len(self._recent)

    def append(self, record: dict) -> None:
        with self._lock:
            self._recent.append(record)
            self._count += 1

    def extend(self, records) -> None:
        with self._lock:
            for r in records:
                self._recent.append(r)
                self._count += 1

    def clear(self) -> None:
        with self._lock:
            self._recent.clear()
            self._count = 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[dict]:
        with self._lock:
            if self.dropped == 0:
                snapshot = list(self._recent)
            else:
                snapshot = None
                count = self._count
        if snapshot is not None:
            return iter(snapshot)
        return islice(self._read_all(), count)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self._slice(key)
        with self._lock:
            i = key + self._count if key < 0 else key
            if not 0 <= i < self._count:
                raise IndexError("step record index out of range")
            first = self.dropped
            if i >= first:
                return self._recent[i - first]
        return next(islice(self._read_all(), i, None))

    def _slice(self, key: slice) -> list[dict]:
        with self._lock:
            start, stop, step = key.indices(self._count)
            first = self.dropped
            if start >= first and step > 0:
                return list(islice(self._recent, start - first, max(start, stop) - first, step))
        return list(islice(self._read_all(), self._count))[key]

    def __repr__(self) -> str:
        return f"RecordWindow({self._count} records, {len(self._recent)} in memory)"
