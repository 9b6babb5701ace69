"""Panel views over a Session: each a ``pn.viewable.Viewer``, the same in a notebook and in the served app."""

from workbench.ui.app import create_app

__all__ = ["create_app"]
