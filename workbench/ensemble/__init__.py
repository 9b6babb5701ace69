"""Part IV of the recipe, squeeze out the juice: ensembles (IV.1-IV.3), weight averaging (IV.4), distillation (IV.5)."""

from workbench.ensemble.averaging import WeightAveraging, averaged_model, averaging_curves
from workbench.ensemble.distill import DistillResult, distill, distillation_loss
from workbench.ensemble.members import Ensemble, EnsembleError, EnsembleResult, ensemble, score

__all__ = ["ensemble", "distill", "WeightAveraging", "Ensemble", "EnsembleResult", "EnsembleError", "DistillResult",
           "distillation_loss", "averaged_model", "averaging_curves", "score"]
