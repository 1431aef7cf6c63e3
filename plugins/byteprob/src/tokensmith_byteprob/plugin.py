"""Hook implementations of tokensmith-byteprob (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_byteprob"


@hookimpl
def tokensmith_register_decoders():
    return [Component("byteprob", f"{_M}.decoding:ByteDecoder",
                      "exact byte-level decoding (Phan et al. 2410.09303): prompts may end mid-token; "
                      "meaning canonical-local|canonical-global|marginal, certified tolerance, exact "
                      "prefetching of forwards, contexts, temperature/top-p on bytes",
                      requires=("byte_view", "causal_lm"))]


@hookimpl
def tokensmith_register_demos():
    return [Component("byteprob", f"{_M}.demo:ByteProbDemo",
                      "mid-word prompts: token-level vs token healing vs exact byte probabilities")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("byteprob", f"{_M}.benchmark:ByteProbBenchmark",
                      "exactness vs brute force, forward calls/rows per byte and bytes/s vs token-level "
                      "greedy (tolerance, prefetch), certified bound vs true error, memory, mid-word prompts,"
                      " a two-vocabulary ensemble")]
