"""tokensmith-lexinvariant: Lexinvariant Language Models (Huang et al., NeurIPS 2023, arXiv 2305.16349)."""
