"""Hook implementations of tokensmith-sstoken (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_sstoken"


@hookimpl
def tokensmith_register_objectives():
    return [Component("sstoken", f"{_M}.objectives:SSToken",
                      "mask: ssToken's top ceil(rho*R) response tokens by gamma*minmax(REL vs a frozen "
                      "history model) + (1-gamma)*last-layer attention to the prompt")]


@hookimpl
def tokensmith_register_recipes():
    return [Component("sstoken", f"{_M}.objectives:SSTokenRecipe",
                      "ssToken's run setup: eager attention with output_attentions, the step counter of the "
                      "attention-only warm-up")]
