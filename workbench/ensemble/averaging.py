"""Weight averaging (recipe IV.4): EMA and SWA of the weights, scored beside the raw weights.

The averager is a handler on the engine's run (workbench/engine/averaging.py, where ``fit(ema=,
swa=)`` finds it without importing part IV); here is its place in part IV of the recipe.
"""

from workbench.engine.averaging import (
                                        RECIPE,
                                        WeightAveraging,
                                        averaged_model,
                                        averaging_curves,
                                        ema_warmup_multi_avg_fn,
)

__all__ = ["RECIPE", "WeightAveraging", "averaged_model", "averaging_curves", "ema_warmup_multi_avg_fn"]
