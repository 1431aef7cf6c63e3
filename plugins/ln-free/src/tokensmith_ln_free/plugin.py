"""Hook implementations of tokensmith-ln-free (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_ln_free"


@hookimpl
def tokensmith_register_normalizations():
    return [Component("ln-free", f"{_M}.surgery:LNFreeNormalization",
                      "replace LayerNorm/RMSNorm by fake norms with a frozen σ̄ (live, fake, or removed "
                      "as fixed linear maps); arXiv 2507.02559")]


@hookimpl
def tokensmith_register_recipes():
    return [Component("ln-free", f"{_M}.finetune:LNFreeRecipe",
                      "fine-tune while fake norms are frozen one by one on the paper's schedule (σ̄ averaged "
                      "over ranks); arXiv 2507.02559")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("ln-free", f"{_M}.benchmark:LNFreeBenchmark",
                      "LN-free vs vanilla fine-tune of SmolLM2's top blocks through the recipe runner; "
                      "exact direct logit attribution")]


@hookimpl
def tokensmith_register_demos():
    return [Component("ln-free", f"{_M}.demo:LNFreeDemo",
                      "freeze SmolLM2's final norm on one copy: loss change, exact direct logit attribution",
                      requires=("causal_lm",))]
