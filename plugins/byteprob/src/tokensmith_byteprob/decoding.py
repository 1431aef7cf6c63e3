"""Byte-level decoding over a :class:`ByteProbLM`: greedy, temperature and top-p on bytes.

Phan et al., arXiv 2410.09303, Sec. 3.2 (sampling bytes from exact next-byte
distributions; the paper applies temperature and top-p to the byte
distribution) and Sec. 4 (FIM: the prompt may end in the middle of a token).
"""

from __future__ import annotations

from typing import Any

import attrs

from tokensmith import (
    BYTE_EOS,
    BuildContext,
    ByteLanguageModel,
    ByteViewError,
    ConfigError,
    Decoder,
    Generation,
    IncompatibleComponentsError,
    InputError,
    LanguageModel,
)
from tokensmith.core.sampling import filtered_probs, non_negative, probability
from tokensmith.core.tokenizer import require_text

from .byte_view import check_byte_tokenizer
from .cover_set import MEANINGS, ByteProbLM

#: with no ``max_new_bytes``, a token budget becomes this many bytes (English averages ~4)
BYTES_PER_TOKEN = 4


def _meaning(instance, attribute, value):
    if value not in MEANINGS:
        raise ValueError(f"{attribute.name} must be one of {MEANINGS}, got {value!r}")


def _optional_positive(instance, attribute, value):
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 or None, got {value}")


@attrs.frozen
class ByteDecoderConfig:
    """``temperature`` 0 means greedy (argmax byte); ``max_new_bytes`` None means
    ``BYTES_PER_TOKEN * max_new_tokens``."""

    meaning: str = attrs.field(default="canonical", validator=_meaning)
    temperature: float = attrs.field(default=0.0, validator=non_negative)
    top_p: float = attrs.field(default=1.0, validator=probability)
    max_new_bytes: int | None = attrs.field(default=None, validator=_optional_positive)


def pick_byte(logprobs: Any, temperature: float, top_p: float, generator: Any) -> int:
    """Greedy for temperature 0; else temperature, then nucleus filtering, then a draw."""

    if temperature == 0:
        return int(logprobs.argmax())
    probs = filtered_probs(logprobs, temperature, top_p=top_p)
    return int(probs.multinomial(1, generator=generator))


def generate_bytes(blm: ByteLanguageModel, prompt: bytes, max_new_bytes: int, *, temperature: float = 0.0,
                   top_p: float = 1.0, seed: int | None = None) -> tuple[bytes, str]:
    """Sample bytes after ``prompt``; returns (bytes, finish reason "stop" or "length")."""
    import torch

    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    state = blm.start(prompt)
    out = bytearray()
    while len(out) < max_new_bytes:
        b = pick_byte(state.logprobs, temperature, top_p, generator)
        if b == BYTE_EOS:
            return bytes(out), "stop"
        out.append(b)
        if len(out) < max_new_bytes:
            state = blm.advance(state, b)
    return bytes(out), "length"


class ByteDecoder(Decoder):
    """Decodes byte by byte from the exact next-byte distribution of the pipeline's LM.

    The prompt is used as bytes, so it may end mid-word or mid-identifier
    ("def fibon"): covers of its last pre-token are summed, no token healing is
    needed. ``Generation.ids`` is empty (a byte decoder emits bytes, not one
    tokenization); counters give ``lm_calls`` and ``bytes``.
    """

    name = "byteprob"

    def __init__(self, config: ByteDecoderConfig | None = None) -> None:
        self.config = config or ByteDecoderConfig()
        self._byte_lms: dict[int, ByteProbLM] = {}

    @classmethod
    def from_config(cls, config: ByteDecoderConfig, ctx: BuildContext) -> ByteDecoder:
        if ctx.tokenizer is not None:
            try:
                check_byte_tokenizer(ctx.tokenizer, "decoder 'byteprob'")
            except ByteViewError as err:  # at build time this is a pairing problem of the pipeline
                raise IncompatibleComponentsError(err.message, component=err.component, plugin=err.plugin,
                                                  hint="use the model's own byte-level BPE or byte-fallback "
                                                  "tokenizer") from err
        return cls(config)

    def byte_lm(self, lm: LanguageModel) -> ByteProbLM:
        """The :class:`ByteProbLM` over ``lm``, built once per LM (its tables cost a vocabulary pass)."""
        key = id(lm)
        if key not in self._byte_lms or self._byte_lms[key].lm is not lm:
            self._byte_lms[key] = ByteProbLM(lm, meaning=self.config.meaning)
        return self._byte_lms[key]

    def generate(self, lm: LanguageModel, prompt: str, *, max_new_tokens: int = 32,
                 constraint=None, seed: int | None = None) -> Generation:
        require_text(prompt, f"decoder '{self.name}'")
        if constraint is not None:
            raise ConfigError("this decoder cannot honour constraints", component=f"decoder '{self.name}'",
                              plugin="tokensmith-byteprob", hint="use tokensmith-awrs over a ByteProbLM")
        if max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be >= 0, got {max_new_tokens}",
                             component=f"decoder '{self.name}'", plugin="tokensmith-byteprob")
        budget = self.config.max_new_bytes or BYTES_PER_TOKEN * max_new_tokens
        blm = self.byte_lm(lm)
        calls = lm.counters["forward_calls"]
        out, finish = generate_bytes(blm, prompt.encode("utf-8"), budget, temperature=self.config.temperature,
                                     top_p=self.config.top_p, seed=seed) if budget else (b"", "length")
        return Generation(text=out.decode("utf-8", errors="replace"), bytes=out, ids=(), log_weight=0.0,
                          counters={"lm_calls": lm.counters["forward_calls"] - calls, "bytes": len(out)},
                          finish_reason=finish)
