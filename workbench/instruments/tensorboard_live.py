"""TensorBoard as it trains: event files written while the run goes, so every run also shows in TensorBoard (P.1-P.5).

A subscriber on the session's bus (not an instrument: it measures nothing itself). At each batch of
step losses read back (``steps_logged``, every few dozen steps: no host sync of its own) and at each
epoch's end it writes the new step losses, the epoch row and what every attached instrument recorded
since its last write (through ``export``'s TensorBoard writers), then flushes, so ``tensorboard
--logdir`` and ``EventAccumulator`` read the run while it trains. One sub-folder per run id.
The end-of-run export is ``export.to_tensorboard``.
"""

from __future__ import annotations

from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.instruments import export

EPOCH_KEYS = ("train_loss", "val_loss", "train_metric", "val_metric", "lr")


class TensorBoardLive:
    """Write each run's curves and the instruments' records to ``logdir/<run id>`` while it trains."""

    def __init__(self, logdir=None):
        if not export.tensorboard_available():
            raise WorkbenchError("live TensorBoard needs the tensorboard package: pip install tensorboard")
        self.logdir = None if logdir is None else Path(logdir)
        self.writer = None
        self.session = None
        self.path: Path | None = None
        self._versions: dict[int, int] = {}
        self._handles: list = []

    def attach(self, session) -> TensorBoardLive:
        """Subscribe to ``session``'s events; ``detach()`` closes the writer and unsubscribes."""
        if self.session is not None:
            raise WorkbenchError("this TensorBoardLive is already attached; make one per session")
        self.session = session
        self._handles = [session.on(name, getattr(self, "_" + name))
                         for name in ("run_start", "steps_logged", "epoch_end", "run_end")]
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._close()
        self.session = None

    # -- events ------------------------------------------------------------------------------------
    def _run_start(self, ev) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._close()
        root = self.logdir if self.logdir is not None else Path(ev.run.dir) / "tensorboard"
        self.path = root / ev.run.id if self.logdir is not None else root
        self.writer = SummaryWriter(str(self.path))
        # records buffered before this run belong to the previous one
        self._versions = {id(i): i.version for i in self._instruments()}

    def _steps_logged(self, ev) -> None:
        if self.writer is None:
            return
        for r in ev.records:
            self.writer.add_scalar("loss/step", r["loss"], r["step"])
        self._write_instruments()

    def _epoch_end(self, ev) -> None:
        if self.writer is None:
            return
        row = ev.row
        for k in EPOCH_KEYS:
            v = row.get(k)
            if isinstance(v, (int, float)) and v == v:
                self.writer.add_scalar(f"epoch/{k}", v, row["step"])
        self._write_instruments()

    def _run_end(self, ev) -> None:
        if self.writer is not None:
            self._write_instruments()
        self._close()

    # -- writing -----------------------------------------------------------------------------------
    def _instruments(self) -> list:
        return [i for i in getattr(self.session, "instruments", []) if hasattr(i, "since")]

    def _write_instruments(self) -> None:
        for inst in self._instruments():
            new = inst.since(self._versions.get(id(inst), 0))
            if new:
                export._tb_instrument(self.writer, inst, new)
                self._versions[id(inst)] = new[-1]["version"]
        self.writer.flush()  # readable now, not when the writer's own timer fires

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
