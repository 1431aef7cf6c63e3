"""Hook implementations of tokensmith-dynamic-tokenization (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_dynamic_tokenization"


@hookimpl
def tokensmith_register_embeddings():
    return [
        Component(
            "subtoken-mean",
            f"{_M}.initializers:SubtokenMean",
            "a new token's embedding is the mean of its sub-tokens' (input and output rows); the "
            "default initializer of dynamic tokenization, and a transplant onto a new tokenizer",
        )
    ]


@hookimpl
def tokensmith_register_evaluations():
    return [
        Component(
            "dynamic-tokenization",
            f"{_M}.evaluation:DynamicTokenizationEval",
            "dynamic tokenization (Feher et al. 2411.18553): batch-level BPE merges inside pre-token "
            "boundaries; bits per byte vs sequence-length reduction over the number of merges",
            requires=("causal_lm",),
        )
    ]
