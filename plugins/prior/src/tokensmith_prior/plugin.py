"""Hook implementations of tokensmith-prior (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_prior"


@hookimpl
def tokensmith_register_objectives():
    return [Component("prior", f"{_M}.weights:PRIORWeights",
                      "weights: PRIOR's (1 - P_ref(token))^alpha from a frozen text-only reference model, "
                      "normalised to mean 1 over each caption's tokens")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("prior", f"{_M}.benchmark:PRIORBenchmark",
                      "8x8 digits captioning (tiny vision prefix on a tiny Llama, recipe runner): PRIOR "
                      "weights by token class and held-out digit naming, PRIOR-weighted vs plain NTP")]
