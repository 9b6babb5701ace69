"""A reloaded page keeps the results: the checks run before the reload are shown again, from the result book."""

import pytest

from tests.browser.conftest import text, wait_for

pytestmark = pytest.mark.browser

QUICK = ("architecture", "data_pipeline", "init_loss", "bias_init", "regularization")


def open_checks(page):
    page.locator(".wb-step-checks button").first.click(timeout=60_000)
    page.wait_for_selector(".wb-run-checks", timeout=60_000, state="attached")


def test_reloading_the_page_keeps_the_check_verdicts(page):
    open_checks(page)
    page.locator(".wb-run-checks button").first.click()
    cards = page.locator(".wb-check-cards").first
    wait_for(lambda: all(f"{n}" in text(cards) for n in QUICK) and "recipe" in text(cards), 240, cards)
    step = page.locator(".wb-step-checks").first
    wait_for(lambda: "✔" in text(step) or "⚠" in text(step) or "◑" in text(step), 30, step)
    before = text(cards)

    page.reload(timeout=120_000)  # a new browser session: a new Session on the same root and data
    page.wait_for_selector(".wb-step-browse", timeout=120_000)
    open_checks(page)
    cards = page.locator(".wb-check-cards").first
    wait_for(lambda: all(n in text(cards) for n in QUICK), 60, cards)
    for n in QUICK:  # the same verdict words per check as before the reload
        assert n in before and n in text(cards)
    assert "No check has run yet" not in text(cards)
