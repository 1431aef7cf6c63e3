"""Greedy and ancestral sampling over a LanguageModel, with opt-in token healing.

Token healing (the heuristic of guidance / transformers' ``token_healing``):
the prompt's last token is removed and the first generated tokens are
constrained to reproduce its bytes, so a prompt cut mid-word ("def fibon")
can be continued by the token the model would have used ("fibonacci"). Unlike
transformers' implementation, the constraint is on the byte view, so it works
for byte-level BPE vocabularies; special tokens are never removed.
"""

from __future__ import annotations

import bisect
from abc import abstractmethod
from typing import Any

import attrs

from tokensmith import (
    Decoder,
    Generation,
    LanguageModel,
    Tokenizer,
    filtered_probs,
    non_negative_int,
    positive,
    positive_int,
    probability,
)


class TokenHealer:
    """Which tokens may come next while the removed prompt bytes are regenerated.

    A token fits the remaining bytes ``r`` if its bytes start with ``r`` (it
    completes them) or are a proper prefix of ``r`` (it consumes part of them).
    Built once per tokenizer: a sorted byte table answers each step by bisection.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        entries = sorted((b, i) for i, b in enumerate(tokenizer.byte_table)
                         if b and i not in tokenizer.special_ids)
        self._keys = [b for b, _ in entries]
        self._ids = [i for _, i in entries]
        self._exact: dict[bytes, list[int]] = {}
        for b, i in entries:
            self._exact.setdefault(b, []).append(i)

    def allowed(self, remaining: bytes) -> list[int]:
        lo = bisect.bisect_left(self._keys, remaining)
        hi = lo
        while hi < len(self._keys) and self._keys[hi].startswith(remaining):
            hi += 1
        out = self._ids[lo:hi]
        for j in range(1, len(remaining)):
            out.extend(self._exact.get(remaining[:j], ()))
        return out

    @staticmethod
    def split_prompt(tokenizer: Tokenizer, ids: list[int], k: int) -> tuple[list[int], bytes]:
        """Remove up to ``k`` trailing non-special tokens; return (kept ids, removed bytes)."""
        removed = b""
        while k > 0 and len(ids) > 1 and ids[-1] not in tokenizer.special_ids:
            removed = (tokenizer.token_bytes(ids[-1]) or b"") + removed
            ids = ids[:-1]
            k -= 1
        return ids, removed


@attrs.define
class _TokenDecoder(Decoder):
    """Shared loop: prompt ids -> cached steps -> Generation. Subclasses pick tokens."""

    token_healing: bool = attrs.field(default=False, metadata={"doc": "back up the prompt's last "
                                      "token(s) and regenerate their bytes"})
    heal_tokens: int = attrs.field(default=1, validator=positive_int,
                                   metadata={"doc": "how many trailing prompt tokens healing removes"})
    _healers: dict[int, TokenHealer] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    def _healer(self, tokenizer: Tokenizer) -> TokenHealer:
        key = id(tokenizer)
        if key not in self._healers:
            self._healers[key] = TokenHealer(tokenizer)
        return self._healers[key]

    @abstractmethod
    def pick(self, logprobs: Any, generator: Any) -> int:
        """Choose the next token from (masked) log-probabilities."""

    def generate(self, lm: LanguageModel, prompt: str, *, max_new_tokens: int = 32,
                 constraint=None, seed: int | None = None) -> Generation:
        import torch

        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        tok = lm.tokenizer
        ids = request.prompt_ids()
        remaining = b""
        if self.token_healing:
            ids, remaining = TokenHealer.split_prompt(tok, ids, self.heal_tokens)
        healed = remaining
        out: list[int] = []
        finish = "length"
        if max_new_tokens == 0:
            return request.generation(out, b"", finish_reason=finish, counters={"healed_bytes": len(healed)})
        state = lm.start(ids)
        for _ in range(max_new_tokens):
            logprobs = state.logprobs
            if remaining:
                allowed = self._healer(tok).allowed(remaining)
                mask = torch.full_like(logprobs, float("-inf"))
                mask[allowed] = 0.0
                logprobs = logprobs + mask
            token = self.pick(logprobs, request.generator)
            if token in tok.special_ids:
                finish = "stop"
                break
            out.append(token)
            if remaining:
                piece = tok.token_bytes(token) or b""
                remaining = remaining[len(piece):] if remaining.startswith(piece) else b""
            if len(out) == max_new_tokens or len(state.ids) + 1 >= lm.context_length:
                break
            state = lm.extend(state, [token])
        raw = tok.decode_bytes(out) if tok.lossless else tok.decode(out).encode("utf-8")
        cont = raw[len(healed):] if raw.startswith(healed) else raw
        return request.generation(out, cont, finish_reason=finish, counters={"healed_bytes": len(healed)})


@attrs.define
class GreedyDecoder(_TokenDecoder):
    """Argmax decoding with the KV cache; optional token healing."""

    name = "greedy"

    def pick(self, logprobs: Any, generator: Any) -> int:
        return int(logprobs.argmax())


@attrs.define
class SamplingDecoder(_TokenDecoder):
    """Ancestral sampling with temperature, top-k and nucleus (top-p) filtering."""

    name = "sample"

    temperature: float = attrs.field(default=1.0, validator=positive, kw_only=True)
    top_k: int = attrs.field(default=0, validator=non_negative_int, kw_only=True,
                             metadata={"doc": "keep the k most probable tokens (0: all)"})
    top_p: float = attrs.field(default=1.0, validator=probability, kw_only=True,
                               metadata={"doc": "nucleus mass"})

    def pick(self, logprobs: Any, generator: Any) -> int:
        probs = filtered_probs(logprobs, self.temperature, self.top_k, self.top_p)
        return int(probs.cpu().multinomial(1, generator=generator))
