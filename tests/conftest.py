"""Shared fixtures: the embedded digits data and sessions rooted in a temporary folder."""

import os
import shutil

import pytest
import torch

torch.set_num_threads(1)  # tests share two cores; one thread each keeps timings calm and results stable


@pytest.fixture(scope="session")
def digits():
    import workbench as wb

    return wb.datasets.digits()


@pytest.fixture
def session(digits, tmp_path):
    import workbench as wb

    train, test = digits
    return wb.Session(wb.models.tiny_cnn, train, test, seed=0, root=tmp_path / "runs")


@pytest.fixture
def mlp_session(digits, tmp_path):
    import workbench as wb

    train, test = digits
    return wb.Session(wb.models.mlp, train, test, seed=0, root=tmp_path / "runs")


# One Chromium for the whole run, shared by tests/browser and tests/notebooks: Playwright's sync API
# runs an event loop in this thread, so a second one beside it (a fixture per folder) cannot start.
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def chromium_path():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("WORKBENCH_REQUIRE_BROWSER"):
            pytest.fail(f"WORKBENCH_REQUIRE_BROWSER is set but no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        yield b
        b.close()
