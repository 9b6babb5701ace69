"""The CIFAR-style tutorial script with wb.watch(serve=...) in a real browser: its run's curves and instruments."""

import re
import sys

import pytest

from tests.browser.conftest import ARTIFACTS, ROOT, shot, text, wait_for
from tests.browser.serving import free_port, serve_env, started
from tests.browser.test_app import click_step

pytestmark = pytest.mark.browser


@pytest.fixture
def watched_script(tmp_path, chromium_path):
    """examples/own_loop_cifar.py serving its app on a free port while it trains (and after)."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    env = {**serve_env(), "WORKBENCH_SERVE": str(port), "WORKBENCH_ROOT": str(tmp_path / "runs"), "EPOCHS": "3",
           "PYTHONPATH": str(ROOT)}
    with started([sys.executable, str(ROOT / "examples" / "own_loop_cifar.py")], ARTIFACTS / "watch-script.log",
                 port, env=env, cwd=tmp_path) as (_, log):
        yield f"http://127.0.0.1:{port}/", log


def test_the_watched_scripts_run_in_the_app(browser, watched_script):
    url, log = watched_script
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    try:
        page.goto(url, timeout=120_000)
        page.wait_for_selector(".wb-step-browse", timeout=120_000)
        click_step(page, "instruments")
        status = page.locator(".wb-curves-status").first
        wait_for(lambda: re.search(r"run \S+ · completed · epoch 3/3 · val loss", text(status)), 240, status)
        log.seek(0)
        run_id = re.search(r"Finished Training (\S+)", log.read()).group(1)
        assert f"run {run_id}" in text(status)
        caption = page.locator(".wb-filter-caption").first
        wait_for(lambda: "epoch 3" in text(caption), 60, caption)  # the first layer after the last epoch
        wiggle = page.locator(".wb-wiggle-score").first
        wait_for(lambda: re.search(r"\d\.\d{4}", text(wiggle)), 60, wiggle)
        shot(page, "watch-script.png")
        assert page.locator(".notyf__toast--error").count() == 0
    finally:
        ctx.close()
