"""CharBench's covariates of an item under a tokenizer, and the correlations with correctness.

Uzan & Pinter (arXiv 2508.02591), section 5 (analysis): per (model, word) the word length,
the gold answer, gold / length, the number of tokens, the compression rate (characters per
token) and, for the indexing tasks, ``target_token_length``: the length of the token that
holds the queried position (the gold index). The word is tokenized alone, without special
tokens, as the paper's ``tokenize_results.py`` does. Correlations with correctness are
point-biserial (Pearson's r of a covariate with the 0/1 outcome: what the paper reports)
and Spearman's rho (r of average ranks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tokensmith import average_ranks, pearson, spearman

from .tasks import INDEXING, Item

#: the correlations are the core's (tokensmith.pearson, spearman, average_ranks), re-exported here
__all__ = ["COVARIATES", "average_ranks", "covariates", "pearson", "point_biserial", "spearman",
           "token_spans"]

COVARIATES = (
    "word_length",
    "gold_truth",
    "gold_truth_over_length",
    "number_of_tokens",
    "compression_rate",
    "target_token_length",
)


def token_spans(tokenizer: Any, word: str, component: str) -> list[tuple[int, int]]:
    """The character span of each token of ``word`` (tokenized alone), from the byte view: a
    CharBench word is ASCII, so a character is a byte. The bytes the tokenizer puts before
    every text (SentencePiece's "▁", ``prefix_bytes``) belong to no character, as the paper
    strips Mistral's "▁" (a token of the marker alone gets an empty span). The token bytes
    must add up to the word's; a tokenizer where they do not is an
    :class:`~tokensmith.InputError` naming it (every covariate would be wrong otherwise)."""
    from tokensmith import InputError

    ids = tokenizer.encode(word).ids
    sizes = [len(tokenizer.token_bytes(i) or b"") for i in ids]
    skip = len(tokenizer.prefix_bytes)
    if not ids or sum(sizes) != skip + len(word):
        raise InputError(
            f"the {len(ids)} tokens of {word!r} spell {sum(sizes)} bytes, not the word's "
            f"{len(word)}{f' after {skip} prefix bytes' if skip else ''}",
            component=component,
            hint=f"tokenizer '{tokenizer.name}' has no byte view CharBench can measure spans with",
        )
    spans, at = [], -skip
    for size in sizes:
        spans.append((max(at, 0), max(at + size, 0)))
        at += size
    return spans


def covariates(item: Item, tokenizer: Any, component: str) -> dict[str, float | int | None]:
    """The paper's covariates of ``item`` under ``tokenizer`` (``target_token_length`` only for
    the indexing tasks, ``None`` otherwise)."""
    spans = token_spans(tokenizer, item.word, component)
    n_tokens = len(spans)
    target = None
    if item.task in INDEXING:
        target = next(end - start for start, end in spans if start <= item.answer < end)
    length = len(item.word)
    return {
        "word_length": length,
        "gold_truth": item.answer,
        "gold_truth_over_length": item.answer / length,
        "number_of_tokens": n_tokens,
        "compression_rate": length / n_tokens,
        "target_token_length": target,
    }


def point_biserial(values: Sequence[float], correct: Sequence[bool]) -> float | None:
    """The point-biserial correlation of a covariate with a 0/1 outcome (Pearson's r with the
    outcome coded 0/1, as the paper computes it)."""
    return pearson(values, [1.0 if c else 0.0 for c in correct])


