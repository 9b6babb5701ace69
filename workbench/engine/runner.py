"""The session's job runner: long work (fit, checks, LR finder, search, ensembles, distillation, audit) runs as
jobs, one at a time per session, on the runner's own thread.

A view binds to ``runner.busy`` / ``runner.current`` (kind, progress, message) instead of running work in a
click handler; a second request queues behind the first (or, with ``wait=False`` and ``refuse_when_busy``,
is refused with a message naming what runs). Work that a job starts itself (an ensemble's member fits, a
search's trials) runs inline on the same thread: nesting never deadlocks.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable

from workbench.errors import WorkbenchError

_ids = itertools.count(1)


class BusyError(WorkbenchError):
    """The session's runner is busy and the caller asked not to queue."""


class Job:
    """One piece of long work: its kind, state, progress and outcome. ``wait()`` returns the result or raises."""

    def __init__(self, kind: str, fn: Callable, args=(), kwargs=None):
        self.id, self.kind = next(_ids), kind
        self.fn, self.args, self.kwargs = fn, args, dict(kwargs or {})
        self.state = "queued"  # queued -> running -> done | failed
        self.progress: float | None = None
        self.message = ""
        self.result = None
        self.error: BaseException | None = None
        self.queued_at, self.started_at, self.ended_at = time.time(), None, None
        self._done = threading.Event()

    def report(self, fraction: float | None = None, message: str | None = None) -> None:
        """Progress for the views (0..1) and a line of text; called from the job's own work."""
        if fraction is not None:
            self.progress = max(0.0, min(1.0, float(fraction)))
        if message is not None:
            self.message = str(message)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None):
        """Block until the job ends; its result, or its exception raised here."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.kind} #{self.id} still {self.state} after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result

    # Thread-like, so code that joins a run's thread joins its job.
    def join(self, timeout: float | None = None) -> None:
        self._done.wait(timeout)

    def is_alive(self) -> bool:
        return not self._done.is_set()

    def __repr__(self) -> str:
        return f"Job(#{self.id} {self.kind} {self.state}{'' if self.progress is None else f' {self.progress:.0%}'})"


class Runner:
    """Runs a session's jobs one at a time on one worker thread (started on first use, daemon)."""

    def __init__(self, name: str = "session"):
        self.name = name
        self._queue: queue.Queue[Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.current: Job | None = None
        self.history: list[Job] = []  # the last jobs, newest last (bounded)
        self._local = threading.local()
        self._guests: set[int] = set()
        self._slot = threading.Lock()  # held while a job runs, on the worker or inline on its caller's thread
        self._inline: threading.Thread | None = None

    # -- state the views read ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.current is not None or not self._queue.empty()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def describe(self) -> str:
        job = self.current
        if job is None:
            return "idle"
        pct = "" if job.progress is None else f" {job.progress:.0%}"
        return f"{job.kind}{pct}{' · ' + job.message if job.message else ''}" + \
            (f" (+{self.queued} queued)" if self.queued else "")

    def on_worker(self) -> bool:
        """True on the runner's own thread, or a thread a running job admitted (its work runs inline)."""
        t = threading.current_thread()
        return t is self._thread or t is self._inline or t.ident in self._guests

    @contextlib.contextmanager
    def guest(self):
        """Admit the calling thread, started by the running job itself (e.g. Optuna's trial threads), to run
        work inline: queueing it behind the job that waits for it would never end."""
        if self.current is None or threading.current_thread() is self._thread:
            yield
            return
        ident = threading.current_thread().ident
        self._guests.add(ident)
        try:
            yield
        finally:
            self._guests.discard(ident)

    def current_job(self) -> Job | None:
        """The job whose work is running on this thread, for its progress reports."""
        return getattr(self._local, "job", None) if self.on_worker() else None

    # -- submitting -------------------------------------------------------------------------------
    def submit(self, kind: str, fn: Callable, /, *args, refuse_when_busy: bool = False, **kwargs) -> Job:
        """Queue ``fn(*args, **kwargs)`` as a job; returns at once. Refused with BusyError when asked and busy."""
        if refuse_when_busy and self.busy:
            raise BusyError(f"the session is busy with {self.describe()}; wait for it to finish or stop it first")
        job = Job(kind, fn, args, kwargs)
        if self.on_worker():  # a job starting work of its own: run it now, in order, on this thread
            self._execute(job)
            return job
        self._queue.put(job)
        self._ensure_thread()
        return job

    def call(self, kind: str, fn: Callable, /, *args, **kwargs):
        """Run ``fn`` as a job and wait for its result.

        When nothing runs or waits, the job runs right here on the caller's thread (a notebook cell, a
        script: the main thread keeps what it had before the runner existed, e.g. a kernel's widget
        updates); otherwise it queues behind the running job. Work a job starts itself runs inline."""
        if self.on_worker():
            return fn(*args, **kwargs)
        if self._queue.empty() and self._slot.acquire(blocking=False):
            job = Job(kind, fn, args, kwargs)
            self._inline = threading.current_thread()
            try:
                self._execute(job)
            finally:
                self._inline = None
                self._slot.release()
            return job.wait()
        return self.submit(kind, fn, *args, **kwargs).wait()

    # -- the worker -------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=f"runner-{self.name}", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=30)
            except queue.Empty:
                with self._lock:  # idle: let the thread go; the next submit starts another
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            with self._slot:
                self._execute(job)

    def _execute(self, job: Job) -> None:
        outer, outer_job = self.current, getattr(self._local, "job", None)
        self.current, self._local.job = job, job
        job.state, job.started_at = "running", time.time()
        try:
            job.result = job.fn(*job.args, **job.kwargs)
            job.state = "done"
        except BaseException as e:  # noqa: BLE001 - kept on the job; wait() raises it to whoever waits
            job.error, job.state = e, "failed"
        finally:
            job.ended_at = time.time()
            job.fn, job.args, job.kwargs = None, (), {}  # the history must not keep a finished job's work alive
            self.current, self._local.job = outer, outer_job
            self.history = (self.history + [job])[-50:]
            job._done.set()
