"""Panel in a notebook without internet: every view's styles come from the Jupyter server, never a CDN.

``pn.extension(..., inline=True)`` puts Panel's JavaScript and the styles of the first render into
the notebook. Later updates (a verdict appearing, a status line changing) send the pane's
stylesheets again as links, and Panel points those at its CDN unless the document names a local
``dist_url``, as its own "server" resource mode does. :func:`offline` names the copy that Panel's
Jupyter server extension serves (``<base>/panel-preview/static/extensions/panel/``) for every
notebook document after each cell, so an offline JupyterLab keeps its styles and asks no other host.
"""

from __future__ import annotations

import os

import panel as pn


def local_dist_url() -> str:
    """Where the Jupyter server serves Panel's files (under JupyterHub, below the user's prefix)."""
    base = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    return base.rstrip("/") + "/panel-preview/static/extensions/panel/"


def point_styles_at_jupyter(*_) -> int:
    """Name the local ``dist_url`` on every notebook document shown so far; returns how many were new."""
    url, n = local_dist_url(), 0
    for entry in list(pn.state._views.values()):
        doc = entry[2]
        if doc is not None and "dist_url" not in doc._template_variables:
            doc._template_variables["dist_url"] = url
            n += 1
    return n


def offline() -> None:
    """In IPython/Jupyter: after every cell, point the views shown by it at the local copy of Panel's styles."""
    try:
        from IPython import get_ipython
    except ImportError:  # not in IPython: nothing is shown in a notebook
        return
    ip = get_ipython()
    if ip is not None and point_styles_at_jupyter not in ip.events.callbacks["post_run_cell"]:
        ip.events.register("post_run_cell", point_styles_at_jupyter)
