"""tokenizer-report: a composition of the installed tokenizer evaluations (README.md)."""
