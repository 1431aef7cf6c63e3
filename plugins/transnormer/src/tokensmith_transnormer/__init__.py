"""TransNormerLLM (Qin et al., 2023, arXiv 2307.14995) for tokensmith: SRMSNorm, gated linear
attention with decay, Lightning Attention in pure PyTorch, and a constant-memory recurrent LM.

Importing this package does not import torch; the modules below do.
"""

from .config import TransNormerConfig

__all__ = ["TransNormerConfig"]
