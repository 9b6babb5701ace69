"""The served app in a subprocess (``workbench serve --defects``) and Debian's Chromium through Playwright."""

import contextlib
import os
import time
from pathlib import Path

import pytest

from tests.browser.serving import served
from tests.conftest import CHROMIUM, FLAGS  # noqa: F401 - the browser tests import them from here

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def server(tmp_path_factory, chromium_path):
    """``workbench serve --defects`` on a free localhost port, shared by the session's tests; yields its URL."""
    root = tmp_path_factory.mktemp("served-runs")
    ARTIFACTS.mkdir(exist_ok=True)  # serve.log is kept for reading after a failed CI run
    with served(["--defects", "--root", str(root)], ARTIFACTS / "serve.log") as (url, _, _):
        yield url


@contextlib.contextmanager
def app_page(browser, url: str):
    """A fresh browser context at 1600x1000 with the app at ``url`` loaded (its stepper drawn)."""
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        pg = ctx.new_page()
        pg.goto(url, timeout=120_000)
        pg.wait_for_selector(".wb-step-browse", timeout=120_000)
        yield pg
    finally:
        ctx.close()


@pytest.fixture
def page(browser, server):
    with app_page(browser, server) as pg:
        yield pg


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
