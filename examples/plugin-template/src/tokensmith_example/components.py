"""The components: a text stage, a constraint and a decoder. Each declares its
parameters once, as attrs fields; tokensmith checks pipeline values against them."""

from __future__ import annotations

import unicodedata

import attrs

from tokensmith import (
    Constraint,
    Decoder,
    Generation,
    LanguageModel,
    TokenizerStage,
    non_negative_int,
    probability,
)


@attrs.define
class NFKC(TokenizerStage):
    """NFKC-normalize text (optionally case-folded) before it is tokenized."""

    name = "nfkc"
    casefold: bool = attrs.field(default=False, metadata={"doc": "also case-fold the text"})

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        return text.casefold() if self.casefold else text


@attrs.define
class MaxBytes(Constraint):
    """Strings of at most ``limit`` UTF-8 bytes: a prefix is viable while it fits."""

    name = "max-bytes"
    limit: int = attrs.field(validator=non_negative_int)

    def _allows(self, prefix: bytes) -> bool:
        return len(prefix) <= self.limit


@attrs.define
class MinP(Decoder):
    """Min-p sampling (Nguyen et al. 2024): keep the tokens whose probability is at least
    ``min_p`` times the most likely token's, renormalise, sample."""

    name = "min-p"
    min_p: float = attrs.field(default=0.1, validator=probability)

    def generate(self, lm: LanguageModel, prompt: str, *, max_new_tokens: int = 32,
                 constraint: Constraint | None = None, seed: int | None = None) -> Generation:
        import torch

        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        tok = lm.tokenizer
        out: list[int] = []
        finish = "length"
        state = lm.start(request.prompt_ids()) if max_new_tokens else None
        while len(out) < max_new_tokens:
            probs = state.logprobs.exp()
            probs[tok.vocab_size:] = 0.0  # the model's padding rows are no tokens
            probs = probs.masked_fill(probs < self.min_p * probs.max(), 0.0)
            token = int(torch.multinomial(probs, 1, generator=request.generator))
            if token in tok.special_ids:  # EOS and other specials end the text
                finish = "stop"
                break
            out.append(token)
            if len(out) == max_new_tokens or len(state.ids) + 1 >= lm.context_length:
                break
            state = lm.extend(state, [token])
        return request.generation(out, tok.decode_bytes(out), finish_reason=finish)
