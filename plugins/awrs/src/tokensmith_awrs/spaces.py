"""The symbol spaces AWRS samples over: a token LM's vocabulary, or 256 bytes + EOS.

A space gives the sampler next-symbol log-weights (with symbols known to be
invalid a priori set to ``-inf``: the paper's optional pruning), the bytes each
symbol adds, which symbols end the string, and how to advance a state.
"""

from __future__ import annotations

import math
from typing import Any

from tokensmith import (
    BYTE_EOS,
    ByteLanguageModel,
    ContextLengthError,
    InputError,
    LanguageModel,
    encode_prompt,
)


class TokenSpace:
    """A :class:`tokensmith.LanguageModel`'s vocabulary through its tokenizer's byte view.

    Special tokens end the string (as in the baseline decoders); output rows
    with no token behind them (padding beyond the tokenizer) are pruned.
    """

    def __init__(self, lm: LanguageModel) -> None:
        import torch

        self.lm = lm
        tok = lm.tokenizer
        self.pieces: tuple[bytes | None, ...] = tok.byte_table
        self.stops = frozenset(tok.special_ids)
        prune = torch.full((lm.vocab_size,), -math.inf)
        keep = [i for i, b in enumerate(self.pieces) if b or i in self.stops]
        prune[torch.tensor(keep)] = 0.0
        self._prune = prune

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

    def __init__(self, lm: ByteLanguageModel) -> None:
        self.lm = lm
        self._calls = 0

    def start(self, prompt: str) -> Any:
        self._calls += 1
        return self.lm.start(prompt.encode("utf-8"))

    def logweights(self, state: Any) -> Any:
        import torch

        return torch.as_tensor(state.logprobs, dtype=torch.float64)

    def advance(self, state: Any, symbol: int) -> Any | None:
        """The state after ``symbol``, or ``None`` when the byte LM's token context is full."""
        self._calls += 1
        try:
            return self.lm.advance(state, symbol)
        except ContextLengthError:
            return None

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
