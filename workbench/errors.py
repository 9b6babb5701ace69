"""Errors that name the problem in the user's terms, never a bare traceback from deep in torch."""


class WorkbenchError(Exception):
    """Base class: every error the workbench raises on purpose."""


class DataError(WorkbenchError, ValueError):
    """The data is unusable as given: empty, not (x, y) pairs, labels out of range, NaN, ..."""


class ModelError(WorkbenchError):
    """The model raised, or its output does not fit the task."""


class RunError(WorkbenchError):
    """A run could not be found, loaded or resumed."""
