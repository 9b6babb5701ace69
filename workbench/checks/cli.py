"""``workbench check [SCRIPT] [--json] [--only NAMES] [--junit PATH]``: the recipe part II checks from a shell.

Runs every check on the ``session`` the script defines (the digits demo without one), prints a
table — name, status, measured vs expected, recipe step — and exits 1 when any check fails or errors.
``--junit report.xml`` also writes the verdicts as a JUnit report for CI (one test case per check).
"""

from __future__ import annotations

import json
import sys

from workbench.checks.base import _SYMBOL, fmt


def add_arguments(parser) -> None:
    parser.add_argument("script", nargs="?", default=None,
                        help="a Python file defining `session = workbench.Session(...)` (default: the digits demo)")
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON (one list) for machines")
    parser.add_argument("--only", default=None, help="comma-separated check names (default: all)")
    parser.add_argument("--root", default=None, help="run folder for the demo session (default: runs)")
    parser.add_argument("--junit", default=None, metavar="PATH",
                        help="also write the verdicts as a JUnit XML report (fail/error = failure, skip = skipped)")


def render(results) -> str:
    """The verdicts as a plain-text table and each message below it."""
    rows = [("check", "status", "measured", "expected", "step")]
    for r in results:
        expected = "" if r.expected is None else fmt(r.expected)
        rows.append((r.name, f"{_SYMBOL[r.status]} {r.status}", _cut(r.summary(), 58), _cut(expected, 42), r.recipe))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines += [f"{r.name}: {r.message}" for r in results if r.status != "pass"]
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "fail", "error", "skip")}
    lines.append(" · ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def main(args) -> int:
    from workbench.checks import names, run_checks
    from workbench.cli import load_session
    from workbench.errors import WorkbenchError

    try:
        session = load_session(args.script, root=args.root)
        chosen = None if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
        if chosen:
            known = set(names())
            bad = [n for n in chosen if n not in known]
            if bad:
                raise WorkbenchError(f"no check named {', '.join(bad)}; checks are: {', '.join(names())}")
        results = run_checks(session, names=chosen)
    except WorkbenchError as e:
        print(f"workbench check: {e}", file=sys.stderr)
        return 2
    if getattr(args, "junit", None):
        from workbench.checks.junit import write_junit

        write_junit(results, args.junit, suite=f"workbench check · {session.describe()}")
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1, allow_nan=False))
    else:
        print(f"Sanity checks (recipe part II) on {session.describe()}\n")
        print(render(results))
    return 1 if any(r.status in ("fail", "error") for r in results) else 0
