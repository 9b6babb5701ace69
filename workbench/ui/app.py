"""The served app: one Session per browser session, the recipe wizard as the page's structure."""

from __future__ import annotations

import html

import panel as pn

from workbench.ui.common import install_exception_handler
from workbench.ui.export import ExportView
from workbench.ui.wizard import RecipeWizard

CSS = """
.wb-badge { font-family: sans-serif; }
body, .bk-root { font-family: "Open Sans", "Helvetica Neue", Arial, sans-serif; }
"""


def _no_web_font() -> None:
    """The Fast design links Open Sans from Google Fonts in every served page; the app must render offline (or on
    a closed network) and ask no host but its own, so the design's font resource is emptied (system sans-serif)."""
    from panel.theme.fast import Fast

    if Fast._resources.get("font"):
        Fast._resources = {**Fast._resources, "font": {}}


class OfflineTemplate(pn.template.FastListTemplate):
    """FastListTemplate without its web font: the page asks no host but the app's."""

    def __init__(self, **params):
        _no_web_font()
        super().__init__(**params)


def create_app(session) -> pn.template.BaseTemplate:
    """The workbench page for ``session``: stepper in the sidebar, the step's views, Export in the header."""
    pn.config.notifications = True  # errors in callbacks become messages in the page
    install_exception_handler()
    wizard = RecipeWizard(session)
    export = ExportView(session)
    template = OfflineTemplate(
        title="Recipe Workbench", header_background="#2f4f4f", sidebar_width=310, raw_css=[CSS],
        header=[session_label(session), export.download], theme_toggle=False)
    template.sidebar.append(wizard.stepper())
    template.main.append(wizard.main())
    template.wizard = wizard  # for tests and scripts driving the page
    pn.state.onload(wizard.start_updates)
    return template


def session_label(session) -> pn.pane.HTML:
    """The header's "session: ..." line; the name comes from a folder or the user: escaped, no markup runs."""
    name = html.escape(session.describe())
    return pn.pane.HTML(f'<span class="wb-session" style="color:white">session: {name}</span>', margin=(18, 10))


def ipywidget(view):
    """A view as an ipywidget (VS Code, Voila) through jupyter_bokeh."""
    return pn.ipywidget(view)


def load_extensions() -> None:
    """Panel's JS extensions the views need (Tabulator) and notifications: call once, before serving."""
    pn.extension("tabulator", notifications=True)


if __name__.startswith("bokeh_app"):  # `panel serve workbench/ui/app.py`: the digits demo, one per browser session
    import os

    load_extensions()

    from workbench.demo import demo_session

    create_app(demo_session(root=os.environ.get("WORKBENCH_ROOT", "runs"),
                            defects=bool(os.environ.get("WORKBENCH_DEFECTS")))).servable()
