"""Hook implementations of tokensmith-kl3m (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_kl3m"


@hookimpl
def tokensmith_register_tokenizer_trainers():
    return [
        Component(
            "kl3m-bpe",
            f"{_M}.trainers:KL3MBPE",
            "KL3M domain byte-level BPE (2503.17247): NFKC, custom tokens as single ids, "
            "CLM+MLM special tokens, padded to a power of two",
        ),
        Component(
            "kl3m-char",
            f"{_M}.trainers:KL3MChar",
            "KL3M character BPE (2503.17247): 4k/8k/16k, tokens of at most 3 (4 for 16k) symbols",
        ),
    ]


@hookimpl
def tokensmith_register_evaluations():
    return [
        Component(
            "domain-terms",
            f"{_M}.evaluation:DomainTerms",
            "tokens per domain term and the share kept whole (a legal term list, or your own file)",
        ),
        Component(
            "kl3m",
            f"{_M}.evaluation:KL3MReport",
            "KL3M report: legal BPE vs the target and a general BPE (tokens/char, /term); "
            "char-tokenizer boundary stability under OCR edits",
        ),
    ]
