"""The browser fixtures (Chromium through Playwright) for the JupyterLab test."""

from tests.browser.conftest import browser, chromium_path  # noqa: F401 - fixtures
