"""Plot panes that appear once they have data, so a page never draws empty axes (every step's views).

BokehJS cannot range an empty plot: each one drawn without data logs "could not set initial ranges"
(and a log axis "could not determine min/max data value"), about 190 warnings in a walk through
the app; a hidden plot is drawn all the same. A pane made here holds a one-line hint and adds the
figure to the page only once a source holds rows; ``reveal`` is called by the view whenever it
has fed its sources.
"""

from __future__ import annotations

import panel as pn

from workbench.ui.common import on_document


def _rows(source) -> int:
    data = source.data
    return max((len(v) for v in data.values()), default=0)


class PlotPane(pn.Column):
    """A Bokeh figure put on the page once one of its sources has data; ``hint`` stands in before."""

    def __init__(self, fig, *sources, hint: str = "", **params):
        self.fig, self.sources = fig, sources
        self.plot: pn.pane.Bokeh | None = None
        self.hint = pn.pane.Markdown(f"*{hint}*" if hint else "", styles={"color": "#757575"})
        super().__init__(self.hint, **params)
        self.reveal()

    def reveal(self) -> bool:
        """Add the figure once a source has rows (call after feeding the sources); returns whether it shows."""
        if self.plot is None and any(_rows(s) for s in self.sources):
            self.plot = pn.pane.Bokeh(self.fig)
            # on the document's next tick, in a message of its own: a source another figure already shows is
            # in the browser with its old rows, and its new rows sent with the new figure could reach BokehJS
            # after the figure was drawn (the accuracy plot of Live curves, drawn empty, warned "could not set
            # initial ranges" in 6 of 11 walks that showed the loss plot first; in none of 12 since)
            on_document(self._show)
        return self.plot is not None

    def _show(self) -> None:
        self[:] = [self.plot]

    def swap(self, fig) -> None:
        """Show another figure over the same sources (e.g. the log-scale twin)."""
        self.fig = fig
        if self.plot is not None:
            self.plot.object = fig
