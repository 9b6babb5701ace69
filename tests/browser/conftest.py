"""The served app in a subprocess (``workbench serve --defects``) and Debian's Chromium through Playwright."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, FLAGS  # noqa: F401 - the browser tests import them from here

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
ARTIFACTS = ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory, chromium_path):
    """``workbench serve --defects`` on a free localhost port; yields its URL."""
    port = _free_port()
    root = tmp_path_factory.mktemp("served-runs")
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "serve.log", "w+")  # kept for reading after a failed CI run
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("BOKEH_RESOURCES", None)  # the tests' inline setting breaks the served template's CSS
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", "--defects", "--port", str(port),
                             "--root", str(root)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"workbench serve exited:\n{log.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("workbench serve did not open its port in 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
    pg = ctx.new_page()
    pg.goto(server, timeout=120_000)
    pg.wait_for_selector(".wb-step-browse", timeout=120_000)
    yield pg
    ctx.close()


def shot(page, name: str) -> None:
    """A screenshot into test-artifacts/; also into assets/ (the README's images) with WORKBENCH_UPDATE_ASSETS=1."""
    folders = (ARTIFACTS, ASSETS) if os.environ.get("WORKBENCH_UPDATE_ASSETS") == "1" else (ARTIFACTS,)
    for folder in folders:
        folder.mkdir(exist_ok=True)
        page.screenshot(path=str(folder / name), full_page=False)


_DEEP_TEXT = """el => { const deep = n => { let t = ''; if (n.shadowRoot) t += deep(n.shadowRoot);
  for (const c of n.childNodes) { t += c.nodeType === 3 ? c.textContent : deep(c); } return t; };
  return deep(el); }"""


def text(locator) -> str:
    """The text of an element including what Panel renders inside its shadow roots."""
    return locator.evaluate(_DEEP_TEXT)


def wait_for(pred, timeout, locator, poll=0.25):
    """Poll ``pred`` until it holds; on timeout fail with the locator's last text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 - the element may be re-rendered while we read it
            pass
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s; last text: {text(locator) if locator else ''!r}")
