"""tokensmith-charbench: CharBench (Uzan & Pinter, AAAI 2026; arXiv 2508.02591)."""
