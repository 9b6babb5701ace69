"""Plot panes that appear once they have data, so a page never draws empty axes (every step's views).

BokehJS cannot range an empty plot: each one drawn without data logs "could not set initial ranges"
(and a log axis "could not determine min/max data value"), about 190 warnings in a walk through
the app. A pane made here stays hidden, with a one-line hint in its place, until its source holds
rows; ``reveal`` is called by the view whenever it has fed its sources.
"""

from __future__ import annotations

import panel as pn


def _rows(source) -> int:
    data = source.data
    return max((len(v) for v in data.values()), default=0)


class PlotPane(pn.Column):
    """A Bokeh figure shown only while one of its sources has data; ``hint`` stands in before."""

    def __init__(self, fig, *sources, hint: str = "", **params):
        self.fig, self.sources = fig, sources
        self.plot = pn.pane.Bokeh(fig, visible=False)
        self.hint = pn.pane.Markdown(f"*{hint}*" if hint else "", styles={"color": "#757575"}, visible=bool(hint))
        super().__init__(self.hint, self.plot, **params)
        self.reveal()

    def reveal(self) -> bool:
        """Show the plot once a source has rows (call after feeding the sources); returns whether it shows."""
        has = any(_rows(s) for s in self.sources)
        if self.plot.visible != has:
            self.plot.visible = has
            self.hint.visible = not has and bool(self.hint.object)
        return has

    def swap(self, fig) -> None:
        """Show another figure over the same sources (e.g. the log-scale twin)."""
        self.fig = fig
        self.plot.object = fig
