"""Errors that name the problem in the user's terms, never a bare traceback from deep in torch.

Errors raised by ``workbench.validate`` and the run store also carry ``problem`` and ``fix``: what is
wrong and what to do about it; ``str(error)`` joins the two.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: every error the workbench raises on purpose."""

    fix: str | None = None  # what the user should do; set when the raiser knows it

    def __init__(self, message: str = "", fix: str | None = None):
        self.problem, self.fix = message, fix
        # args stays (message,) so pickling and re-raising across processes keep working
        super().__init__(f"{message}. Fix: {fix}" if fix else message)


class DataError(WorkbenchError, ValueError):
    """The data is unusable as given: empty, not (x, y) pairs, labels out of range, NaN, ..."""


class ModelError(WorkbenchError):
    """The model raised, or its output does not fit the task."""


class RunError(WorkbenchError):
    """A run could not be found, loaded or resumed."""


class ConfigError(WorkbenchError, ValueError):
    """An argument to fit, a check, a search or early stopping is out of range or of the wrong type."""


class RunLockedError(RunError):
    """Another live process (or another run in this one) owns the run; ``pid`` names it."""

    pid: int | None = None


class DamagedRunError(RunError):
    """A file of a run on disk (config, status, checkpoint) is unreadable; the message names it."""


class StorageError(RunError, OSError):
    """Writing a run to disk failed (disk full, no permission); the run is marked failed."""

    @classmethod
    def from_os_error(cls, path, e: OSError) -> StorageError:
        """The error for a failed write of ``path``, in words, with the OS's errno kept."""
        import errno

        what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "the file size limit is reached"}.get(e.errno, e.strerror or str(e))
        full = e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        fix = ("free space on that disk, or give the session another root= folder, then resume the run"
               if full else "check the folder's permissions and free space, then resume the run")
        err = cls(f"could not write {path}: {what}", fix=fix)
        err.errno = e.errno
        return err
