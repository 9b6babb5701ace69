"""Image property outliers: dark, bright and low-information images, each scored against the typical image.

Measured per image by the scanner on brightness in [0, 1] (perceived brightness for RGB):
the 99th percentile (dark: even the brightest pixels are dim), the 1st percentile (bright: even
the darkest pixels are light) and the entropy of the brightness histogram (low information: few
distinct values, e.g. a nearly empty image). Thresholds are relative to the dataset's median, so
a dataset of night scenes is not flagged wholesale; only images unlike the rest are. A flagged
value must also lie beyond the dataset's own spread (3 robust standard deviations below the
median): where the measure varies widely by design (small and large shapes on flat backgrounds
have histogram entropies from 0.03 to 0.6) its low end is the data, not a defect.
"""

from __future__ import annotations

import numpy as np

from .findings import Findings

SPREADS = 3.0


def find_properties(scan, out: Findings, dark_ratio=0.4, bright_ratio=0.4, low_info_ratio=0.4) -> dict:
    """dark / bright / low_information rows; returns {issue: (score threshold, rule)} for the summary."""
    ok = scan.ok & np.isfinite(scan.p99)
    if not scan.is_image or not ok.any():
        return {}
    rules = {}
    # Each measure m: "good" when large; the score is how far below the typical value it falls.
    measures = {
        "dark": (scan.p99, dark_ratio, "99th-percentile brightness {v:.2f}, typical {t:.2f}"),
        "bright": (1 - scan.p01, bright_ratio, "1st-percentile brightness {b:.2f}, typical {tb:.2f}"),
        "low_information": (scan.entropy, low_info_ratio, "histogram entropy {v:.2f}, typical {t:.2f}"),
    }
    for issue, (m, ratio, words) in measures.items():
        typical = float(np.median(m[ok]))
        if typical <= 1e-6:
            rules[issue] = (np.nan, "skipped: the typical image has none of this measure")
            continue
        score = np.clip(1 - m / typical, 0, 1)
        cut = 1 - ratio
        spread = 1.4826 * float(np.median(np.abs(m[ok] - typical)))  # robust standard deviation (MAD)
        unusual = m < typical - SPREADS * spread
        for g in np.flatnonzero(ok & (score >= cut) & unusual):
            detail = words.format(v=m[g], t=typical, b=1 - m[g], tb=1 - typical)
            out.add(scan, g, issue, float(score[g]), None, detail)
        rules[issue] = (cut, f"measure < {ratio:g} x typical ({typical:.3g}) and < typical - {SPREADS:g} x its "
                             f"robust spread ({spread:.3g})")
    return rules
