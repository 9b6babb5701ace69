"""``workbench tune lr-find | search | diagnose [SCRIPT]``: the tuning steps of recipe III.B from a shell.

``search`` is also how a study grows past one machine: start the same command on several machines
with one ``--storage`` URL (PostgreSQL, or a journal file on a shared disk) and ``--total-trials``;
each worker takes trials until the study holds that many.
"""

from __future__ import annotations

import argparse

from workbench.errors import WorkbenchError

ACTIONS = ("lr-find", "search", "diagnose")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="lr-find (B.1), search (B.2/B.3) or diagnose (B.4)")
    parser.add_argument("script", nargs="?", help="a Python file defining `session` (default: the digits demo)")
    parser.add_argument("--root", default=None, help="folder of the runs (default: the script's, or runs)")
    parser.add_argument("--steps", type=int, default=100, help="lr-find: sweep steps")
    parser.add_argument("--no-coarse", action="store_true", help="lr-find: skip the 1e-1..1e-4 coarse runs")
    parser.add_argument("--stage", choices=("coarse", "refine"), default="coarse", help="search stage")
    parser.add_argument("--trials", type=int, default=None, help="search: trials this worker runs")
    parser.add_argument("--total-trials", type=int, default=None,
                        help="search: stop when the study holds this many trials (for several workers)")
    parser.add_argument("--epochs", type=int, default=None, help="search: epochs per trial")
    parser.add_argument("--storage", default=None,
                        help="search: Optuna storage URL or journal file (default: sqlite <root>/optuna.db)")
    parser.add_argument("--study", default=None, help="search: study name")
    parser.add_argument("--sampler", choices=("random", "qmc"), default="random")
    parser.add_argument("--top", type=int, default=3, help="search --stage refine: best coarse configs to refine")
    parser.add_argument("--run", default=None, help="diagnose: run id (default: the newest run under --root)")


def main(args) -> int:
    from workbench.cli import load_session

    session = load_session(args.script, root=args.root)
    try:
        if args.action == "lr-find":
            r = session.lr_find(steps=args.steps, coarse=None if args.no_coarse else (1e-1, 1e-2, 1e-3, 1e-4))
            print(r.message)
            print(r.to_frame().to_string(index=False))
            if len(r.coarse_summary):
                print(r.coarse_summary.to_string(index=False))
        elif args.action == "search":
            if args.stage == "refine" and args.study:
                import optuna

                from workbench.tune.search import make_storage, results

                coarse = optuna.load_study(study_name=args.study, storage=make_storage(session, args.storage))
                table = results(coarse, coarse.direction.name.lower())
                table.attrs["study"] = args.study
                session.book.record("search", table)  # refine starts from the coarse study's table
            df = session.search(trials=args.trials, total_trials=args.total_trials, epochs=args.epochs,
                                stage=args.stage, storage=args.storage,
                                study_name=None if args.stage == "refine" else args.study,
                                sampler=args.sampler, top=args.top)
            print(f"study {df.attrs['study']} ({df.attrs['storage']}), recipe {df.attrs['recipe']}")
            print(df.to_string(index=False))
        else:
            ids = session.store.ids()
            run_id = args.run or (ids[-1] if ids else None)
            if run_id is None:
                raise WorkbenchError(f"no runs under {session.root} to diagnose")
            d = session.diagnose(run_id)
            print(d.message)
            for f in d:
                print(f"  {f}")
    except WorkbenchError as e:
        print(f"workbench tune: {e}")
        return 2
    return 0
