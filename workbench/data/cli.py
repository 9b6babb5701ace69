"""``workbench audit PATH [--json] [--out report.html]``: audit an image folder from the shell (recipe I.2).

The integrator registers ``add_arguments`` and ``main`` as the ``audit`` subcommand;
``python -m workbench.data.cli PATH`` runs it standalone.
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.errors import WorkbenchError

from .findings import ISSUE_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The audit subcommand's arguments."""
    parser.add_argument("path", help="an image folder: class subfolders (ImageFolder layout), a flat folder of "
                                     "images, or train/ and test/ subfolders of those (leaks are then found too)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON instead of a summary")
    parser.add_argument("--out", metavar="FILE", help="also write the report: .html (a page with pictures), "
                                                      ".json or .csv (the issues table)")
    parser.add_argument("--issues", nargs="+", choices=list(ISSUE_TYPES), metavar="ISSUE",
                        help=f"only these issue types ({', '.join(ISSUE_TYPES)})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run the audit; 0 when it completed (findings or not), 2 when the data cannot be audited."""
    from tqdm.auto import tqdm

    from .audit import audit

    bar = None

    def progress(done, total, stage):
        nonlocal bar
        if bar is None:
            # delay: a bar only for audits that take a while; stderr keeps --json output clean
            bar = tqdm(total=total, unit="ex", delay=1.0, file=sys.stderr, disable=args.no_progress or None)
        bar.set_description(stage, refresh=False)
        bar.update(done - bar.n)

    options = {"issues": tuple(args.issues)} if args.issues else {}
    try:
        report = audit(args.path, progress=progress, **options)
    except WorkbenchError as e:
        print(f"workbench audit: {e}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    if args.out:
        try:
            path = report.save(args.out)
        except (WorkbenchError, OSError) as e:
            print(f"workbench audit: cannot write {args.out}: {e}", file=sys.stderr)
            return 2
        print(f"report written to {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(_text(report))
    return 0


def _text(report, per_issue: int = 5) -> str:
    lines = [repr(report), f"labels judged by: {report.source}"]
    for issue, part in report.issues.groupby("issue", sort=False):
        lines.append(f"\n{issue} ({len(part)}):")
        for r in part.head(per_issue).itertuples():
            where = f"{r.split}" if r.index < 0 else f"{r.split} #{r.index}"
            name = report.meta.get("files", {}).get(r.split, {}).get(r.index) if r.index >= 0 else None
            lines.append(f"  {where}{f' ({name})' if name else ''}: {r.detail}")
        if len(part) > per_issue:
            lines.append(f"  ... and {len(part) - per_issue} more")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="workbench audit", description=__doc__.splitlines()[0])
    add_arguments(p)
    sys.exit(main(p.parse_args()))
