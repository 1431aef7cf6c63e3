"""LayerNorm / RMSNorm removal by fine-tuning (Heimersheim 2024; Baroni et al. 2025, arXiv 2507.02559).

``import tokensmith_ln_free`` imports no torch; the modules below do when used.
"""

from .surgery import (
    DEFAULT_CALIBRATION_TEXTS,
    LNFreeNormalization,
    NonFinite,
    calibrate,
    export,
    fake_norms,
    first_non_finite,
    freeze,
)

__all__ = ["DEFAULT_CALIBRATION_TEXTS", "LNFreeNormalization", "NonFinite", "calibrate", "export",
           "fake_norms", "first_non_finite", "freeze"]
