"""The JupyterLab test uses the run's one Chromium (``browser`` and ``chromium_path`` in tests/conftest.py)."""
