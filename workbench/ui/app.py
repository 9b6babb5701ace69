"""The served app: one Session per browser session, the recipe as the page's structure."""

from __future__ import annotations

import panel as pn


def create_app(session) -> pn.template.BaseTemplate:
    """The workbench page for ``session``."""
    template = pn.template.FastListTemplate(title="Recipe Workbench", header_background="#2f4f4f")
    template.main.append(pn.pane.Markdown(f"## {session.describe()}\n\nThe session is ready."))
    return template
