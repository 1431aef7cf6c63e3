"""tokensmith-glyph-embeddings: frozen visual Unicode embeddings (Bochkov, arXiv 2507.04886).

Nothing heavy is imported here; the modules import torch when their functions run."""
