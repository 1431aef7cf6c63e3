"""tokensmith-dynamic-tokenization: batch-level BPE merges with on-the-fly embeddings.

Feher, Vulić & Minixhofer, "Retrofitting (Large) Language Models with Dynamic Tokenization"
(ACL 2025, arXiv 2411.18553).
"""

from .dynamic_bpe import BOUNDARIES, BatchMerger, DynamicBatch, DynamicBPE, DynamicToken, MergeCurve

__all__ = ["BOUNDARIES", "BatchMerger", "DynamicBPE", "DynamicBatch", "DynamicToken", "MergeCurve"]
