"""Third way in: every view embeds in ipywidgets hosts (VS Code, Voila) through jupyter_bokeh."""

import pytest


@pytest.mark.parametrize("name", ["BatchViewer", "LiveCurves", "DataBrowser", "ChecksPanel", "InstrumentsView",
                                  "TuneView", "RecipeWizard"])
def test_view_as_ipywidget(small_session, name):
    from jupyter_bokeh import BokehModel

    import workbench as wb

    view = getattr(wb.ui, name)(small_session)
    widget = view.ipywidget()
    assert isinstance(widget, BokehModel)
    assert widget._model is not None  # the rendered Bokeh root travels with the widget
