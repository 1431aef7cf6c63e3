"""Next-byte distributions of a token LM by the Byte-Token Representation lemma.

Phan et al., "Exact Byte-Level Probabilities from Tokenized Language Models"
(ICLR 2025, arXiv 2410.09303), Sec. 3:

* ``cover(x)``: token sequences ``t`` whose bytes before the last token are a
  proper prefix of ``x`` and whose bytes start with ``x``;
* Byte-Token Representation lemma: ``P(x is a prefix) = sum_{t in cover(x)} P(t)``;
* next byte: ``P(b | x) = P(cover(x b)) / P(cover(x))``, computed incrementally:
  (a) covers whose last token already runs past ``x`` vote for their next byte,
  (b) each sequence ending exactly at ``x`` adds ``P(t) * sum_{v starts with b} p(v | t)``.

Two meanings of "exact" (``meaning``):

* ``"canonical"`` (default): the paper's valid encodings. The token process is
  restricted to sequences with ``enc(dec(t)) == t`` by masking invalid next
  tokens and renormalizing (what the paper's code does at inference), so the
  byte process is a proper distribution and the chain rule holds exactly.
* ``"marginal"``: the sum over every tokenization of the bytes, with no mask.
  Exact too, but the number of covers grows exponentially with the length of
  the string, so it is for short strings.

Bounds (both meanings): ``max_covers`` token sequences in a cover set, and
``max_exact_covers`` of them ending on the byte boundary — each of those holds a
next-token distribution (vocabulary x 8 bytes) and costs a forward. Past either,
:class:`CoverSetTooLargeError` (a :class:`~tokensmith.ResourceLimitError`) is
raised before the forward runs. Batched forwards are split so that their
logits stay under :data:`BATCH_LOGITS` floats.

Text ends when the model emits an id without text (EOS, any special token,
padding rows of the output layer): that mass is the :data:`BYTE_EOS` entry.
"""

from __future__ import annotations

import math
from collections import ChainMap
from typing import Any, Literal, get_args

import attrs

from tokensmith import (
    BYTE_EOS,
    ByteLanguageModel,
    ByteState,
    InputError,
    LanguageModel,
    LMState,
    ResourceLimitError,
    TokensmithError,
)

from .byte_view import TokenBytes, ValidEncodings, check_byte_tokenizer, check_vocab

Meaning = Literal["canonical", "marginal"]
MEANINGS: tuple[str, ...] = get_args(Meaning)
#: default bound on the token sequences of one cover set
MAX_COVERS = 200_000
#: default bound on the covers ending on the byte boundary (each: a forward, vocabulary x 8 bytes)
MAX_EXACT_COVERS = 1024
#: a batched forward is split so that its logits (tokens x vocabulary) stay under this many floats
BATCH_LOGITS = 1 << 24


def check_meaning(instance: Any, attribute: Any, value: Any) -> None:
    """attrs-style validator: ``value`` is one of :data:`MEANINGS`."""
    if value not in MEANINGS:
        raise ValueError(f"{attribute.name} must be one of {', '.join(map(repr, MEANINGS))}, got {value!r}")


class CoverSetTooLargeError(ResourceLimitError):
    """A cover set outgrew ``max_covers`` or ``max_exact_covers`` (in the marginal meaning
    it grows exponentially with the length of the text)."""


class ZeroProbabilityError(TokensmithError, ValueError):
    """A byte with probability 0 (no cover reaches it) was read."""


@attrs.define(eq=False)
class Node:
    """A token sequence whose bytes end exactly at ``end`` (a cover ending on a byte boundary).

    ``ids`` exclude the model's start ids; ``logq`` is relative to the head (the
    fixed tokens before the last pre-token of the prompt, whose probability
    cancels in every conditional). ``buckets[b]`` is the probability that the next
    token starts with byte ``b`` (``BYTE_EOS``: has no text). A node without its
    own LM state rebuilds one from ``base`` when it must be extended.
    """

    ids: tuple[int, ...]
    end: int
    logq: float
    next_logq: Any = None
    buckets: Any = None
    state: LMState | None = None
    base: Node | None = None


@attrs.define(eq=False)
class Straddle:
    """Covers ``node.ids + (v,)`` for each ``v`` in ``ids``, with ``offset`` bytes of ``v`` read."""

    node: Node
    ids: Any
    logq: Any
    offset: int


@attrs.define(eq=False)
class CoverSet:
    """``cover(data)``: sequences ending exactly at ``len(data)`` and those straddling it."""

    data: bytes
    exact: list[Node]
    straddles: list[Straddle]
    log_prefix: float = 0.0

    def __len__(self) -> int:
        return len(self.exact) + sum(len(s.ids) for s in self.straddles)

    def sequences(self) -> list[tuple[int, ...]]:
        """Every cover as a token tuple (for tests and inspection)."""
        out = [n.ids for n in self.exact]
        for s in self.straddles:
            out += [s.node.ids + (int(v),) for v in s.ids]
        return out


class ByteProbLM(ByteLanguageModel):
    """A :class:`ByteLanguageModel` derived exactly from a token :class:`LanguageModel`.

    ``start(prompt)`` may end anywhere, mid-token or mid-character;
    ``logprobs`` has 257 entries (bytes, then :data:`BYTE_EOS`), float64.
    ``counters`` holds ``states`` and ``max_covers_seen``, and reads the wrapped
    LM's ``forward_calls`` / ``forward_tokens`` through, so a decoder over a
    ByteProbLM counts its LM calls. ``runtime`` is the wrapped LM's (None for an
    LM without one): decoders draw from its generator when no seed is given.
    """

    def __init__(self, lm: LanguageModel, *, meaning: Meaning = "canonical", max_covers: int = MAX_COVERS,
                 max_exact_covers: int = MAX_EXACT_COVERS, name: str | None = None) -> None:
        if meaning not in MEANINGS:
            raise InputError(f"meaning must be one of {MEANINGS}, got {meaning!r}",
                             component="byte LM 'byteprob'")
        self.name = name or f"byteprob({lm.name}, {meaning})"
        component = f"byte LM '{self.name}'"
        for key, value in (("max_covers", max_covers), ("max_exact_covers", max_exact_covers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"{key} must be an int >= 1, got {value!r}", component=component)
        check_byte_tokenizer(lm.tokenizer, component)
        check_vocab(lm, component)
        self.lm = lm
        self.meaning = meaning
        self.max_covers = max_covers
        self.max_exact_covers = max_exact_covers
        self.view = TokenBytes(lm.tokenizer, lm.vocab_size)
        self.valid = ValidEncodings(lm.tokenizer, self.view) if meaning == "canonical" else None
        self.counters: ChainMap[str, int] = ChainMap({"states": 0, "max_covers_seen": 0}, lm.counters)
        self._prefetched: dict[tuple[int, ...], Any] = {}

    @property
    def runtime(self) -> Any:
        return getattr(self.lm, "runtime", None)

    # -- ByteLanguageModel -------------------------------------------------
    def start(self, prompt: bytes) -> ByteState:
        if not isinstance(prompt, (bytes, bytearray)):
            raise InputError(f"prompt must be bytes, got {type(prompt).__name__}",
                             component=f"byte LM '{self.name}'",
                             hint="encode text first: text.encode('utf-8')")
        prompt = bytes(prompt)
        data = self.lm.tokenizer.prefix_bytes + prompt
        missing = set(data) & self.lm.tokenizer.unrepresentable_bytes
        if missing:
            raise ZeroProbabilityError(
                f"the prompt has probability 0: bytes {bytes(sorted(missing)).hex(' ')} have no token",
                component=f"byte LM '{self.name}'",
                hint="tokenizer.unrepresentable_bytes lists the bytes no token spells")
        cut = self.valid.cut(data) if self.valid is not None else 0
        head_ids = self.valid.encode(data[:cut]) if cut else ()
        if not self.lm.start_ids and not head_ids:
            raise InputError("the model has no BOS/EOS id to condition on and the prompt has no "
                             "complete pre-token", component=f"byte LM '{self.name}'")
        head = Node(head_ids, cut, 0.0)
        head.state = self.lm.start(list(self.lm.start_ids) + list(head_ids))
        self._finish(head, head.state.logprobs, data[:cut])
        covers = CoverSet(data[:cut], [head], [])
        self._prefetch(data, cut)
        try:
            for b in data[cut:]:
                covers = self._step(covers, b)
        finally:
            self._prefetched.clear()
        return self._state(prompt, covers)

    def advance(self, state: ByteState, byte: int) -> ByteState:
        if not isinstance(byte, int) or not 0 <= byte < 256:
            raise InputError(f"byte must be an int in 0..255, got {byte!r}",
                             component=f"byte LM '{self.name}'")
        return self._state(state.prefix + bytes([byte]), self._step(state.data, byte))

    def score_bytes(self, prompt: bytes, continuation: bytes) -> float:
        """log P(continuation | prompt); ``-inf`` when a byte of it has probability 0."""
        state = self.start(prompt)
        total = 0.0
        for b in continuation:
            lp = float(state.logprobs[b])
            if lp == -math.inf:
                return -math.inf
            total += lp
            state = self.advance(state, b)
        return total

    # -- the lemma -----------------------------------------------------------
    def _state(self, prefix: bytes, covers: CoverSet) -> ByteState:
        import torch

        self.counters["states"] += 1
        self.counters["max_covers_seen"] = max(self.counters["max_covers_seen"], len(covers))
        shift = max([n.logq for n in covers.exact] + [float(s.logq.max()) for s in covers.straddles])
        mass = torch.zeros(BYTE_EOS + 1, dtype=torch.float64)
        for node in covers.exact:
            mass += math.exp(node.logq - shift) * node.buckets
        for s in covers.straddles:
            mass.scatter_add_(0, self.view.matrix[s.ids, s.offset].long(), torch.exp(s.logq - shift))
        total = mass.sum()
        covers.log_prefix = shift + float(torch.log(total))
        return ByteState(prefix, torch.log(mass / total), covers)

    def _step(self, covers: CoverSet, b: int) -> CoverSet:
        """cover(x) -> cover(x b): keep straddlers whose next byte is b, branch from exact ones."""

        view = self.view
        finished: list[tuple[Node, int, float]] = []
        straddles: list[Straddle] = []
        for s in covers.straddles:
            keep = view.matrix[s.ids, s.offset] == b
            if not bool(keep.any()):
                continue
            ids, logq = s.ids[keep], s.logq[keep]
            done = view.lengths[ids] == s.offset + 1
            finished += [(s.node, v, q) for v, q in zip(ids[done].tolist(), logq[done].tolist())]
            if not bool(done.all()):
                straddles.append(Straddle(s.node, ids[~done], logq[~done], s.offset + 1))
        for node in covers.exact:
            ids = view.by_first[b]
            logq = node.logq + node.next_logq[ids]
            live = logq > -math.inf
            ids, logq = ids[live], logq[live]
            single = view.lengths[ids] == 1
            finished += [(node, v, q) for v, q in zip(ids[single].tolist(), logq[single].tolist())]
            if not bool(single.all()):
                straddles.append(Straddle(node, ids[~single], logq[~single], 1))
        data = covers.data + bytes([b])
        count = len(finished) + sum(len(s.ids) for s in straddles)
        if count == 0:
            raise ZeroProbabilityError(
                f"byte 0x{b:02x} has probability 0 after {covers.data[-20:]!r}: no token sequence "
                "covers it", component=f"byte LM '{self.name}'",
                hint="check state.logprobs[byte] > -inf before advancing")
        if count > self.max_covers or len(finished) > self.max_exact_covers:
            what = (f"{count:,} covers exceed max_covers={self.max_covers:,}" if count > self.max_covers else
                    f"{len(finished):,} covers ending on the byte boundary exceed "
                    f"max_exact_covers={self.max_exact_covers:,}")
            raise CoverSetTooLargeError(
                f"after {len(data)} bytes, {what}", component=f"byte LM '{self.name}'",
                hint="the marginal meaning grows exponentially with the text; use meaning='canonical', a "
                     "shorter text, or raise the bound (each boundary cover holds vocabulary x 8 bytes)")
        exact = [Node(parent.ids + (v,), len(data), q) for parent, v, q in finished]
        self._expand(exact, [parent for parent, _, _ in finished], data)
        return CoverSet(data, exact, straddles)

    def _expand(self, nodes: list[Node], parents: list[Node], data: bytes) -> None:
        """Next-token distributions of new exact nodes: one cached step for a single node,
        one batched forward (``logprobs_batch``) for several."""
        lm = self.lm
        todo = []
        for node, parent in zip(nodes, parents):
            if node.ids in self._prefetched:
                node.base = parent if parent.state is not None else parent.base
                self._finish(node, self._prefetched[node.ids], data)
            else:
                todo.append((node, parent))
        if len(todo) == 1:
            node, parent = todo[0]
            node.state = lm.extend(lm.fork(self._lm_state(parent)), [node.ids[-1]])
            self._finish(node, node.state.logprobs, data)
        elif todo:
            lasts = self._last_rows([list(lm.start_ids) + list(n.ids) for n, _ in todo])
            for (node, parent), row in zip(todo, lasts):
                node.base = parent if parent.state is not None else parent.base
                self._finish(node, row, data)

    def _last_rows(self, seqs: list[list[int]]) -> list[Any]:
        """The next-token log-distribution after each sequence: ``logprobs_batch`` on chunks whose
        padded logits (rows x longest x vocabulary) stay under :data:`BATCH_LOGITS` floats, each
        last row copied out of its chunk so that the chunk is freed."""
        out: list[Any] = []
        budget = max(1, BATCH_LOGITS // max(1, self.lm.vocab_size))
        i = 0
        while i < len(seqs):
            j, width = i + 1, len(seqs[i])
            while j < len(seqs) and (j + 1 - i) * max(width, len(seqs[j])) <= budget:
                width = max(width, len(seqs[j]))
                j += 1
            out += [rows[-1].clone() for rows in self.lm.logprobs_batch(seqs[i:j])]
            i = j
        return out

    def _prefetch(self, data: bytes, cut: int) -> None:
        """Score the canonical encodings of the prefixes of the prompt's last pre-token in one
        batched forward: in the canonical meaning they are the covers ending on each byte. At most
        ``max_exact_covers`` of them (each is a row of logits kept until ``start`` returns); the
        covers of a longer pre-token's later bytes are scored one cached step at a time."""
        if self.valid is None or len(data) - cut < 2:
            return
        seqs = {}
        for end in range(cut + 1, min(len(data), cut + self.max_exact_covers) + 1):
            ids = self.valid.encode(data[:end])
            if ids is not None and ids:
                seqs[ids] = list(self.lm.start_ids) + list(ids)
        if len(seqs) > 1:
            self._prefetched = dict(zip(seqs, self._last_rows(list(seqs.values()))))

    def _lm_state(self, node: Node) -> LMState:
        if node.state is None:
            base = node.base
            node.state = self.lm.extend(self.lm.fork(base.state), list(node.ids[len(base.ids):]))
            node.base = None
        return node.state

    def _finish(self, node: Node, logprobs: Any, data: bytes) -> None:
        """Store log q(. | node) (masked to valid encodings and renormalized when canonical)."""
        import torch

        logq = logprobs.detach().to("cpu", torch.float64)
        if self.valid is not None:
            mask = self.valid.next_mask(node.ids, data[: node.end])
            logq = logq.masked_fill(~mask, -math.inf)
            logq = logq - torch.logsumexp(logq, 0)
        node.next_logq = logq
        node.buckets = torch.zeros(BYTE_EOS + 1, dtype=torch.float64).scatter_add_(
            0, self.view.first, torch.exp(logq))

