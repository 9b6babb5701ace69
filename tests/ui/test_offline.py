"""wb.ui.offline(): after a notebook cell, a view's later updates link Panel's styles locally, never to its CDN."""

import panel as pn
from bokeh.models import ImportedStyleSheet

from workbench.ui.batch import BatchViewer
from workbench.ui.offline import local_dist_url, point_styles_at_jupyter


def _links(doc) -> set[str]:
    return {s.url for m in doc.models for s in (getattr(m, "stylesheets", None) or [])
            if isinstance(s, ImportedStyleSheet)}


def test_updates_after_a_cell_link_styles_from_the_jupyter_server(small_session, monkeypatch):
    pn.extension(inline=True)
    monkeypatch.setattr(pn.config, "inline", True)
    view = BatchViewer(small_session)
    view.__panel__()._repr_mimebundle_()  # what displaying it in a notebook cell does
    doc = list(pn.state._views.values())[-1][2]
    assert point_styles_at_jupyter() >= 1 and point_styles_at_jupyter() == 0  # each document once
    view.run_check()  # the verdict pane is updated: Panel sends its stylesheets again
    links = _links(doc)
    assert links and not [u for u in links if u.startswith("http")], sorted(links)[:3]
    assert any(u.startswith(local_dist_url()) and "theme" in u for u in links)


def test_the_local_copy_sits_below_a_jupyterhub_prefix(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert local_dist_url() == "/user/ada/panel-preview/static/extensions/panel/"
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    assert local_dist_url() == "/panel-preview/static/extensions/panel/"
