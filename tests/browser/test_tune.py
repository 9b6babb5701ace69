"""The LR finder in a real browser: open the step, run the range test, see the curve and its suggestions (B.1)."""

import re

import pytest

from tests.browser.conftest import shot, text, wait_for

pytestmark = pytest.mark.browser





def open_tune(page, tries=3):
    for _ in range(tries):
        page.locator(".wb-step-tune button").first.click(timeout=60_000)
        try:
            page.wait_for_selector(".wb-lr-run", timeout=20_000, state="attached")
            return
        except Exception:  # noqa: BLE001 - the page was busy: click again
            continue
    raise AssertionError("the 'LR finder and search' step did not open")


def test_lr_finder_draws_the_curve_and_suggestions(page):
    open_tune(page)
    steps = page.locator(".wb-lr-controls input").nth(2)  # start LR, end LR, steps
    steps.fill("60")
    steps.press("Enter")
    page.locator(".wb-lr-run button").first.click()
    message = page.locator(".wb-lr-message").first
    wait_for(lambda: "suggested LR" in text(message), 90, message)
    shown = text(message)
    assert re.search(r"suggested LR \d", shown) and "B.1" in shown
    assert "60 iterations" in shown or "sweep ran" in shown
    use = page.locator(".wb-lr-use button").first
    wait_for(lambda: re.search(r"Use this LR \(\d", text(use)), 10, use)
    assert page.locator(".notyf__toast--error").count() == 0
    table = page.locator(".wb-lr-suggestions").first
    wait_for(lambda: "middle" in text(table) and "valley" in text(table), 10, table)
    # the picture without the "LR finder: ..." toast over the plots (it fades after 4 s)
    try:
        page.wait_for_selector(".notyf__toast", state="visible", timeout=5_000)
    except Exception:  # noqa: BLE001 - already gone
        pass
    page.wait_for_selector(".notyf__toast", state="detached", timeout=15_000)
    page.wait_for_timeout(300)
    shot(page, "lr_finder.png")
    use.click()
    page.wait_for_selector(".notyf__toast", timeout=10_000)
