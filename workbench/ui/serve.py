"""``workbench serve [SCRIPT]``: the app on localhost (or ``--address``), one Session per browser session.

Protections (issue "Hardening"): only the host names this server is reached by are answered (DNS
rebinding), a non-loopback address needs ``--token``, ``--password`` or ``--no-auth``, and pages are
built off the event loop so open tabs stay responsive while others load.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from workbench.ui.guard import (
    PASSWORD_ENV,
    ServeError,
    allowed_hosts,
    auth_options,
    install_host_check,
    is_loopback,
    websocket_origins,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", nargs="?", help="a Python file defining `session` (default: the digits demo)")
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--address", default="127.0.0.1", help="interface to bind (default: localhost only); "
                        "anything else needs --token, --password or --no-auth")
    parser.add_argument("--token", action="store_true", help="a login with a random token, printed once at start")
    parser.add_argument("--password", nargs="?", const="", default=None, metavar="PASSWORD",
                        help=f"a login with this password (alone: read from ${PASSWORD_ENV})")
    parser.add_argument("--no-auth", action="store_true", help="no login on a non-loopback address (trusted networks)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another host name the app may be reached by (e.g. behind a proxy); repeatable")
    parser.add_argument("--root", default="runs", help="where runs are stored (demo only)")
    parser.add_argument("--defects", action="store_true", help="digits demo with known data defects added")
    parser.add_argument("--show", action="store_true", help="open a browser tab")


def main(args) -> int:
    try:
        auth, token = auth_options(args.address, args.token, args.password, args.no_auth)
        if args.script and not Path(args.script).is_file():  # said now, not on each page load
            raise ServeError(f"no such script: {args.script}")
    except ServeError as e:
        print(f"workbench serve: {e}", file=sys.stderr)
        return 2
    server = build_server(args, auth)
    announce(args, token)
    if args.show:
        server.show("/")
    # the imported libraries (torch, Panel, Bokeh) are a heap the full collections would walk again and again
    # while sessions come and go; frozen, they are skipped (measured: pauses of 2.6 s under load before)
    gc.freeze()
    server.start()
    server.io_loop.start()
    return 0


def build_server(args, auth: dict):
    """The Panel/Bokeh server, not started: pages built off the loop, the Host allow-list installed."""
    import panel as pn

    from workbench.cli import load_session
    from workbench.ui.app import create_app, load_extensions
    from workbench.ui.pages import threaded_app

    load_extensions()

    def page():
        return create_app(load_session(args.script, root=args.root, defects=args.defects))

    hosts = allowed_hosts(args.address, args.allow_host)
    server = pn.serve({"/": threaded_app(page, "Recipe Workbench")}, port=args.port, address=args.address,
                      show=False, start=False, websocket_origin=websocket_origins(hosts, args.port),
                      title="Recipe Workbench", **auth)
    install_host_check(server._tornado, hosts)  # Bokeh keeps its Tornado application private; the rule goes first
    return server


def announce(args, token: str | None) -> None:
    """The URL, and what protects it: printed once at start."""
    print(f"Recipe Workbench on http://{args.address}:{args.port}/  (Ctrl+C stops)", flush=True)
    if token:
        print(f"Log in with any user name and this token (shown only now): {token}", flush=True)
    if args.no_auth and not is_loopback(args.address):
        print(f"WARNING: --no-auth on {args.address}: anyone who reaches port {args.port} can use this app, "
              f"train models and read the data. Use --token or --password unless the network is yours.",
              file=sys.stderr, flush=True)
