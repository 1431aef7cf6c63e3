"""tokensmith-sstoken: ssToken token selection for SFT (Qin et al., ICLR 2026, arXiv 2510.18250).

Nothing heavy is imported here; torch is imported inside the functions that need it.
"""

from __future__ import annotations

from .objectives import SSToken, SSTokenRecipe
from .select import sstoken_scores, sstoken_select

__all__ = ["SSToken", "SSTokenRecipe", "sstoken_scores", "sstoken_select"]
