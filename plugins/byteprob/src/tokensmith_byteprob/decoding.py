"""Byte-level decoding over a :class:`ByteProbLM`: greedy, temperature and top-p on bytes.

Phan et al., arXiv 2410.09303, Sec. 3.2 (sampling bytes from exact next-byte
distributions; the paper applies temperature and top-p to the byte
distribution) and Sec. 4 (FIM: the prompt may end in the middle of a token).

Like the token decoders, generation stops with ``finish_reason="length"`` when the
LM's context is full (a cover of the next byte would not fit), returning the bytes
generated so far; a prompt that does not fit is a :class:`~tokensmith.ContextLengthError`.
"""

from __future__ import annotations

from typing import Any

import attrs

from tokensmith import (
    BYTE_EOS,
    BuildContext,
    ByteLanguageModel,
    ByteViewError,
    ContextLengthError,
    Decoder,
    Generation,
    IncompatibleComponentsError,
    LanguageModel,
    TrustedText,
    filtered_probs,
    non_negative,
    non_negative_int,
    positive_int,
    probability,
)

from .byte_view import check_byte_tokenizer
from .cover_set import (
    INVALID_UTF8,
    MAX_COVERS,
    MAX_EXACT_COVERS,
    MAX_MEMORY,
    PREFETCH,
    SPECIALS,
    TOLERANCE,
    ByteProbLM,
    InvalidUtf8,
    Meaning,
    Specials,
    check_choice,
    check_meaning,
    check_tolerance,
)

#: with no ``max_new_bytes``, a token budget becomes this many bytes (English averages ~4)
BYTES_PER_TOKEN = 4


def pick_byte(logprobs: Any, temperature: float, top_p: float, generator: Any) -> int:
    """Greedy for temperature 0; else temperature, then nucleus filtering, then a draw."""

    if temperature == 0:
        return int(logprobs.argmax())
    probs = filtered_probs(logprobs, temperature, top_p=top_p)
    return int(probs.multinomial(1, generator=generator))


def generate_bytes(blm: ByteLanguageModel, prompt: bytes, max_new_bytes: int, *, temperature: float = 0.0,
                   top_p: float = 1.0, generator: Any = None) -> tuple[bytes, str]:
    """Sample bytes after ``prompt``; returns (bytes, finish reason "stop" or "length").

    "length" also when the token LM's context is full: the bytes drawn so far are
    returned (the last one was drawn from an exact distribution; the one after it would
    need a token past the context). ``generator`` is the ``torch.Generator`` sampling draws
    from (a decoder passes its request's, see :meth:`tokensmith.Decoder.begin`); greedy
    decoding (temperature 0) draws nothing."""
    state = blm.start(prompt)
    out = bytearray()
    while len(out) < max_new_bytes:
        b = pick_byte(state.logprobs, temperature, top_p, generator)
        if b == BYTE_EOS:
            return bytes(out), "stop"
        out.append(b)
        if len(out) < max_new_bytes:
            try:
                state = blm.advance(state, b)
            except ContextLengthError:
                break
    return bytes(out), "length"


@attrs.define
class ByteDecoder(Decoder):
    """Decodes byte by byte from the exact next-byte distribution of the pipeline's LM.

    The prompt is used as bytes, so it may end mid-word or mid-identifier
    ("def fibon"): covers of its last pre-token are summed, no token healing is
    needed. ``Generation.ids`` is empty (a byte decoder emits bytes, not one
    tokenization); counters give ``lm_calls`` and ``bytes``.
    """

    name = "byteprob"

    meaning: Meaning = attrs.field(
        default="canonical", validator=check_meaning,
        metadata={"doc": "canonical-local (alias canonical): valid encodings, masked and renormalized "
                  "per step "
                  "(the paper's); canonical-global: the raw model conditioned on canonical covers; marginal: "
                  "every tokenization"})
    temperature: float = attrs.field(default=0.0, validator=non_negative,
                                     metadata={"doc": "0 = greedy byte; else temperature on bytes"})
    top_p: float = attrs.field(default=1.0, validator=probability, metadata={"doc": "nucleus mass on bytes"})
    max_new_bytes: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive_int),
        metadata={"doc": f"byte budget (None: {BYTES_PER_TOKEN} x max_new_tokens); "
                  "max_new_tokens=0 still generates nothing"})
    max_covers: int = attrs.field(default=MAX_COVERS, validator=positive_int, metadata={
        "doc": "bound on the token sequences of a cover set (ResourceLimitError beyond it)"})
    max_exact_covers: int = attrs.field(default=MAX_EXACT_COVERS, validator=positive_int, metadata={
        "doc": "bound on the expanded covers ending on a byte boundary (each: a forward and a "
               "vocabulary row)"})
    tolerance: float = attrs.field(default=TOLERANCE, validator=check_tolerance, metadata={
        "doc": "certified bound on |error| per byte probability; forwards of covers with a smaller share are "
               "deferred (0: every forward, exact)"})
    max_memory: int = attrs.field(default=MAX_MEMORY, validator=positive_int, metadata={
        "doc": "bytes of tensors a cover set may hold, plus its next forward's batch "
               "(ResourceLimitError beyond)"})
    invalid_utf8: InvalidUtf8 = attrs.field(
        default="unjudged", validator=check_choice(INVALID_UTF8), metadata={
        "doc": "canonical meanings: bytes that are not (yet) UTF-8 text are unjudged (valid) or invalid"})
    specials: Specials = attrs.field(default="error", validator=check_choice(SPECIALS), metadata={
        "doc": "special-token text in a plain prompt: error, or parse (the part up to the last one becomes "
               "the context); a TrustedText prompt is always parsed"})
    prefetch: int = attrs.field(default=PREFETCH, validator=non_negative_int, metadata={
        "doc": "top covers whose byte-prefix tokens are read ahead in the batch of a needed forward (fewer "
               "forward calls, same result; 0: off)"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)
    _byte_lms: dict[Any, ByteProbLM] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        tokenizer = self.ctx.tokenizer if self.ctx is not None else None
        if tokenizer is not None:
            try:
                check_byte_tokenizer(tokenizer, f"decoder '{self.name}'")
            except ByteViewError as err:  # at build time this is a pairing problem of the pipeline
                raise IncompatibleComponentsError(err.message, component=err.component,
                                                  hint="use the model's own byte-level BPE or byte-fallback "
                                                  "tokenizer") from err

    def byte_lm(self, lm: LanguageModel) -> ByteProbLM:
        """The :class:`ByteProbLM` over ``lm``, built once per LM (its tables cost a vocabulary pass)."""
        key = id(lm)
        if key not in self._byte_lms or self._byte_lms[key].lm is not lm:
            self._byte_lms[key] = ByteProbLM(
                lm, meaning=self.meaning, max_covers=self.max_covers, max_exact_covers=self.max_exact_covers,
                tolerance=self.tolerance, max_memory=self.max_memory, invalid_utf8=self.invalid_utf8,
                specials=self.specials, prefetch=self.prefetch)
        return self._byte_lms[key]

    def _parsing(self, blm: ByteProbLM) -> ByteProbLM:
        key = ("parse", id(blm.lm))
        if key not in self._byte_lms or self._byte_lms[key].lm is not blm.lm:
            self._byte_lms[key] = ByteProbLM(
                blm.lm, meaning=self.meaning, max_covers=self.max_covers,
                max_exact_covers=self.max_exact_covers,
                tolerance=self.tolerance, max_memory=self.max_memory, invalid_utf8=self.invalid_utf8,
                specials="parse", prefetch=self.prefetch)
        return self._byte_lms[key]

    def generate(self, lm: LanguageModel, prompt: str, *, max_new_tokens: int = 32,
                 constraint=None, seed: int | None = None) -> Generation:
        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        budget = (self.max_new_bytes or BYTES_PER_TOKEN * max_new_tokens) if max_new_tokens else 0
        out, finish = b"", "length"
        if budget:
            blm = self.byte_lm(lm)
            data = prompt.encode("utf-8")
            if isinstance(prompt, TrustedText):  # a chat template's markers are control tokens: the context
                blm = self._parsing(blm)
            out, finish = generate_bytes(blm, data, budget, temperature=self.temperature, top_p=self.top_p,
                                         generator=request.generator)
        return request.generation((), out, finish_reason=finish, counters={"bytes": len(out)})

