"""Hook implementations of tokensmith-zett (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_zett"


@hookimpl
def tokensmith_register_embeddings():
    return [Component("zett", f"{_M}.provider:ZeTT",
                      "ZeTT: a trained hypernetwork predicts input/output embeddings for any tokenizer "
                      "from its tokens' decompositions by the original tokenizer")]


@hookimpl
def tokensmith_register_recipes():
    return [Component("zett", f"{_M}.recipe:ZeTTRecipe",
                      "trains a ZeTT hypernetwork on a frozen LM: MIMICK-style identity warm-up, then a "
                      "sampled UnigramLM tokenizer per batch; saved as a safetensors artifact")]


@hookimpl
def tokensmith_register_objectives():
    return [Component("zett", f"{_M}.recipe:ZeTTLoss",
                      "loss: ZeTT's LM loss over the sampled tokenization + lexical_weight x the "
                      "auxiliary embedding MSE (the MSE alone in identity warm-up steps)")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("zett-transfer", f"{_M}.benchmark:ZeTTTransferBenchmark",
                      "SmolLM2 moved by a trained ZeTT hypernetwork onto its own tokenizer (identity case) "
                      "and onto an 8k licence BPE vs mean and FVT: held-out bits per byte, zero-shot")]
