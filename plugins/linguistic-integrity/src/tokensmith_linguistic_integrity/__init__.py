"""tokensmith-linguistic-integrity: %TR and %Pure of a tokenizer (Bayram et al., arXiv 2502.07057)."""
