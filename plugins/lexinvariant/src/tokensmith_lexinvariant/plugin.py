"""Hook implementations of tokensmith-lexinvariant (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_lexinvariant"


@hookimpl
def tokensmith_register_embeddings():
    return [
        Component("lexinvariant", f"{_M}.embedding:Lexinvariant",
                  "Lexinvariant LM (Huang et al. 2023): a fresh N(0, sigma^2) embedding table per sequence, "
                  "output logits scored against the same table"),
        Component("semi-lexinvariant", f"{_M}.embedding:SemiLexinvariant",
                  "semi-lexinvariant regulariser: with probability p a training sequence uses a fresh random "
                  "table (input and output) instead of the learned embeddings"),
    ]


@hookimpl
def tokensmith_register_recipes():
    return [
        Component("lexinvariant", f"{_M}.embedding:LexinvariantRecipe",
                  "train a causal LM lexinvariantly: installs the 'lexinvariant' embedding before training"),
        Component("semi-lexinvariant", f"{_M}.embedding:SemiLexinvariantRecipe",
                  "ordinary training with the semi-lexinvariant regulariser (probability p per sequence)"),
    ]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("lexinvariant", f"{_M}.benchmark:LexinvariantBenchmark",
                      "tiny byte-level Llama from scratch, lexinvariant vs standard (recipe runner): "
                      "loss per context position, on plain and substitution-ciphered text")]
