"""Panel views over a Session: each a ``pn.viewable.Viewer``, the same in a notebook and in the served app.

``wb.ui.Wizard(session)`` is the recipe I → IV; every view also works alone in a notebook cell
(``wb.ui.LiveCurves(session)``) and in ipywidgets hosts (``view_ipywidget(view)``).
Views whose backend (checks, audit, instruments, tuning, ensembles) has not landed are absent.
"""

from workbench.ui.app import create_app, ipywidget
from workbench.ui.batch import BatchViewer
from workbench.ui.curves import LiveCurves
from workbench.ui.data_browser import DataBrowser
from workbench.ui.export import ExportView, export_report, report_html
from workbench.ui.human import HumanBaseline
from workbench.ui.offline import offline
from workbench.ui.wizard import RecipeWizard

Wizard = RecipeWizard

__all__ = ["create_app", "ipywidget", "BatchViewer", "LiveCurves", "DataBrowser", "ExportView", "export_report",
           "report_html", "HumanBaseline", "RecipeWizard", "Wizard",
           "offline"]


def __getattr__(name):
    # views over backends other parts build: imported on first use, absent until they land
    from importlib import import_module

    modules = {"ChecksPanel": "workbench.ui.checks_panel", "AuditView": "workbench.ui.audit_view",
               "InstrumentsView": "workbench.ui.instruments", "FilterGrid": "workbench.ui.instruments",
               "WigglePlot": "workbench.ui.instruments", "Histograms": "workbench.ui.instruments",
               "UpdateRatio": "workbench.ui.instruments", "TuneView": "workbench.ui.tune",
               "DiagnosisView": "workbench.ui.tune", "EnsembleView": "workbench.ui.ensembles",
               "RunsView": "workbench.ui.runs_view", "InterpretView": "workbench.ui.interpret"}
    if name in modules:
        return getattr(import_module(modules[name]), name)
    raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
