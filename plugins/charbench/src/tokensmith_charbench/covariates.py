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

import math
from collections.abc import Sequence
from typing import Any

from .tasks import INDEXING, Item

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


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; ``None`` when fewer than 3 points or either side is constant (undefined)."""
    import numpy as np

    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 3:
        return None
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    da, db = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(da @ da) * float(db @ db))
    if denominator == 0.0:
        return None
    return max(-1.0, min(1.0, float(da @ db) / denominator))


def point_biserial(values: Sequence[float], correct: Sequence[bool]) -> float | None:
    """The point-biserial correlation of a covariate with a 0/1 outcome (Pearson's r with the
    outcome coded 0/1, as the paper computes it)."""
    return pearson(values, [1.0 if c else 0.0 for c in correct])


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))
