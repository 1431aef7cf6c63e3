"""The symbol spaces AWRS samples over: a token LM's vocabulary, or 256 bytes + EOS.

A space gives the sampler next-symbol log-weights (with symbols known to be
invalid a priori set to ``-inf``: the paper's optional pruning, Lipkin et al.,
arXiv 2504.05410, step 1), the bytes each symbol adds, which symbols end the
string, and how to advance a state.

A priori invalid are: output rows with no token behind them, and — when the
constraint declares its byte alphabet (:func:`byte_alphabet`: the bytes that occur
in some accepted string) — every symbol containing a byte outside it, since no
allowed text can contain that symbol in any context. Pruning leaves the constrained
distribution and ``Z_c`` as they are (only tokens with ``c = 0`` lose their mass);
``Z`` shrinks, and the samplers' weights carry the smaller ``Z``.
"""

from __future__ import annotations

import math
from typing import Any

from tokensmith import (
    BYTE_EOS,
    AllOf,
    AnyOf,
    ByteLanguageModel,
    Constraint,
    ContextLengthError,
    InputError,
    LanguageModel,
    encode_prompt,
)

from .grammars import LLGuidanceConstraint


def byte_alphabet(constraint: Constraint | None) -> frozenset[int] | None:
    """The bytes that can occur in a string ``constraint`` accepts, or ``None`` when it does
    not say (any byte may). A constraint declares it with a ``byte_alphabet()`` method;
    ``&`` intersects its parts' alphabets, ``|`` unites them."""
    if constraint is None:
        return None
    if isinstance(constraint, AllOf):
        known = [a for a in map(byte_alphabet, constraint.parts) if a is not None]
        return frozenset.intersection(*known) if known else None
    if isinstance(constraint, AnyOf):
        parts = [byte_alphabet(part) for part in constraint.parts]
        return None if any(a is None for a in parts) else frozenset().union(*parts)
    declared = getattr(constraint, "byte_alphabet", None)
    return frozenset(declared()) if callable(declared) else None


def can_occur_test(constraint: Constraint | None) -> Any:
    """A test ``piece -> bool`` that is False only for pieces no accepted string contains, or
    ``None``. A constraint declares it with ``can_occur(piece)``; ``&`` needs every part that
    declares one to agree, ``|`` any part (and only when every part declares one)."""
    if constraint is None:
        return None
    if isinstance(constraint, (AllOf, AnyOf)):
        tests = [can_occur_test(part) for part in constraint.parts]
        if isinstance(constraint, AllOf):
            known = [t for t in tests if t is not None]
            return (lambda piece: all(t(piece) for t in known)) if known else None
        if any(t is None for t in tests):
            return None
        return lambda piece: any(t(piece) for t in tests)
    declared = getattr(constraint, "can_occur", None)
    return declared if callable(declared) else None


#: prune vectors by (vocabulary, alphabet); the value keeps the vocabulary alive, so its id
#: cannot be reused while it is cached
_PRUNE_CACHE: dict[tuple[int, frozenset[int]], tuple[Any, Any]] = {}
_PRUNE_CACHE_SIZE = 8


def _outside_alphabet(pieces: tuple[bytes | None, ...], alphabet: frozenset[int]) -> list[int]:
    """Ids of the pieces with a byte outside ``alphabet`` (``bytes.translate`` deletes the
    alphabet's bytes in C: what is left is outside it)."""
    key = (id(pieces), alphabet)
    hit = _PRUNE_CACHE.get(key)
    if hit is not None and hit[0] is pieces:
        return hit[1]
    keep = bytes(sorted(alphabet))
    out = [i for i, b in enumerate(pieces) if b and b.translate(None, keep)]
    if len(_PRUNE_CACHE) >= _PRUNE_CACHE_SIZE:
        _PRUNE_CACHE.clear()
    _PRUNE_CACHE[key] = (pieces, out)
    return out


class PrefixIndex:
    """The non-stop symbols sorted by their bytes, so that the symbols whose bytes start with a
    given string are one contiguous range (two bisections). AWRS uses it to drop, unchecked,
    every token that extends the dead prefix of a rejected one (:func:`tokensmith_awrs.smc.symbol_check`)."""

    def __init__(self, pieces: tuple[bytes | None, ...], stops: frozenset[int]) -> None:
        import torch

        ranked = sorted((b, i) for i, b in enumerate(pieces) if b and i not in stops)
        self.keys = [b for b, _ in ranked]
        self.ids = torch.tensor([i for _, i in ranked], dtype=torch.long)

    def extending(self, head: bytes) -> Any:
        """Ids (a tensor) of the symbols whose bytes start with ``head``."""
        import bisect

        lo = bisect.bisect_left(self.keys, head)
        # the first string after every extension of head: head with its last non-0xff byte raised
        tail = head.rstrip(b"\xff")
        hi = len(self.keys) if not tail else bisect.bisect_left(self.keys, tail[:-1] + bytes([tail[-1] + 1]))
        return self.ids[lo:hi]


#: prefix indexes by vocabulary (the value keeps the vocabulary alive, so its id is not reused)
_INDEX_CACHE: dict[tuple[int, frozenset[int]], tuple[Any, PrefixIndex]] = {}


def prefix_index(pieces: tuple[bytes | None, ...], stops: frozenset[int]) -> PrefixIndex:
    key = (id(pieces), stops)
    hit = _INDEX_CACHE.get(key)
    if hit is not None and hit[0] is pieces:
        return hit[1]
    if len(_INDEX_CACHE) >= _PRUNE_CACHE_SIZE:
        _INDEX_CACHE.clear()
    index = PrefixIndex(pieces, stops)
    _INDEX_CACHE[key] = (pieces, index)
    return index


class TokenSpace:
    """A :class:`tokensmith.LanguageModel`'s vocabulary through its tokenizer's byte view.

    Special tokens end the string (as in the baseline decoders); output rows
    with no token behind them (padding beyond the tokenizer) are pruned.
    """

    def __init__(self, lm: LanguageModel) -> None:
        import torch

        self.lm = lm
        self.masks = 0
        tok = lm.tokenizer
        self.pieces: tuple[bytes | None, ...] = tok.byte_table
        self.stops = frozenset(tok.special_ids)
        prune = torch.full((lm.vocab_size,), -math.inf)
        keep = [i for i, b in enumerate(self.pieces) if b or i in self.stops]
        prune[torch.tensor(keep)] = 0.0
        self._prune = prune

    def index(self) -> PrefixIndex:
        """The vocabulary sorted by bytes (built once per vocabulary, then cached)."""
        return prefix_index(self.pieces, self.stops)

    def masker(self, constraint: Constraint) -> Any:
        """llguidance's token-mask builder over this vocabulary, for a constraint backed by it."""
        if isinstance(constraint, LLGuidanceConstraint):
            return constraint.token_masker(self.lm.tokenizer, self.lm.vocab_size)
        return None

    def restrict(self, alphabet: frozenset[int] | None, constraint: Constraint | None = None) -> None:
        """Prune every token with a byte outside ``alphabet``, then those ``constraint`` says
        cannot occur inside any accepted string (:func:`can_occur`); special tokens stay."""
        out = [] if alphabet is None or len(alphabet) == 256 else _outside_alphabet(self.pieces, alphabet)
        occurs = can_occur_test(constraint)
        if occurs is not None:
            gone = set(out)
            out += [i for i, b in enumerate(self.pieces) if b and i not in gone and not occurs(b)]
        if out:
            self._prune = self._prune.clone()
            self._prune[out] = -math.inf

    def start(self, prompt: str) -> Any:
        # special-token strings are control tokens only in a TrustedText prompt
        return self.lm.start(list(self.lm.start_ids) + list(encode_prompt(self.lm.tokenizer, prompt).ids))

    def logweights(self, state: Any) -> Any:
        return state.logprobs.to(self._prune.device) + self._prune

    def advance(self, state: Any, symbol: int) -> Any | None:
        """The state after ``symbol``, or ``None`` when the context window is full."""
        if len(state.ids) + 1 >= self.lm.context_length:
            return None
        return self.lm.extend(state, [symbol])

    def fork(self, state: Any) -> Any:
        return self.lm.fork(state)

    def calls(self) -> int:
        return self.lm.counters["forward_calls"]


class ByteSpace:
    """A :class:`tokensmith.ByteLanguageModel`: AWRS over the 256 byte values and EOS."""

    pieces: tuple[bytes, ...] = tuple(bytes([b]) for b in range(256))
    stops = frozenset({BYTE_EOS})

    #: advances remembered: particles holding the same byte state (resampled copies share it)
    #: that draw the same byte share one advance of the byte LM
    memo_size = 4096

    def __init__(self, lm: ByteLanguageModel) -> None:
        from collections import OrderedDict

        self.lm = lm
        self.masks = 0
        self._calls = 0
        self._prune: Any = None
        # (id(state), byte) -> (state, next state); the state is kept so its id is not reused
        self._memo: OrderedDict[tuple[int, int], tuple[Any, Any]] = OrderedDict()

    def masker(self, constraint: Constraint) -> None:
        """Bytes are checked by the constraint itself (llguidance's byte matcher included)."""
        return None

    def restrict(self, alphabet: frozenset[int] | None, constraint: Constraint | None = None) -> None:
        """Prune the byte values outside ``alphabet`` (EOS stays)."""
        import torch

        if alphabet is None or len(alphabet) == 256:
            return
        self._prune = torch.zeros(257, dtype=torch.float64)
        self._prune[[b for b in range(256) if b not in alphabet]] = -math.inf

    def start(self, prompt: str) -> Any:
        self._calls += 1
        return self.lm.start(prompt.encode("utf-8"))

    def logweights(self, state: Any) -> Any:
        import torch

        logw = torch.as_tensor(state.logprobs, dtype=torch.float64)
        return logw if self._prune is None else logw + self._prune

    def advance(self, state: Any, symbol: int) -> Any | None:
        """The state after ``symbol``, or ``None`` when the byte LM's token context is full.
        Byte states are values, so the same state advanced by the same byte again (another
        particle, a resampled copy) gets the state computed the first time: ``calls`` counts
        the byte LM's own calls."""
        key = (id(state), symbol)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is state:
            self._memo.move_to_end(key)
            return hit[1]
        self._calls += 1
        try:
            after = self.lm.advance(state, symbol)
        except ContextLengthError:
            after = None
        self._memo[key] = (state, after)
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return after

    def fork(self, state: Any) -> Any:
        return state  # byte states are values: advance() returns a new one

    def calls(self) -> int:
        return self._calls


def space_for(lm: Any, component: str) -> TokenSpace | ByteSpace:
    if isinstance(lm, ByteLanguageModel):
        return ByteSpace(lm)
    if isinstance(lm, LanguageModel):
        return TokenSpace(lm)
    raise InputError(f"expected a tokensmith LanguageModel or ByteLanguageModel, got {type(lm).__name__}",
                     component=component)
