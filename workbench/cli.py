"""``workbench serve | check | audit | runs``: the recipe from the command line."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import runpy
import sys
from pathlib import Path

SUBCOMMANDS = {  # name -> (module providing add_arguments(parser) and main(args) -> int, help)
    "serve": ("workbench.ui.serve", "serve the workbench app (Panel) on localhost"),
    "check": ("workbench.checks.cli", "run the sanity checks of recipe part II and print their verdicts"),
    "audit": ("workbench.data.cli", "audit a dataset for the issues of recipe step I.2"),
    "tune": ("workbench.tune.cli", "LR range test, random search and curve diagnosis (recipe III.B)"),
    "runs": ("workbench.cli", "list the runs stored under a root folder"),
}


def load_session(script: str | None, root: str | None = None, defects: bool = False):
    """The ``session`` a user's script defines, or the digits demo when no script is given.

    The script is the user's own file, run as the user asked (like ``panel serve script.py``).
    """
    if script is None:
        from workbench.demo import demo_session

        return demo_session(root=root or "runs", defects=defects)
    path = Path(script)
    if not path.is_file():
        raise SystemExit(f"workbench: no such script: {script}")
    namespace = runpy.run_path(str(path), run_name="__workbench__")
    session = namespace.get("session")
    from workbench.session import Session

    if not isinstance(session, Session):
        raise SystemExit(f"workbench: {script} must define a variable `session` holding a workbench.Session")
    return session


# control characters a file or folder name may carry: terminal escapes (ESC, CSI), bells, backspaces, and the
# bidi overrides that reorder what is shown; \n and \t stay, \r stays on stderr (progress bars redraw with it)
_CONTROLS = [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0), 0x200E, 0x200F,
             *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_ESCAPES = {c: f"\\u{c:04x}" for c in _CONTROLS}
_ESCAPES_CR = {**_ESCAPES, 0x0D: "\\u000d"}


def printable(text: str, keep_cr: bool = False) -> str:
    """``text`` with every control character written as ``\\uXXXX`` (valid in JSON strings too), never sent raw."""
    return text.translate(_ESCAPES if keep_cr else _ESCAPES_CR)


class _PrintableStream(io.TextIOBase):
    """A text stream that passes everything through ``printable``: names from disk cannot drive the terminal."""

    def __init__(self, stream, keep_cr: bool):
        self.stream, self.keep_cr = stream, keep_cr

    def write(self, text: str) -> int:
        self.stream.write(printable(text, self.keep_cr))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self):
        return getattr(self.stream, "encoding", "utf-8")


@contextlib.contextmanager
def printable_output():
    """While a subcommand runs, stdout and stderr escape control characters (file names with terminal codes)."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _PrintableStream(out, keep_cr=False), _PrintableStream(err, keep_cr=True)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="runs", help="folder holding the runs (default: runs)")


def main_runs(args) -> int:
    from workbench.readable import runs_table
    from workbench.store import RunStore

    table = RunStore(args.root).table()
    # readable for people: start times as local ISO time, empty cells instead of NaN
    print(runs_table(table).to_string(index=False) if len(table) else f"no runs under {args.root}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    handlers = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name != chosen:  # import a subcommand's module (Panel, torch...) only when it runs
            continue
        if name == "runs":
            add_arguments(p)
            handlers[name] = main_runs
            continue
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        handlers[name] = mod.main
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    with printable_output():
        return int(handlers[args.command](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
