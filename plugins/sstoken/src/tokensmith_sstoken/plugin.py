"""Hook implementations of tokensmith-sstoken (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_sstoken"


@hookimpl
def tokensmith_register_objectives():
    return [Component("sstoken", f"{_M}.objectives:SSToken",
                      "mask: ssToken's top ceil(rho*R) response tokens by gamma*minmax(REL vs a history "
                      "model, the frozen base or its EMA) + (1-gamma)*last-layer attention to the prompt"),
            Component("sstoken-random", f"{_M}.benchmark:RandomRatio",
                      "mask: a random ceil(rho*R) of each sample's response tokens (ssToken's control)")]


@hookimpl
def tokensmith_register_recipes():
    return [Component("sstoken", f"{_M}.objectives:SSTokenRecipe",
                      "ssToken's run setup: eager attention with output_attentions, the step counter of the "
                      "attention-only warm-up, the EMA history's update (saved with each checkpoint)")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("sstoken", f"{_M}.benchmark:SSTokenBenchmark",
                      "full-token SFT vs random-rho vs ssToken (and REL-only / attention-only) through the "
                      "recipe runner on natural-instructions: held-out response loss and token accuracy")]
