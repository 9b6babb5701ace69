"""``notebooks/workbench.ipynb`` in a real JupyterLab 4 frontend, offline: the wizard draws and its buttons work.

JupyterLab is started on a free localhost port with a token; Chromium opens the notebook, runs all
cells, and every request to a host other than 127.0.0.1 is blocked and recorded: Panel must bring
its JavaScript and styles inline (``pn.extension(..., inline=True)``), not from its CDN.
"""

import os
import re
import secrets
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.browser.conftest import ARTIFACTS, FLAGS, text
from tests.browser.serving import free_port, started

pytestmark = [pytest.mark.notebook, pytest.mark.browser]
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "workbench.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory, chromium_path):
    """``jupyter lab`` on a free port, serving a copy of the notebook; yields (url, token)."""
    pytest.importorskip("jupyterlab")
    home = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOK, home / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WORKBENCH_ROOT": str(home / "runs"),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    ARTIFACTS.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={home}", "--ServerApp.open_browser=False",
           *(["--allow-root"] if os.geteuid() == 0 else []),
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with started(cmd, ARTIFACTS / "jupyterlab.log", port, env=env, cwd=home):
        yield f"http://127.0.0.1:{port}", token


def _pick_kernel(page) -> None:
    """Accept the "Select Kernel" dialog (the notebook names no kernel): this interpreter's Python 3."""
    select = page.locator(".jp-Dialog").get_by_role("button", name="Select")
    try:
        select.wait_for(timeout=15_000)
    except Exception:  # noqa: BLE001 - no dialog: the kernel started by itself
        return
    select.click()


def _run_all(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name=re.compile("^Run All Cells")).click()


def _prompts(page) -> list[str]:
    return [p.strip() for p in page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def test_the_wizard_draws_and_works_in_jupyterlab_offline(lab, browser, chromium_path):
    url, token = lab
    outside: list[str] = []
    phase = ["open"]

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            return r.continue_()
        outside.append(f"{phase[0]}: {r.request.url}")
        return r.abort()

    # a Chromium of its own (from the run's one Playwright): nothing left over from the app's browser tests
    own = browser.browser_type.launch(executable_path=chromium_path, args=FLAGS)
    ctx = own.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    page.route("**/*", route)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}", timeout=120_000)
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    _pick_kernel(page)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000, state="attached")
    n_code = page.locator(".jp-CodeCell").count()
    phase[0] = "run all"
    _run_all(page)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        prompts = _prompts(page)
        if len(prompts) == n_code and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            break
        time.sleep(1)
    else:
        page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))
        raise AssertionError(f"the cells did not all run: prompts {_prompts(page)}")
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
        has_text="Traceback").count() == 0

    # the wizard is drawn: its stepper buttons, the "Next" card and Bokeh canvases in the outputs
    out = page.locator(".jp-OutputArea-output")
    step = out.locator(".wb-step-batch button").first
    step.wait_for(timeout=240_000)
    assert "The batch before model(x)" in text(step)
    assert out.locator(".wb-next").first.is_visible()
    assert out.locator("canvas").count() >= 2  # the class counts, the live curves
    page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))

    # a click goes through the kernel: open the batch step, run the data_pipeline check, see its verdict
    phase[0] = "click batch"
    check = out.get_by_role("button", name="Run the data_pipeline check").first
    for attempt in range(3):  # a click that lands while the widget's comm is still opening is lost: click again
        step.click()
        try:
            check.wait_for(timeout=60_000)
            break
        except Exception:  # noqa: BLE001 - retried, the last attempt raises below
            if attempt == 2:
                raise
    phase[0] = "click check"
    check.click()
    verdict = out.locator(".wb-badge").filter(has_text="data_pipeline").first
    verdict.wait_for(timeout=240_000)
    assert re.search(r"data_pipeline: (pass|warn|fail)", text(verdict))
    stepper = out.locator(".wb-step-batch button").first
    deadline = time.monotonic() + 30  # the stepper follows the session within a periodic tick
    while time.monotonic() < deadline and text(stepper).startswith("○"):
        time.sleep(0.5)
    assert not text(stepper).startswith("○"), text(stepper)
    assert outside == [], f"requests to other hosts: {outside[:5]}"
    assert errors == [], errors
    ctx.close()
    own.close()
