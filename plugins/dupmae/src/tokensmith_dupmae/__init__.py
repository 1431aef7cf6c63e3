"""tokensmith-dupmae: DupMAE / RetroMAE v2 (Xiao & Liu, 2022, arXiv 2211.08769).

Nothing heavy is imported here: the model and the benchmark import torch and transformers in
their own modules (``tokensmith_dupmae.model``, ``.benchmark``).
"""

from __future__ import annotations

from .objectives import DupMAELoss, bow_loss, bow_targets, dupmae_terms
from .recipe import DupMAERecipe

__all__ = ["DupMAELoss", "DupMAERecipe", "bow_loss", "bow_targets", "dupmae_terms"]
