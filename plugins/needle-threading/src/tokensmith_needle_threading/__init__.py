"""tokensmith-needle-threading: Needle Threading (Roberts, Han, Albanie; ICLR 2025; arXiv 2411.05000)."""
