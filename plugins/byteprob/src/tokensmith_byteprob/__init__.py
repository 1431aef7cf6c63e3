"""tokensmith-byteprob: exact next-byte probabilities of tokenized LMs.

Phan et al., "Exact Byte-Level Probabilities from Tokenized Language Models for
FIM-Tasks and Model Ensembles" (ICLR 2025, arXiv 2410.09303).
"""

from .cover_set import MEANINGS, ByteProbLM, CoverSetTooLargeError, ZeroProbabilityError

__all__ = ["MEANINGS", "ByteProbLM", "CoverSetTooLargeError", "ZeroProbabilityError"]
