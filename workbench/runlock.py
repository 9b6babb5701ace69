"""Who owns a run on disk: one live process at a time, known by its PID and its start time.

A PID alone is not an identity: after a crash the kernel hands the number to another process, and a
run would read "running" forever. So the owner is recorded as (PID, start time) — the start time
from ``/proc/<pid>/stat`` on Linux, psutil where importable — and a recorded owner counts as alive
only while a process with that PID *and* that start time exists.

Exclusion itself is an ``flock`` held on ``<run>/lock`` for the owner's life: the kernel drops it when
the owner dies (even by SIGKILL), so two racing resumes cannot both win, and a stale file never blocks.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from workbench.errors import RunLockedError, StorageError

try:  # POSIX; elsewhere the (PID, start time) record alone decides
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = "lock"


def process_start(pid: int) -> float | None:
    """The start time of process ``pid`` (clock ticks since boot on Linux), or None when it is not running."""
    if not os.path.isdir("/proc"):
        return _psutil_start(pid)
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name in (...) may hold spaces
    if fields[0] in ("Z", "X"):  # a zombie has exited: it owns nothing
        return None
    return float(fields[19])  # field 22 of proc(5): starttime


def _psutil_start(pid: int) -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        p = psutil.Process(int(pid))
        return None if p.status() == psutil.STATUS_ZOMBIE else p.create_time()
    except (psutil.Error, ValueError):
        return None


def me() -> dict:
    """This process as an owner record."""
    return {"pid": os.getpid(), "pid_start": process_start(os.getpid())}


def owner_alive(pid, pid_start=None) -> bool:
    """Whether the recorded owner still runs: same PID *and* same start time (a reused PID is not it)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    start = process_start(pid)
    if start is not None:
        return pid_start is None or float(pid_start) == start
    if process_start(os.getpid()) is None:  # no /proc and no psutil: the PID is all there is to go on
        return _pid_exists(pid)
    return False


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


class RunLock:
    """The lock of one run folder; ``acquire()`` refuses a second owner with the first owner's PID."""

    def __init__(self, run_dir: Path, run_id: str):
        self.path = Path(run_dir) / LOCK_NAME
        self.run_id = run_id
        self._fd: int | None = None
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def owner(self) -> dict:
        """The owner record in the lock file ({} when none or unreadable)."""
        try:
            rec = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return rec if isinstance(rec, dict) else {}

    def acquire(self) -> dict:
        """Own the run; returns this process's owner record. Stale owners (dead, PID reused) are taken over."""
        with self._mutex:
            if self._fd is not None:
                return me()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # held open for the owner's life
            except OSError as e:
                raise StorageError.from_os_error(self.path, e) from e
            try:
                self._lock_or_refuse(fd)
                record = {**me(), "run": self.run_id}
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(record).encode(), 0)
            except OSError as e:
                os.close(fd)
                raise StorageError.from_os_error(self.path, e) from e
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return record

    def _lock_or_refuse(self, fd: int) -> None:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                self._refuse(self.owner() or {"pid": None})
        rec = self.owner()  # no flock here: the record decides
        if rec.get("pid") and owner_alive(rec.get("pid"), rec.get("pid_start")) and rec.get("pid") != os.getpid():
            self._refuse(rec)

    def _refuse(self, rec: dict) -> None:
        pid = rec.get("pid")
        who = "this process" if pid == os.getpid() else "another process"
        err = RunLockedError(f"run {self.run_id} is being trained by {who} (PID {pid})",
                             fix="wait for it to finish or stop it (run.stop(), or end that process), "
                                 "then resume; two writers would lose or duplicate records")
        err.pid = pid
        raise err

    def __del__(self):  # a run dropped without finishing can no longer be trained: let others have it
        try:
            self.release()
        except Exception:  # noqa: BLE001 - never raise from a finaliser (e.g. at interpreter exit)
            pass

    def release(self) -> None:
        """Give the run up (idempotent); the file stays, emptied, so a reader sees no owner."""
        with self._mutex:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass  # disk trouble must not keep the lock: closing drops it anyway
            os.close(fd)
