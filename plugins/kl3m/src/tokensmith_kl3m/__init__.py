"""tokensmith-kl3m: the KL3M tokenizers (Bommarito, Katz, Bommarito, "KL3M Tokenizers: A Family of
Domain-Specific and Character-Level Tokenizers for Legal, Financial, and Preprocessing
Applications", arXiv 2503.17247).

Nothing heavy is imported here: ``tokenizers`` is imported when a trainer trains.
"""

from __future__ import annotations

__all__ = ["train_legal_bpe", "load_tokenizer"]


def __getattr__(name: str):
    if name in __all__:
        from . import recipes

        return getattr(recipes, name)
    raise AttributeError(f"module 'tokensmith_kl3m' has no attribute {name!r}")
