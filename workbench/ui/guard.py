"""Who may reach the served app: the Host allow-list (no DNS rebinding) and the login a non-loopback address needs.

A page on another host name that resolves to 127.0.0.1 (DNS rebinding) sends its own name in the
``Host`` header and as the websocket ``Origin``; both are checked against the names this server is
reached by. Binding anything but loopback opens the app to the network, so it takes an explicit
choice: ``--token`` (a random secret printed once), ``--password``, or a loud ``--no-auth``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import socket
from urllib.parse import urlsplit

from tornado.routing import Matcher, Rule
from tornado.web import RequestHandler

from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")
PASSWORD_ENV = "WORKBENCH_PASSWORD"


class ServeError(WorkbenchError):
    """``workbench serve`` was asked for something unsafe or contradictory; the message names the fix."""


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine can connect."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a network interface


def allowed_hosts(address: str, extra=()) -> set[str]:
    """The host names (no port) this server answers to: loopback, the bound address, this machine's names."""
    hosts = set(LOOPBACK_NAMES) | {h.lower().strip("[]") for h in extra}
    if address not in WILDCARDS:
        hosts.add(address.lower().strip("[]"))
    if not is_loopback(address):  # reachable from the network: by this machine's names and addresses
        name = socket.gethostname()
        hosts |= {name.lower(), socket.getfqdn().lower()}
        try:
            hosts |= set(socket.gethostbyname_ex(name)[2])
        except OSError:
            pass  # no resolvable name: --allow-host adds the names people use
    return hosts


def host_name(netloc: str) -> str:
    """``Host`` or ``Origin`` value -> its lower-case host name without port or brackets."""
    netloc = netloc.strip()
    if "://" not in netloc:
        netloc = "//" + netloc
    try:
        return (urlsplit(netloc).hostname or "").lower()
    except ValueError:
        return ""


class _ForeignRequest(Matcher):
    """Matches requests that must be refused: a Host (or a websocket Origin) not in the allow-list."""

    def __init__(self, hosts: set[str]):
        self.hosts = hosts

    def match(self, request):
        origin = request.headers.get("Origin")
        foreign = host_name(request.headers.get("Host", "")) not in self.hosts
        if origin and request.path.endswith("/ws"):
            # Bokeh checks the websocket Origin too, but BOKEH_ALLOW_WS_ORIGIN in the environment replaces its list
            foreign = foreign or host_name(origin) not in self.hosts
        return {} if foreign else None


class _Refuse(RequestHandler):
    """403 with a sentence saying what was refused and how to allow it."""

    def prepare(self):
        name = host_name(self.request.headers.get("Host", "")) or "(none)"
        log.warning("refused a request for host %r (Origin %r)", name, self.request.headers.get("Origin"))
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")  # the host name is echoed: never read as HTML
        self.finish(f"403: this Recipe Workbench does not answer to the host name {name!r} (a protection against "
                    f"DNS rebinding). If you reach it by that name on purpose, restart it with "
                    f"--allow-host {name}\n")


def install_host_check(tornado_app, hosts: set[str]) -> None:
    """Refuse every request whose Host (or websocket Origin) is not in ``hosts``, before any page is built."""
    router = tornado_app.default_router
    router.add_rules([Rule(_ForeignRequest(hosts), _Refuse)])
    router.rules.insert(0, router.rules.pop())  # first rule: checked before Bokeh's own routes


def websocket_origins(hosts: set[str], port: int) -> list[str]:
    """Bokeh's websocket allow-list (``host:port``) for the same host names.

    Bokeh's list cannot spell IPv6 addresses (it splits on ':'): pages opened at ``[::1]`` get no websocket.
    """
    return sorted(f"{h}:{port}" for h in hosts if ":" not in h)


def auth_options(address: str, token: bool, password: str | None, no_auth: bool) -> tuple[dict, str | None]:
    """``pn.serve`` keyword arguments for the login, and the secret to print once (the token), or a ServeError.

    Loopback needs nothing. Any other address needs ``--token``, ``--password`` or ``--no-auth``.
    """
    chosen = [flag for flag, on in (("--token", token), ("--password", password is not None),
                                    ("--no-auth", no_auth)) if on]
    if len(chosen) > 1:
        raise ServeError(f"choose one of {', '.join(chosen)}, not several")
    if not chosen:
        if is_loopback(address):
            return {}, None
        raise ServeError(
            f"--address {address} opens the app to the network, where anyone who reaches the port could train, "
            f"read the data and write files. Add one of:\n"
            f"  --token          a random secret, printed once at start, asked on the login page\n"
            f"  --password PW    your password (or --password alone to read it from ${PASSWORD_ENV})\n"
            f"  --no-auth        no login at all (only on a network you trust)\n"
            f"or keep the default --address 127.0.0.1.")
    if no_auth:
        return {}, None
    if token:
        secret = secrets.token_urlsafe(24)
    else:
        secret = os.environ.get(PASSWORD_ENV, "") if password == "" else password
        if not secret:
            raise ServeError(f"--password without a value reads ${PASSWORD_ENV}, which is empty or unset")
        if os.path.exists(secret):  # Panel would read an existing path as a JSON file of users
            raise ServeError("the password is the name of an existing file; choose another password")
    # Panel's basic auth: a login page and a signed cookie; the cookie key is fresh for every start
    return {"basic_auth": secret, "cookie_secret": secrets.token_urlsafe(32)}, (secret if token else None)
