"""Hook implementations of tokensmith-powernorm (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_powernorm"


@hookimpl
def tokensmith_register_normalizations():
    return [
        Component("powernorm", f"{_M}.surgery:PowerNormProvider",
                  "PowerNorm (Shen et al. 2020): masked running quadratic mean, approximate backward"),
        Component("batchnorm", f"{_M}.surgery:BatchNormProvider",
                  "masked BatchNorm over non-pad tokens (PowerNorm paper's comparison)"),
    ]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("powernorm", f"{_M}.benchmark:PowerNormBenchmark",
                      "LayerNorm vs masked BatchNorm vs PowerNorm, a tiny GPT-2 trained from scratch through "
                      "the recipe runner: validation bits/byte and training-time ratios")]


@hookimpl
def tokensmith_register_demos():
    return [Component("powernorm", f"{_M}.demo:PowerNormDemo",
                      "PowerNorm surgery report on SmolLM2's structure + tiny-model LN/BN/PN results")]
