"""Batch-level BPE merging inside pre-token boundaries: the tokenizer half of dynamic tokenization.

Feher, Vulić & Minixhofer, "Retrofitting (Large) Language Models with Dynamic Tokenization"
(ACL 2025, arXiv 2411.18553), section 3.1 ("dynamic BPE"): tokenize a batch with the model's own
tokenizer, then repeatedly count the adjacent token pairs of the whole batch that lie inside an
allowed boundary and merge the most frequent pair everywhere; the number of merges is given, or
chosen to reach a target reduction of the batch's sequence length (the paper's
merges -> sequence-length curve). Pure Python: nothing here imports torch.

Tokens are byte strings: a merged token is the concatenation of the bytes of the two tokens it
joins, so the tokens of a text always concatenate to its UTF-8 bytes (lossless). Where a merge
may happen is a property of *positions* in the text, not of token strings: every boundary type
is a set of byte offsets no merged token may straddle, plus the paper's rule on whitespace
(a merged token has whitespace only at its start, unless it is all whitespace).
"""

from __future__ import annotations

import heapq
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from tokensmith import ConfigError, IncompatibleComponentsError, InputError, require_ids, require_texts

#: The paper's boundary types (its ``tokenizer_boundary``):
#: ``pretokens`` the model's own pre-tokenizer; ``word`` whitespace-separated words;
#: ``word_hyphen`` words, but a word does not absorb the punctuation after it unless it is a
#: hyphen; ``sentence`` anything but the whitespace rule (the whole text is one unit).
BOUNDARIES = ("pretokens", "word", "word_hyphen", "sentence")
Boundary = Literal["pretokens", "word", "word_hyphen", "sentence"]


def _is_punctuation(ch: str) -> bool:
    # Unicode punctuation and symbols: the paper lists ASCII .,!?;:()-"'\/`$%&*+<=>@[]^_{|}~
    return unicodedata.category(ch)[0] in "PS"


@attrs.frozen
class DynamicToken:
    """One token of a dynamically tokenized text.

    ``bytes`` is what it contributes to the text, ``span`` its byte range in the text's UTF-8,
    ``pieces`` the ids of the model's own tokens it joins at this position (one for an
    unmerged token), and ``id`` its id in the model's vocabulary when one token there has
    exactly these bytes (``None`` for a new token, which needs an embedding from an
    initializer)."""

    bytes: bytes
    span: tuple[int, int]
    pieces: tuple[int, ...]
    id: int | None

    @property
    def merged(self) -> bool:
        return len(self.pieces) > 1


@attrs.frozen
class DynamicBatch:
    """A batch after ``len(merges)`` batch-level merges.

    ``rows[i]`` are the tokens of text ``i``; ``base_lengths[i]`` its length under the model's
    tokenizer; ``merges`` the merged pairs in the order applied; ``new_tokens`` the tokens of
    the batch that the model's vocabulary lacks, in the order they were made, with
    ``pieces_of[token]`` the model tokens each was first merged from (what an embedding
    initializer reads)."""

    rows: tuple[tuple[DynamicToken, ...], ...]
    base_lengths: tuple[int, ...]
    merges: tuple[tuple[bytes, bytes], ...]
    new_tokens: tuple[bytes, ...]
    pieces_of: Mapping[bytes, tuple[int, ...]]
    boundary: str
    _positions: dict[bytes, int] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_positions", {t: i for i, t in enumerate(self.new_tokens)})

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(len(row) for row in self.rows)

    @property
    def total_length(self) -> int:
        return sum(self.lengths)

    @property
    def base_total(self) -> int:
        return sum(self.base_lengths)

    @property
    def reduction(self) -> float:
        """The fraction by which the batch's total sequence length fell: ``1 - merged / base``."""
        return 1.0 - self.total_length / self.base_total

    def new_index(self, token: DynamicToken) -> int | None:
        """The position of ``token`` in :attr:`new_tokens` (``None`` for a vocabulary token)."""
        return None if token.id is not None else self._positions[token.bytes]


@attrs.frozen
class MergeCurve:
    """The paper's merges -> sequence-length mapping (``get_merges2seqlen_for_dataset``):
    ``mean_length[m]`` is the mean tokens per text after ``m`` merges in each batch, averaged
    over the batches it was measured on (a batch that ran out of pairs keeps its last length)."""

    mean_length: tuple[float, ...]

    @property
    def base(self) -> float:
        return self.mean_length[0]

    def reduction(self, merges: int) -> float:
        m = min(merges, len(self.mean_length) - 1)
        return 1.0 - self.mean_length[m] / self.base

    def merges_for(self, target_reduction: float) -> int | None:
        """The fewest merges per batch whose mean length is at least ``target_reduction`` below
        the base length; ``None`` when the curve never gets there."""
        for m, length in enumerate(self.mean_length):
            if length <= (1.0 - target_reduction) * self.base:
                return m
        return None

    @classmethod
    def average(
        cls, lengths_per_batch: Sequence[Sequence[int]], texts_per_batch: Sequence[int]
    ) -> MergeCurve:
        """From each batch's total length after 0, 1, 2, ... merges and its number of texts."""
        if not lengths_per_batch:
            raise InputError("no batch to average", component="dynamic-bpe merge curve")
        longest = max(len(curve) for curve in lengths_per_batch)
        texts = sum(texts_per_batch)
        mean = tuple(
            sum(curve[min(m, len(curve) - 1)] for curve in lengths_per_batch) / texts for m in range(longest)
        )
        return cls(mean)


class BatchMerger:
    """The state of one batch under dynamic BPE: :meth:`step` applies the next merge.

    Pair statistics are kept incrementally (counts, the positions of every pair, a heap for
    the most frequent), so a merge costs time proportional to the pair's occurrences, not to
    the batch. Ties in frequency are broken by the pair's bytes (the smaller ``(left, right)``
    first), so the merges depend on the batch's texts alone, not on their order.

    ``ids`` (one list per text) gives the model's tokens when they are already known; by
    default each text is encoded with ``tokenizer`` (no special tokens: BOS is the model's
    business, added around the row).
    """

    def __init__(
        self,
        tokenizer: Any,
        texts: Sequence[str],
        *,
        boundary: str = "pretokens",
        component: str = "dynamic-bpe",
        ids: Sequence[Sequence[int]] | None = None,
    ) -> None:
        if boundary not in BOUNDARIES:
            raise ConfigError(
                f"unknown boundary {boundary!r}", component=component, hint="one of " + ", ".join(BOUNDARIES)
            )
        texts = require_texts(texts, component)
        if not texts:
            raise InputError("the batch holds no text", component=component, hint="pass at least one text")
        if ids is not None and len(ids) != len(texts):
            raise InputError(f"{len(ids)} id lists for {len(texts)} texts", component=component)
        self.tokenizer, self.boundary, self.component = tokenizer, boundary, component
        self._vocab_ids = _vocabulary_ids(tokenizer)
        self._sym_bytes: list[bytes] = []
        self._sym_of: dict[bytes, int] = {}
        self._pieces_of: dict[bytes, tuple[int, ...]] = {}
        self._new: list[bytes] = []
        # one node per token, in reading order across the batch (node index order = position order)
        self.sym: list[int] = []
        self.start: list[int] = []
        self.end: list[int] = []
        self.pieces: list[tuple[int, ...]] = []
        self.prev: list[int] = []
        self.next: list[int] = []
        self.row_of: list[int] = []
        self.alive: list[bool] = []
        self._row_first: list[int] = []
        self._forbidden: list[frozenset[int]] = []
        self._space_starts: list[list[int]] = []  # prefix sums: whitespace characters starting before q
        self._space_bytes: list[list[int]] = []  # prefix sums: bytes belonging to whitespace characters
        self.base_lengths: list[int] = []
        for r, text in enumerate(texts):
            row_ids = (
                list(tokenizer.encode(text).ids)
                if ids is None
                else require_ids(ids[r], tokenizer.vocab_size, component)
            )
            self._add_row(r, text, row_ids)
        self.counts: dict[tuple[int, int], int] = {}
        self.where: dict[tuple[int, int], set[int]] = {}
        self._heap: list[tuple[int, bytes, bytes, int, int]] = []
        for i in range(len(self.sym)):
            self._add_pair(i)
        self.merges: list[tuple[bytes, bytes]] = []
        self.total_length = sum(self.base_lengths)
        #: total length after 0, 1, 2, ... merges
        self.lengths: list[int] = [self.total_length]

    # -- building --------------------------------------------------------------------------

    def _intern(self, data: bytes, pieces: tuple[int, ...]) -> int:
        sym = self._sym_of.get(data)
        if sym is None:
            sym = len(self._sym_bytes)
            self._sym_bytes.append(data)
            self._sym_of[data] = sym
            self._pieces_of[data] = pieces
            if data not in self._vocab_ids:
                self._new.append(data)
        return sym

    def _add_row(self, r: int, text: str, ids: list[int]) -> None:
        data = text.encode("utf-8")
        if not ids:
            raise InputError(
                f"text {r} has no tokens (an empty text)",
                component=self.component,
                hint="leave empty texts out of the batch",
            )
        pieces_bytes = []
        for pos, i in enumerate(ids):
            b = self.tokenizer.token_bytes(i)
            if b is None:
                raise InputError(
                    f"text {r} holds the special token {i} at position {pos}",
                    component=self.component,
                    hint="dynamic tokenization merges text tokens only; keep control tokens "
                    "out of the texts (they are added around them)",
                )
            pieces_bytes.append(b)
        if b"".join(pieces_bytes) != data:
            raise IncompatibleComponentsError(
                f"the tokens of text {r} do not concatenate to its bytes under tokenizer "
                f"'{getattr(self.tokenizer, 'name', '?')}' (a normalizer changed it, or it holds a byte "
                "the vocabulary cannot represent)",
                component=self.component,
                hint="dynamic tokenization needs a lossless tokenizer (e.g. a byte-level BPE) and text "
                "it can represent; see tokenizer.unrepresentable_bytes",
            )
        self._forbidden.append(self._boundaries(text, data))
        starts, spaces = [0], [0]
        is_space = [False] * len(data)
        at = 0
        for ch in text:
            width = len(ch.encode("utf-8"))
            if ch.isspace():
                for q in range(at, at + width):
                    is_space[q] = True
            at += width
        char_start = _char_starts(text, len(data))
        for q in range(len(data)):
            starts.append(starts[-1] + (1 if char_start[q] and is_space[q] else 0))
            spaces.append(spaces[-1] + (1 if is_space[q] else 0))
        self._space_starts.append(starts)
        self._space_bytes.append(spaces)
        first = len(self.sym)
        self._row_first.append(first)
        offset = 0
        for k, (i, b) in enumerate(zip(ids, pieces_bytes)):
            node = first + k
            self.sym.append(self._intern(b, (i,)))
            self.start.append(offset)
            offset += len(b)
            self.end.append(offset)
            self.pieces.append((i,))
            self.prev.append(node - 1 if k else -1)
            self.next.append(node + 1 if k + 1 < len(ids) else -1)
            self.row_of.append(r)
            self.alive.append(True)
        self.base_lengths.append(len(ids))

    def _boundaries(self, text: str, data: bytes) -> frozenset[int]:
        """Byte offsets (inside the text) that no merged token may straddle."""
        byte_at = _byte_offsets(text)
        if self.boundary == "pretokens":
            spans = self.tokenizer.pretokenize(text)
            cuts = set()
            for p in spans:
                cuts.add(byte_at[p.span[0]])
                cuts.add(byte_at[p.span[1]])
            return frozenset(c for c in cuts if 0 < c < len(data))
        cuts = set()
        if self.boundary in ("word", "word_hyphen"):
            for k, ch in enumerate(text):
                if k and ch.isspace():
                    cuts.add(byte_at[k])
                if self.boundary == "word_hyphen" and k and ch != "-" and _is_punctuation(ch):
                    before = text[k - 1]
                    if not before.isspace() and not _is_punctuation(before):
                        cuts.add(byte_at[k])
        return frozenset(cuts)

    # -- pair statistics -------------------------------------------------------------------

    def _valid(self, i: int, j: int) -> bool:
        r = self.row_of[i]
        if self.end[i] in self._forbidden[r]:
            return False
        s, e = self.start[i], self.end[j]
        starts, spaces = self._space_starts[r], self._space_bytes[r]
        inner_space = starts[e] - starts[s + 1] > 0
        all_space = spaces[e] - spaces[s] == e - s
        # the paper's whitespace rule: whitespace only at the start of a merged token, except a
        # token that is whitespace only (runs of spaces and newlines still compress)
        return not inner_space or all_space

    def _pair_key(self, i: int) -> tuple[int, int]:
        return self.sym[i], self.sym[self.next[i]]

    def _add_pair(self, i: int) -> None:
        j = self.next[i]
        if j < 0 or not self._valid(i, j):
            return
        key = self._pair_key(i)
        self.where.setdefault(key, set()).add(i)
        count = self.counts.get(key, 0) + 1
        self.counts[key] = count
        heapq.heappush(self._heap, (-count, self._sym_bytes[key[0]], self._sym_bytes[key[1]], *key))

    def _remove_pair(self, i: int) -> None:
        if i < 0 or self.next[i] < 0:
            return
        key = self._pair_key(i)
        at = self.where.get(key)
        if at is None or i not in at:
            return
        at.remove(i)
        count = self.counts[key] - 1
        if count:
            self.counts[key] = count
            heapq.heappush(self._heap, (-count, self._sym_bytes[key[0]], self._sym_bytes[key[1]], *key))
        else:
            del self.counts[key]
            del self.where[key]

    def best_pair(self) -> tuple[int, int] | None:
        """The most frequent valid pair (ties: the smallest ``(left bytes, right bytes)``)."""
        while self._heap:
            neg, _, _, a, b = self._heap[0]
            if self.counts.get((a, b)) == -neg:
                return a, b
            heapq.heappop(self._heap)
        return None

    # -- merging ---------------------------------------------------------------------------

    def step(self) -> bool:
        """Merge the most frequent pair everywhere (left to right, never overlapping); ``False``
        when no pair is left (the paper's early exit)."""
        pair = self.best_pair()
        if pair is None:
            return False
        a, b = pair
        left, right = self._sym_bytes[a], self._sym_bytes[b]
        merged_sym = None
        done = 0
        for i in sorted(self.where[pair]):
            j = self.next[i]
            # an occurrence consumed by the previous one ("a a a" merging "a a") is gone
            if (
                not self.alive[i]
                or j < 0
                or self.sym[i] != a
                or self.sym[j] != b
                or i not in self.where.get(pair, ())
            ):
                continue
            self._remove_pair(self.prev[i])
            self._remove_pair(j)
            self._remove_pair(i)
            pieces = self.pieces[i] + self.pieces[j]
            if merged_sym is None:
                merged_sym = self._intern(left + right, pieces)
            self.sym[i] = merged_sym
            self.end[i] = self.end[j]
            self.pieces[i] = pieces
            self.next[i] = self.next[j]
            if self.next[j] >= 0:
                self.prev[self.next[j]] = i
            self.alive[j] = False
            if self.prev[i] >= 0:
                self._add_pair(self.prev[i])
            self._add_pair(i)
            done += 1
        self.merges.append((left, right))
        self.total_length -= done
        self.lengths.append(self.total_length)
        return True

    def run(self, merges: int | None = None, *, target_reduction: float | None = None) -> int:
        """Apply up to ``merges`` merges, stopping once the batch's total length is at least
        ``target_reduction`` below its base length; returns the merges applied by this call."""
        goal = None if target_reduction is None else (1.0 - target_reduction) * self.lengths[0]
        applied = 0
        while merges is None or applied < merges:
            if goal is not None and self.total_length <= goal:
                break
            if not self.step():
                break
            applied += 1
        return applied

    def batch(self) -> DynamicBatch:
        """The batch as it stands now."""
        rows = []
        for first in self._row_first:
            row, node = [], first
            while node >= 0:
                data = self._sym_bytes[self.sym[node]]
                row.append(
                    DynamicToken(
                        data, (self.start[node], self.end[node]), self.pieces[node], self._vocab_ids.get(data)
                    )
                )
                node = self.next[node]
            rows.append(tuple(row))
        used = {t.bytes for row in rows for t in row if t.id is None}
        new = tuple(t for t in self._new if t in used)
        return DynamicBatch(
            tuple(rows),
            tuple(self.base_lengths),
            tuple(self.merges),
            new,
            {t: self._pieces_of[t] for t in new},
            self.boundary,
        )


def _vocabulary_ids(tokenizer: Any) -> dict[bytes, int]:
    """Bytes -> the smallest id of a (non-special) vocabulary token with exactly those bytes."""
    out: dict[bytes, int] = {}
    for i, b in enumerate(tokenizer.byte_table):
        if b is not None and b not in out:
            out[b] = i
    return out


def _byte_offsets(text: str) -> list[int]:
    """``out[k]`` is the UTF-8 byte offset of character ``k`` (``out[len(text)]`` the length)."""
    out, at = [0], 0
    for ch in text:
        at += len(ch.encode("utf-8"))
        out.append(at)
    return out


def _char_starts(text: str, n: int) -> list[bool]:
    starts = [False] * n
    for q in _byte_offsets(text)[:-1]:
        starts[q] = True
    return starts


@attrs.define
class DynamicBPE:
    """Dynamic tokenization of a batch (arXiv 2411.18553, section 3.1): the model's tokens,
    then batch-level BPE merges inside ``boundary``, ``merges`` of them or as many as reach
    ``target_reduction`` of the batch's sequence length (whichever comes first)."""

    name = "dynamic-bpe"
    boundary: Boundary = attrs.field(
        default="pretokens",
        validator=attrs.validators.in_(BOUNDARIES),
        metadata={
            "doc": "where merges stop: pretokens (the model's pre-tokenizer), word, word_hyphen, sentence"
        },
    )
    merges: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.ge(0))
        ),
        metadata={"doc": "merges per batch (at most, with target_reduction); None: until the target"},
    )
    target_reduction: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            attrs.validators.and_(
                attrs.validators.instance_of((int, float)), attrs.validators.ge(0), attrs.validators.lt(1)
            )
        ),
        metadata={"doc": "stop once the batch's total length fell by this fraction, in [0, 1)"},
    )

    def __attrs_post_init__(self) -> None:
        if self.merges is None and self.target_reduction is None:
            raise ConfigError(
                "give merges, target_reduction or both",
                component=self.name,
                hint="e.g. merges = 100, or target_reduction = 0.1 (10% shorter sequences)",
            )

    def tokenize_batch(self, tokenizer: Any, texts: Sequence[str]) -> DynamicBatch:
        merger = BatchMerger(tokenizer, texts, boundary=self.boundary, component=self.name)
        merger.run(self.merges, target_reduction=self.target_reduction)
        return merger.batch()
