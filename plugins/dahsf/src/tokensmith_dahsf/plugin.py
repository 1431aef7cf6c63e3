"""Hook implementations of tokensmith-dahsf (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_dahsf"


@hookimpl
def tokensmith_register_tokenizer_stages():
    return [
        Component(
            "dahsf",
            f"{_M}.stage:DAHSFStage",
            "DAHSF (2412.14054): digest text in a symbolic forest (TOML rule tables) to the canonical "
            "sentence of its command; parse() gives template + slots",
        )
    ]


@hookimpl
def tokensmith_register_benchmarks():
    return [
        Component(
            "dahsf",
            f"{_M}.benchmark:DAHSFBenchmark",
            "forest digestion vs SmolLM2 zero-shot parsing of the same commands: accuracy, time and "
            "memory ratios; structure size vs the phrasebook of every sentence",
        )
    ]
