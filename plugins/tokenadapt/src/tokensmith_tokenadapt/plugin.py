"""Hook implementations of tokensmith-tokenadapt (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_tokenadapt"


@hookimpl
def tokensmith_register_embeddings():
    return [Component("tokenadapt", f"{_M}.provider:TokenAdapt",
                      "TokenAdapt transplant: shared rows copied, the others the local+global hybrid "
                      "(or local/global/FVT)")]


@hookimpl
def tokensmith_register_tokenizer_trainers():
    return [Component("supertoken-bpe", f"{_M}.supertokens:SupertokenBPE",
                      "TokenAdapt supertokens: byte-level BPE trained on randomly chunked text, so tokens "
                      "span words; no pre-tokenization at inference")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("transplant", f"{_M}.benchmark:TransplantBenchmark",
                      "SmolLM2 onto a licence-text BPE: bits/byte per initialiser vs the original, "
                      "before/after an embedding fine-tune (eval_at: a learning curve during it)"),
            Component("supertokens", f"{_M}.supertoken_bench:SupertokenBenchmark",
                      "supertoken BPE vs byte-level BPE of the same vocabulary: held-out bytes/token, "
                      "tokens/char, multi-word tokens")]
