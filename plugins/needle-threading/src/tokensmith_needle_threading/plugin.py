"""Hook implementations of tokensmith-needle-threading (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_needle_threading"


@hookimpl
def tokensmith_register_evaluations():
    return [
        Component(
            "needle-threading",
            f"{_M}.evaluation:NeedleThreading",
            "Needle Threading (2411.05000): UUID key-value haystacks, six retrieval tasks at context "
            "lengths in characters and needle depths, greedy answers scored by exact match",
        ),
        Component(
            "uuid-chars-per-token",
            f"{_M}.evaluation:UUIDCharsPerToken",
            "characters per token of a tokenizer on UUID key-value JSON, bare UUIDs, hex and digits",
        ),
    ]
