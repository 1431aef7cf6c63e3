"""Hook implementations of tokensmith-charbench (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_charbench"


@hookimpl
def tokensmith_register_evaluations():
    return [
        Component(
            "charbench",
            f"{_M}.evaluation:CharBench",
            "CharBench (2508.02591): count/index characters in words of 4-10 letters, greedy answers "
            "parsed with int(); accuracy per task and length, covariate-correctness correlations",
        ),
        Component(
            "charbench-covariates",
            f"{_M}.evaluation:CharBenchCovariates",
            "CharBench's tokenizer covariates over the generated items: tokens per word, length of the "
            "token holding the queried character, characters per token",
        ),
    ]
