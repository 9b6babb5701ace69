"""``workbench serve [SCRIPT]``: the app on localhost (or ``--address``), one Session per browser session."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", nargs="?", help="a Python file defining `session` (default: the digits demo)")
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1", help="interface to bind (default: localhost only)")
    parser.add_argument("--root", default="runs", help="where runs are stored (demo only)")
    parser.add_argument("--defects", action="store_true", help="digits demo with known data defects added")
    parser.add_argument("--show", action="store_true", help="open a browser tab")


def main(args) -> int:
    import panel as pn

    from workbench.cli import load_session
    from workbench.ui.app import create_app, load_extensions

    load_extensions()

    def page():
        return create_app(load_session(args.script, root=args.root, defects=args.defects))

    origins = [f"{args.address}:{args.port}", f"localhost:{args.port}", f"127.0.0.1:{args.port}"]
    print(f"Recipe Workbench on http://{args.address}:{args.port}/  (Ctrl+C stops)", flush=True)
    pn.serve({"/": page}, port=args.port, address=args.address, show=args.show, websocket_origin=origins,
             title="Recipe Workbench")
    return 0
