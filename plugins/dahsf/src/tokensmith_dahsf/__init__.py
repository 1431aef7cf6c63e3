"""DAHSF: digestion in hierarchical symbolic forests (Kevin You, arXiv 2412.14054) — text
normalization and semantic parsing by layer-by-layer longest match over rule tables."""

from .forest import DataWord, Digestion, Forest, Parse, SymbolNode
from .paraphrase import Example, count, paraphrases, phrasebook, product_forest, realize, sample
from .stage import DAHSFStage, load_forest, shipped_forests

__all__ = [
    "DAHSFStage",
    "DataWord",
    "Digestion",
    "Example",
    "Forest",
    "Parse",
    "SymbolNode",
    "count",
    "load_forest",
    "paraphrases",
    "phrasebook",
    "product_forest",
    "realize",
    "sample",
    "shipped_forests",
]
