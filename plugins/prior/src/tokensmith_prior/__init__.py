"""tokensmith-prior: PRIOR token weights (Chen, Peng, Zhang, Ji, 2025, arXiv 2505.08971).

Nothing heavy is imported here; torch is imported inside the functions that need it.
"""

from __future__ import annotations

from .weights import PRIORWeights, prior_weights

__all__ = ["PRIORWeights", "prior_weights"]
