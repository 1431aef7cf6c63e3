"""What the KL3M evaluations measure (Bommarito et al., arXiv 2503.17247, section "Evaluation"):
tokens per character, tokens per domain term, and the boundary stability of a tokenizer under a
single-character OCR-style substitution (section "Character Tokenizers": "our character
tokenizers maintain stable token boundaries between incorrect and correct forms").

Pure functions of a tokenizer and texts; the evaluations stream the corpora into them.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs

#: single-character confusions of OCR and transcription, from the paper's list ("c"/"e", "5"/"S",
#: "0"/"o", "l"/"1", "§"/"S", "¶"/"P") and the usual glyph look-alikes; each maps one character to
#: one character, both NFKC-stable, so the edited text is as long as the original
CONFUSIONS: dict[str, str] = {}
for _a, _b in (
    ("c", "e"),
    ("5", "S"),
    ("0", "o"),
    ("O", "0"),
    ("l", "1"),
    ("I", "l"),
    ("§", "S"),
    ("¶", "P"),
    ("i", "l"),
    ("u", "v"),
    ("n", "h"),
    ("m", "n"),
    ("a", "o"),
    ("B", "8"),
    ("g", "q"),
    ("t", "f"),
    ("E", "F"),
    ("Z", "2"),
    ("G", "6"),
    ("r", "n"),
):
    CONFUSIONS.setdefault(_a, _b)
    CONFUSIONS.setdefault(_b, _a)


def ids_of(tokenizer: Any, text: str) -> tuple[int, ...]:
    """The ids of ``text`` without BOS/EOS (a tokenizer's own count of the text)."""
    return tuple(tokenizer.encode(text, add_special_tokens=False).ids)


@attrs.frozen
class TermCount:
    """The tokens of one domain term: as in running text (after a space) and on its own."""

    term: str
    spaced: int
    bare: int


def term_counts(tokenizer: Any, terms: Iterable[str]) -> Iterator[TermCount]:
    """Tokens per term: ``" " + term`` (a word inside a sentence, how a byte-level BPE sees it
    there) and the bare term (the start of a text)."""
    for term in terms:
        yield TermCount(term, len(ids_of(tokenizer, " " + term)), len(ids_of(tokenizer, term)))


def term_metrics(counts: Sequence[TermCount]) -> dict[str, float]:
    n = len(counts)
    return {
        "tokens_per_domain_term": sum(c.spaced for c in counts) / n,
        "tokens_per_domain_term_bare": sum(c.bare for c in counts) / n,
        "whole_term_fraction": sum(c.spaced == 1 for c in counts) / n,
        "terms": n,
    }


# -- boundary stability -------------------------------------------------------------------


@attrs.frozen
class Edit:
    """A single-character substitution at ``position`` of ``text`` (a window of a document)."""

    text: str
    position: int
    replacement: str

    @property
    def edited(self) -> str:
        return self.text[: self.position] + self.replacement + self.text[self.position + 1 :]


def ocr_edits(text: str, k: int, rng: random.Random, *, context: int = 80) -> list[Edit]:
    """Up to ``k`` edits of ``text`` (NFKC-normalized first, so offsets agree through the
    tokenizers' NFKC): a position whose character has a confusion, drawn with ``rng``, and the
    window of ``context`` characters each side of it."""
    text = unicodedata.normalize("NFKC", text)
    positions = [i for i, ch in enumerate(text) if ch in CONFUSIONS]
    out = []
    for p in rng.sample(positions, min(k, len(positions))):
        start = max(0, p - context)
        window = text[start : p + context + 1]
        out.append(Edit(window, p - start, CONFUSIONS[text[p]]))
    return out


def boundaries(tokenizer: Any, text: str) -> set[int]:
    """Character offsets where a token ends (the text's end excluded: it is always one)."""
    ends = {end for _, end in tokenizer.encode(text, add_special_tokens=False).offsets}
    ends.discard(len(text))
    ends.discard(0)
    return ends


def distance(boundary: int, position: int) -> int:
    """How far a boundary (between characters ``boundary - 1`` and ``boundary``) lies from the
    edited character at ``position``: 0 at its two edges."""
    return position - boundary if boundary <= position else boundary - (position + 1)


@attrs.define
class Stability:
    """Counts of one tokenizer over many edits, by distance from the edit: boundaries in either
    tokenization (before or after the edit) and in both; and the edits whose boundaries beyond
    ``window`` are all unchanged (none lost, none gained)."""

    window: int
    max_distance: int = 16
    both: list[int] = attrs.field(factory=list)
    either: list[int] = attrs.field(factory=list)
    edits: int = 0
    stable_edits: int = 0

    def __attrs_post_init__(self) -> None:
        self.both = [0] * (self.max_distance + 1)
        self.either = [0] * (self.max_distance + 1)

    def add(self, tokenizer: Any, edit: Edit) -> None:
        before = boundaries(tokenizer, edit.text)
        after = boundaries(tokenizer, edit.edited)
        p = edit.position
        for b in before | after:
            d = min(distance(b, p), self.max_distance)
            self.either[d] += 1
            self.both[d] += b in before and b in after
        moved = {b for b in before ^ after if distance(b, p) > self.window}
        self.edits += 1
        self.stable_edits += not moved

    def outside(self) -> float:
        """The boundaries near the edit but outside the edited span (``window + 1`` to
        ``max_distance - 1`` characters from it) that are unchanged: in both tokenizations, over
        those in either (a boundary lost and one gained both count; the boundaries farther
        away, mostly in other words, are kept by every tokenizer and would only dilute it)."""
        near = slice(self.window + 1, self.max_distance)
        either = sum(self.either[near])
        return sum(self.both[near]) / either if either else 1.0

    def by_distance(self) -> list[tuple[int, float]]:
        return [(d, self.both[d] / self.either[d]) for d in range(self.max_distance + 1) if self.either[d]]
