"""Supertoken learning: a byte-level BPE whose tokens may span several words.

TokenAdapt: Sharthak, Pahalwan, Kamath & Shirawalmath, arXiv 2505.09738 (section
"Supertokens"; the authors' SuperTokenizer training set-up).

An ordinary byte-level BPE pre-tokenizes on words (the GPT-2 regex), so no merge can cross a
space: "of the" is two tokens forever. Supertoken learning replaces the word pre-tokenization
by a *probabilistic* one during training: every training text is cut into chunks whose
lengths in characters are drawn from a chunk-length distribution (the paper: a discretised
Gaussian over 4-23 characters, most mass at 10-15), the cuts fall anywhere (mid-word, at a
space), and BPE learns its merges inside the chunks. Since a chunk usually holds a word
boundary, frequent multi-word strings ("ed to the", "tion of the") become tokens. At
inference there is no pre-tokenization at all (byte-level, no regex): the whole text is one
pre-token and the learned merges, applied in rank order, form supertokens wherever they fit.

Otherwise a byte-level BPE (GPT-2's byte alphabet): all 256 bytes in the alphabet (every text
is representable, decoding is lossless), ``vocab_size`` counts every id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any

import attrs

from tokensmith import (
    ConfigError,
    HFTokenizer,
    InputError,
    TokenizerTrainer,
    non_negative_int,
    positive_int,
    train_tokenizer,
)

#: the paper's chunk-length distribution (characters, inclusive ranges, probabilities): a
#: Gaussian discretised into two-character bins, mean about 13 characters. The authors' config
#: lists the weights .044 .091 .146 .171 .185 .171 .146 .091 .044 .011, which sum to 1.1;
#: these are those weights divided by 1.1 (same shape, a distribution).
PAPER_CHUNK_LENGTHS = ((4, 5, 0.04), (6, 7, 0.0827), (8, 9, 0.1327), (10, 11, 0.1555), (12, 13, 0.1682),
                       (14, 15, 0.1555), (16, 17, 0.1327), (18, 19, 0.0827), (20, 21, 0.04), (22, 23, 0.01))


def _bins(value: Any) -> Any:
    """TOML/JSON lists of ``[min, max, probability]`` become tuples; anything else is left
    to the validator."""
    if isinstance(value, list | tuple) and all(isinstance(v, list | tuple) for v in value):
        return tuple(tuple(v) for v in value)
    return value


def _chunk_lengths(instance: Any, attribute: Any, value: Any) -> None:
    """A non-empty list of ``(min, max, probability)`` with ``1 <= min <= max`` integers and
    probabilities >= 0 summing to 1 (never renormalised silently)."""
    if not isinstance(value, tuple) or not value:
        raise ConfigError(f"{attribute.name} must be a non-empty list of [min, max, probability], "
                          f"got {value!r}")
    for item in value:
        ok = (len(item) == 3 and all(isinstance(v, int) and not isinstance(v, bool) for v in item[:2])
              and isinstance(item[2], int | float) and not isinstance(item[2], bool))
        if not ok:
            raise ConfigError(f"{attribute.name}: {list(item)!r} is not [min, max, probability] "
                              "(two integers, a number)")
        low, high, p = item
        if not 1 <= low <= high:
            raise ConfigError(f"{attribute.name}: the range {low}-{high} needs 1 <= min <= max")
        if not (p >= 0 and math.isfinite(p)):
            raise ConfigError(f"{attribute.name}: probability {p!r} of {low}-{high} must be finite and >= 0")
    total = sum(item[2] for item in value)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ConfigError(f"{attribute.name}: the probabilities sum to {total:.6g}, not 1",
                          hint="give a distribution over chunk lengths (probabilities summing to 1)")


def sample_chunks(text: str, chunk_lengths: tuple[tuple[int, int, float], ...],
                  rng: random.Random) -> Iterator[str]:
    """``text`` cut into consecutive chunks whose character lengths follow ``chunk_lengths``:
    a range drawn by its probability, a length uniform in it (clipped to what is left); a
    remainder shorter than the shortest range is the last chunk. ``"".join`` gives ``text``
    back: nothing is dropped or reordered."""
    shortest = min(low for low, _, _ in chunk_lengths)
    ranges = [(low, high) for low, high, _ in chunk_lengths]
    weights = [p for _, _, p in chunk_lengths]
    start = 0
    while start < len(text):
        left = len(text) - start
        if left <= shortest:
            size = left
        else:
            low, high = rng.choices(ranges, weights=weights, k=1)[0]
            size = rng.randint(min(low, left), min(high, left))
        yield text[start:start + size]
        start += size


def _specials(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value) \
            or len(set(value)) != len(value):
        raise ConfigError(f"{attribute.name} must be a list of distinct non-empty strings, got {value!r}")


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@attrs.define
class SupertokenBPE(TokenizerTrainer):
    """Supertoken learning (TokenAdapt): a byte-level BPE trained on texts cut at random
    character positions into chunks of sampled length, so merges cross word boundaries;
    encoding applies the merges to the whole text (no word pre-tokenization)."""

    name = "supertoken-bpe"
    deterministic = True

    vocab_size: int = attrs.field(default=32000, validator=positive_int, metadata={
        "doc": "the trained vocabulary's size at most (the 256 bytes and the special tokens included)"})
    chunk_lengths: tuple[tuple[int, int, float], ...] = attrs.field(
        default=PAPER_CHUNK_LENGTHS, converter=_bins, validator=_chunk_lengths, metadata={
            "doc": "the chunk-length distribution of the probabilistic pre-tokenization during training: "
                   "[min, max, probability] character ranges, probabilities summing to 1 (default: the "
                   "paper's Gaussian over 4-23 characters)"})
    max_token_length: int | None = attrs.field(
        default=30, validator=attrs.validators.optional(positive_int), metadata={
            "doc": "no token longer than this many characters of the byte alphabet (the paper: 30)"})
    min_frequency: int = attrs.field(default=2, validator=non_negative_int, metadata={
        "doc": "a pair seen fewer times is never merged"})
    special_tokens: tuple[str, ...] = attrs.field(default=("<|endoftext|>",), converter=_tuple,
                                                  validator=_specials, metadata={
                                                      "doc": "control tokens, ids 0, 1, ... in this order"})
    eos_token: str | None = attrs.field(default="<|endoftext|>", metadata={
        "doc": "the special token that ends a text (one of special_tokens, or None)"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "seed of the chunking (the same texts and seed give the same tokenizer)"})

    def __attrs_post_init__(self) -> None:
        if self.eos_token is not None and self.eos_token not in self.special_tokens:
            raise ConfigError(f"eos_token {self.eos_token!r} is not one of special_tokens "
                              f"{list(self.special_tokens)}", component=self._component,
                              hint="add it to special_tokens or set eos_token = None")
        floor = 256 + len(self.special_tokens)
        if self.vocab_size < floor:
            raise ConfigError(f"vocab_size {self.vocab_size} is below the {floor} ids this trainer needs "
                              f"(256 bytes and {len(self.special_tokens)} special token(s))",
                              component=self._component, hint=f"set vocab_size >= {floor}")

    @property
    def _component(self) -> str:
        return f"tokenizer_trainer '{self.name}'"

    def _pipeline(self) -> tuple[Any, Any]:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        backend = Tokenizer(models.BPE())
        # Byte-level without the word regex: during training each sampled chunk is one
        # pre-token (texts are fed chunk by chunk), at inference the whole text is one; the
        # merges alone decide the boundaries. All 256 bytes are in the alphabet: lossless.
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size, min_frequency=self.min_frequency,
            special_tokens=list(self.special_tokens), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            max_token_length=self.max_token_length, show_progress=False)
        return backend, trainer

    def chunks(self, texts: Iterable[str]) -> Iterator[str]:
        """The training stream: every text cut by :func:`sample_chunks` with one generator
        seeded by ``seed`` (a fresh one per call: determinism). Non-``str`` items are passed on
        unchanged for ``train_tokenizer`` to refuse with its own error."""
        rng = random.Random(self.seed)
        for text in texts:
            if isinstance(text, str):
                yield from sample_chunks(text, self.chunk_lengths, rng)
            else:
                yield text

    def train(self, texts: Iterable[str], *, progress: bool = True) -> HFTokenizer:
        # checked here, before chunking: a lone str would be chunked as if it were the corpus
        if isinstance(texts, str | bytes | bytearray) or not isinstance(texts, Iterable) \
                or isinstance(texts, Set | Mapping):
            raise InputError(f"expected an iterable of texts, got {type(texts).__name__}",
                             component=self._component,
                             hint="pass a list or generator of str (a single text: [text])")
        backend, trainer = self._pipeline()
        return train_tokenizer(backend, trainer, self.chunks(texts), progress=progress, name=self.name,
                               component=self._component, max_vocab_size=self.vocab_size,
                               eos_token=self.eos_token)


ASCII_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")


def spans_words(token: bytes) -> bool:
    """Whether a token's bytes hold (parts of) two words: a non-space byte, whitespace, then a
    non-space byte again, as in b"of the" or b"d to" (b" the", a word with its leading space,
    is an ordinary token of a GPT-2-style BPE; so is a run of spaces)."""
    state = 0  # 0: no text yet, 1: text seen, 2: whitespace after text
    for b in token:
        if b in ASCII_WHITESPACE:  # bytes, not characters: 0xA0 inside "à" (C3 A0) is no space
            state = 2 if state else 0
        elif state == 2:
            return True
        else:
            state = 1
    return False
