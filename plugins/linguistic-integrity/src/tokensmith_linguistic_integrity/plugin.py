"""Hook implementations of tokensmith-linguistic-integrity (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_linguistic_integrity"


@hookimpl
def tokensmith_register_evaluations():
    return [Component("linguistic-integrity", f"{_M}.evaluation:LinguisticIntegrity",
                      "%TR and %Pure of a tokenizer's unique tokens (Bayram et al. 2502.07057), token count, "
                      "processing time, boundary P/R/F1 vs the treebank's gold morphology; "
                      "pluggable validator")]
