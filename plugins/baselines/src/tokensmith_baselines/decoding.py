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

from tokensmith import BuildContext, ConfigError, Decoder, Generation, LanguageModel, Tokenizer
from tokensmith.core.sampling import filtered_probs, non_negative, positive, probability
from tokensmith.core.tokenizer import require_text


@attrs.frozen
class GreedyConfig:
    token_healing: bool = False
    heal_tokens: int = attrs.field(default=1, validator=positive)


@attrs.frozen
class SampleConfig:
    temperature: float = attrs.field(default=1.0, validator=positive)
    top_k: int = attrs.field(default=0, validator=non_negative)
    top_p: float = attrs.field(default=1.0, validator=probability)
    token_healing: bool = False
    heal_tokens: int = attrs.field(default=1, validator=positive)


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


class _TokenDecoder(Decoder):
    """Shared loop: prompt ids -> cached steps -> Generation. Subclasses pick tokens."""

    def __init__(self, token_healing: bool = False, heal_tokens: int = 1) -> None:
        self.token_healing = token_healing
        self.heal_tokens = heal_tokens
        self._healers: dict[int, TokenHealer] = {}

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

        require_text(prompt, f"decoder '{self.name}'")
        if constraint is not None:
            raise ConfigError("this decoder cannot honour constraints", component=f"decoder '{self.name}'",
                              hint="use a constrained decoder (e.g. tokensmith-awrs)")
        if max_new_tokens < 0:
            raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens}",
                              component=f"decoder '{self.name}'")
        tok = lm.tokenizer
        ids = list(lm.start_ids) + list(tok.encode(prompt).ids)
        if not ids:
            raise ConfigError("empty prompt and the model has no BOS/EOS id to start from",
                              component=f"decoder '{self.name}'")
        remaining = b""
        if self.token_healing:
            ids, remaining = TokenHealer.split_prompt(tok, ids, self.heal_tokens)
        healed = remaining
        generator = torch.Generator(device="cpu").manual_seed(0 if seed is None else seed)
        calls0 = lm.counters["forward_calls"]
        state = lm.start(ids)
        out: list[int] = []
        finish = "length"
        for _ in range(max_new_tokens):
            logprobs = state.logprobs
            if remaining:
                allowed = self._healer(tok).allowed(remaining)
                mask = torch.full_like(logprobs, float("-inf"))
                mask[allowed] = 0.0
                logprobs = logprobs + mask
            token = self.pick(logprobs, generator)
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
        return Generation(text=cont.decode("utf-8", errors="replace"), bytes=cont, ids=tuple(out),
                          counters={"lm_calls": lm.counters["forward_calls"] - calls0,
                                    "healed_bytes": len(healed)},
                          finish_reason=finish)


class GreedyDecoder(_TokenDecoder):
    name = "greedy"

    @classmethod
    def from_config(cls, config: GreedyConfig, ctx: BuildContext) -> GreedyDecoder:
        return cls(config.token_healing, config.heal_tokens)

    def pick(self, logprobs: Any, generator: Any) -> int:
        return int(logprobs.argmax())


class SamplingDecoder(_TokenDecoder):
    name = "sample"

    def __init__(self, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 token_healing: bool = False, heal_tokens: int = 1) -> None:
        super().__init__(token_healing, heal_tokens)
        self.config = SampleConfig(temperature, top_k, top_p, token_healing, heal_tokens)

    @classmethod
    def from_config(cls, config: SampleConfig, ctx: BuildContext) -> SamplingDecoder:
        return cls(**attrs.asdict(config))

    def pick(self, logprobs: Any, generator: Any) -> int:
        probs = filtered_probs(logprobs, self.config.temperature, self.config.top_k, self.config.top_p)
        return int(probs.cpu().multinomial(1, generator=generator))
