"""Token boundaries against gold morpheme boundaries: the segmentation side of linguistic
integrity (Bayram et al., arXiv 2502.07057, score tokens against morphology; here against the
turkish-treebanks gold analysis instead of an analyser's).

The treebank (CoNLL-U) splits a word into *inflectional groups* at every derivational
boundary: *katıldığı* is the two words ``katıl`` + ``dığı``, the second without a lemma, the
first followed by no space. Those splits are the gold boundaries. Inflectional suffixes are
not split (*kemer|ler|i|ni* is one word), so a tokenizer that cuts at a true inflectional
boundary is counted a false positive: **recall** (the share of gold boundaries a tokenizer also
cuts at) is the informative number; precision is a lower bound.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs


@attrs.frozen
class GoldWord:
    """A word of letters in the sentence text: ``span`` (start, end) and the gold morpheme
    boundaries strictly inside it (character offsets in the text)."""

    span: tuple[int, int]
    boundaries: frozenset[int]


@attrs.frozen
class Alignment:
    words: tuple[GoldWord, ...]
    skipped: int  # chains that are not letters only (numbers, apostrophes, punctuation)


def align_forms(text: str, forms: Sequence[str]) -> list[tuple[int, int]] | None:
    """The span of each form in ``text``, in order, separated by nothing but whitespace;
    ``None`` when the forms do not spell the text that way."""
    spans = []
    at = 0
    for form in forms:
        while at < len(text) and text[at].isspace():
            at += 1
        if not form or not text.startswith(form, at):
            return None
        spans.append((at, at + len(form)))
        at += len(form)
    if text[at:].strip():
        return None
    return spans


def gold_words(text: str, forms: Sequence[str], lemmas: Sequence[str | None]) -> Alignment | None:
    """The gold words of one treebank sentence: a form with a lemma starts a word, each form
    right after it (no space) without a lemma is one more inflectional group of it. ``None``
    when the forms cannot be aligned with the text."""
    spans = align_forms(text, forms)
    if spans is None or len(lemmas) != len(forms):
        return None
    chains: list[list[tuple[int, int]]] = []
    for i, span in enumerate(spans):
        continues = i > 0 and lemmas[i] is None and spans[i - 1][1] == span[0] and chains
        if continues:
            chains[-1].append(span)
        else:
            chains.append([span])
    words, skipped = [], 0
    for chain in chains:
        start, end = chain[0][0], chain[-1][1]
        if not text[start:end].isalpha():
            skipped += 1
            continue
        words.append(GoldWord((start, end), frozenset(s for s, _ in chain[1:])))
    return Alignment(tuple(words), skipped)


def token_boundaries(offsets: Iterable[tuple[int, int]]) -> set[int]:
    """Every character position where a token starts or ends."""
    cuts: set[int] = set()
    for start, end in offsets:
        if end > start:
            cuts.add(start)
            cuts.add(end)
    return cuts


@attrs.define
class BoundaryScore:
    """Counts of predicted word-internal boundaries against gold ones, summed over words."""

    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    words: int = 0

    def add(self, word: GoldWord, cuts: set[int]) -> None:
        start, end = word.span
        predicted = {p for p in cuts if start < p < end}
        hit = len(predicted & word.boundaries)
        self.true_positive += hit
        self.false_positive += len(predicted) - hit
        self.false_negative += len(word.boundaries) - hit
        self.words += 1

    @property
    def gold(self) -> int:
        return self.true_positive + self.false_negative

    def metrics(self) -> dict[str, Any]:
        predicted = self.true_positive + self.false_positive
        precision = self.true_positive / predicted if predicted else 0.0
        recall = self.true_positive / self.gold if self.gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f1": f1,
                "gold_boundaries": self.gold, "predicted_boundaries": predicted, "boundary_words": self.words}
