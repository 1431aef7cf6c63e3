"""tokensmith-byteprob: exact next-byte probabilities of tokenized LMs.

Phan et al., "Exact Byte-Level Probabilities from Tokenized Language Models for
FIM-Tasks and Model Ensembles" (ICLR 2025, arXiv 2410.09303).
"""

from .cover_set import (
    MEANINGS,
    TOLERANCE,
    ByteProbLM,
    CoverSetTooLargeError,
    SpecialTokenTextError,
    ZeroProbabilityError,
)

__all__ = ["MEANINGS", "TOLERANCE", "ByteProbLM", "CoverSetTooLargeError", "SpecialTokenTextError",
           "ZeroProbabilityError"]
