"""tokensmith-text2token: Text2Token (An et al., 2025, arXiv 2510.10224), unsupervised sentence
embeddings trained by token target prediction. Nothing heavy is imported here."""
