"""tokensmith-awrs: Adaptive Weighted Rejection Sampling (Lipkin et al., arXiv 2504.05410)."""
