"""Tokenizer trainers on Hugging Face ``tokenizers``: byte-level BPE, character-level BPE
(with byte fallback), Unigram and WordPiece.

BPE: Sennrich, Haddow, Birch, "Neural Machine Translation of Rare Words with Subword Units"
(ACL 2016); byte-level BPE as in GPT-2 (Radford et al. 2019). Unigram: Kudo, "Subword
Regularization" (ACL 2018). WordPiece: Schuster & Nakajima (ICASSP 2012), as in BERT.

Each trainer only assembles a ``tokenizers`` pipeline (normalizer, pre-tokenizer, model,
decoder) and its trainer; ``tokensmith.train_tokenizer`` streams the texts, shows progress
and returns an ``HFTokenizer`` whose byte view is verified. The pipelines are chosen so the
byte view is exact: byte-level BPE over all 256 bytes (every text is representable), and
SentencePiece-style models whose normalizer prepends "▁" to every text and spells spaces
"▁" (lossless, unlike a Metaspace pre-tokenizer that skips the prefix before a space).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable
from typing import Any, Literal

import attrs

from tokensmith import (
    ConfigError,
    HFTokenizer,
    ParameterTypeError,
    ResourceLimitError,
    TokenizerTrainer,
    non_negative_int,
    positive,
    positive_int,
    train_tokenizer,
)

#: the byte tokens of a byte-fallback vocabulary, in byte order
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))
NORMALIZERS = ("none", "nfc", "nfkc")


def _tuple(value: Any) -> Any:
    """A TOML/Python list becomes a tuple; anything else is left to the validator."""
    return tuple(value) if isinstance(value, list) else value


def _token_list(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{attribute.name} must be a list of non-empty strings, got {value!r}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ConfigError(f"{attribute.name} lists {', '.join(map(repr, repeated))} more than once")


#: the largest vocab_size a trainer accepts: 64 times the largest published LM vocabulary
#: (262,144). tokenizers reserves its tables for vocab_size up front (about 70 bytes an id),
#: so vocab_size = 10**9 asks for 70 GB and aborts the process instead of raising.
MAX_VOCAB_SIZE = 2**24


def _vocab_size(instance: Any, attribute: Any, value: Any) -> None:
    positive_int(instance, attribute, value)
    if value > MAX_VOCAB_SIZE:
        raise ResourceLimitError(f"{attribute.name} {value} is above the {MAX_VOCAB_SIZE:,} ids a trainer "
                                 "accepts (tokenizers reserves memory for every id before training)",
                                 hint=f"set vocab_size <= {MAX_VOCAB_SIZE}")


#: a positive int, or None (the default)
_OPTIONAL_POSITIVE = attrs.validators.optional(positive_int)


def _flag(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise ParameterTypeError(f"{attribute.name} must be true or false, got {value!r}")


def _normalizer(instance: Any, attribute: Any, value: Any) -> None:
    if value not in NORMALIZERS:
        raise ConfigError(f"{attribute.name} must be one of {', '.join(map(repr, NORMALIZERS))}, "
                          f"got {value!r}")


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


def _specials(*default: str) -> Any:
    return attrs.field(default=default, converter=_tuple, validator=_token_list,
                       metadata=_doc("control tokens, ids 0, 1, ... in this order"))


def _normalizer_field() -> Any:
    return attrs.field(default="none", validator=_normalizer, metadata=_doc(
        '"none" (lossless), "nfc" or "nfkc" Unicode normalization before tokenizing (lossy)'))


@attrs.define
class _HFTrainer(TokenizerTrainer):
    """What every trainer here shares: a vocabulary size, special tokens and their roles."""

    name = "trainer"
    #: the number of ids the trainer itself adds besides the learned tokens
    reserved = 0

    vocab_size: int = attrs.field(default=32000, validator=_vocab_size, metadata=_doc(
        "the trained vocabulary's size at most (special, byte and added tokens included)"))
    special_tokens: tuple[str, ...] = _specials()
    bos_token: str | None = attrs.field(default=None, metadata=_doc("the special token that begins a text"))
    eos_token: str | None = attrs.field(default=None, metadata=_doc("the special token that ends a text"))
    pad_token: str | None = attrs.field(default=None, metadata=_doc("the special token used for padding"))

    def __attrs_post_init__(self) -> None:
        try:
            self.check_parameters(attrs.asdict(self, recurse=False))
        except ConfigError as err:
            raise ConfigError(err.message, component=self._component, hint=err.hint) from None

    @property
    def _component(self) -> str:
        return f"tokenizer_trainer '{self.name}'"

    @classmethod
    def check_parameters(cls, values: dict[str, Any]) -> None:
        """The named tokens are special tokens; the vocabulary holds everything reserved."""
        cls.check_special_roles(values)
        specials = tuple(values["special_tokens"])
        clash = sorted(set(specials) & set(values.get("added_tokens", ())))
        if clash:
            raise ConfigError(f"{', '.join(map(repr, clash))} is both a special and an added token",
                              hint="a token is either a control token (special) or text (added)")
        floor = cls._floor(values)
        if values["vocab_size"] < floor:
            raise ConfigError(f"vocab_size {values['vocab_size']} is below the {floor} ids this trainer "
                              "needs before learning anything (" + cls._floor_reason(values) + ")",
                              hint=f"set vocab_size >= {floor}")

    @classmethod
    def _floor(cls, values: dict[str, Any]) -> int:
        return len(values["special_tokens"]) + cls.reserved + 1

    @classmethod
    def _floor_reason(cls, values: dict[str, Any]) -> str:
        return f"{len(values['special_tokens'])} special token(s) and one symbol"

    def _token_names(self) -> dict[str, str | None]:
        return {"bos_token": self.bos_token, "eos_token": self.eos_token, "pad_token": self.pad_token,
                "unk_token": getattr(self, "unk_token", None)}

    @abstractmethod
    def _pipeline(self) -> tuple[Any, Any]:
        """The untrained ``tokenizers.Tokenizer`` and its ``tokenizers`` trainer."""

    def _finish(self, backend: Any) -> Any:
        return backend

    def train(self, texts: Iterable[str], *, progress: bool = True) -> HFTokenizer:
        backend, trainer = self._pipeline()
        return train_tokenizer(backend, trainer, texts, progress=progress, name=self.name,
                               component=self._component, max_vocab_size=self.vocab_size,
                               finish=self._finish, **self._token_names())


def _unicode_steps(normalizer: str, lowercase: bool) -> list[Any]:
    from tokenizers import normalizers

    steps = {"none": [], "nfc": [normalizers.NFC()], "nfkc": [normalizers.NFKC()]}[normalizer]
    return steps + ([normalizers.Lowercase()] if lowercase else [])


def _sequence(steps: list[Any]) -> Any:
    from tokenizers import normalizers

    return None if not steps else steps[0] if len(steps) == 1 else normalizers.Sequence(steps)


@attrs.define
class ByteLevelBPE(_HFTrainer):
    """Byte-level BPE (GPT-2): the GPT-2 pre-tokenization regex over the bytes of the text,
    an initial alphabet of all 256 bytes (every text is representable, nothing is unknown),
    merges learned until ``vocab_size``. ``added_tokens`` are plain-text tokens matched
    before the model (runs of spaces in code, say)."""

    name = "byte-level-bpe"
    reserved = 256

    special_tokens: tuple[str, ...] = _specials("<|endoftext|>")
    eos_token: str | None = attrs.field(default="<|endoftext|>",
                                        metadata=_doc("the special token that ends a text"))
    added_tokens: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_token_list,
        metadata=_doc("plain-text tokens matched in text before the model (not control tokens)"))
    min_frequency: int = attrs.field(default=2, validator=non_negative_int, metadata=_doc(
        "a pair seen fewer times is never merged"))
    max_token_length: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata=_doc(
        "no token longer than this many characters (of the byte alphabet)"))
    normalizer: Literal["none", "nfc", "nfkc"] = _normalizer_field()
    lowercase: bool = attrs.field(default=False, validator=_flag,
                                  metadata=_doc("lower-case text before tokenizing (lossy)"))

    @classmethod
    def _floor(cls, values: dict[str, Any]) -> int:
        return 256 + len(values["special_tokens"]) + len(values.get("added_tokens", ()))

    @classmethod
    def _floor_reason(cls, values: dict[str, Any]) -> str:
        return (f"256 bytes, {len(values['special_tokens'])} special and "
                f"{len(values.get('added_tokens', ()))} added token(s)")

    def _pipeline(self) -> tuple[Any, Any]:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        backend = Tokenizer(models.BPE())
        backend.normalizer = _sequence(_unicode_steps(self.normalizer, self.lowercase))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        backend.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size - len(self.added_tokens), min_frequency=self.min_frequency,
            special_tokens=list(self.special_tokens), initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            max_token_length=self.max_token_length, show_progress=False)
        return backend, trainer

    def _finish(self, backend: Any) -> Any:
        from tokenizers import AddedToken

        if self.added_tokens:  # matched in the raw text, as typed (normalized=False)
            backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in self.added_tokens])
        return backend


def _sentencepiece_style(normalizer: str, lowercase: bool) -> tuple[Any, Any]:
    """The normalizer and pre-tokenizer of a SentencePiece-style model: "▁" before every text
    and for every space, pre-tokens that start at a "▁"."""
    from tokenizers import normalizers, pre_tokenizers

    steps = _unicode_steps(normalizer, lowercase) + [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    return normalizers.Sequence(steps), pre_tokenizers.Split("▁", behavior="merged_with_next")


def _sentencepiece_decoder(byte_fallback: bool) -> Any:
    from tokenizers import decoders

    steps = [decoders.Replace("▁", " ")] + ([decoders.ByteFallback()] if byte_fallback else [])
    return decoders.Sequence([*steps, decoders.Fuse(), decoders.Strip(" ", 1, 0)])


def with_byte_fallback(backend: Any) -> Any:
    """A trained char-level BPE with the 256 byte tokens ``<0x00>``..``<0xFF>`` after its
    special tokens and ``byte_fallback`` on: a character outside the alphabet is spelled in
    bytes instead of the unknown token. No merge produces a byte token (a learned token that
    spells one is dropped), so text only reaches them through the fallback."""
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())
    model = spec["model"]
    added = {t["content"] for t in spec["added_tokens"]}
    order = sorted(model["vocab"], key=model["vocab"].get)
    reserved = set(BYTE_TOKENS)
    tokens = [t for t in order if t in added] + list(BYTE_TOKENS) \
        + [t for t in order if t not in added and t not in reserved]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for merge in model["merges"]:
        a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
        if a in vocab and b in vocab and a + b in vocab and a + b not in reserved:
            merges.append([a, b])
    model.update(vocab=vocab, merges=merges, byte_fallback=True)
    for token in spec["added_tokens"]:
        token["id"] = vocab[token["content"]]
    return Tokenizer.from_str(json.dumps(spec))


@attrs.define
class CharBPE(_HFTrainer):
    """Character-level BPE in the SentencePiece style (Llama 2): merges over characters
    within "▁"-prefixed words; with ``byte_fallback`` (default) a character outside the
    learned alphabet is spelled in byte tokens, so every text is representable."""

    name = "bpe"

    special_tokens: tuple[str, ...] = _specials("<unk>", "<s>", "</s>")
    bos_token: str | None = attrs.field(default="<s>", metadata=_doc("the special token that begins a text"))
    eos_token: str | None = attrs.field(default="</s>", metadata=_doc("the special token that ends a text"))
    unk_token: str = attrs.field(default="<unk>", metadata=_doc(
        "the special token for characters outside the alphabet (never produced with byte_fallback)"))
    byte_fallback: bool = attrs.field(default=True, validator=_flag, metadata=_doc(
        "add the 256 byte tokens <0x00>..<0xFF>: unseen characters are spelled in bytes"))
    min_frequency: int = attrs.field(default=2, validator=non_negative_int, metadata=_doc(
        "a pair seen fewer times is never merged"))
    limit_alphabet: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata=_doc(
        "keep at most this many characters, the most frequent (default: as many as vocab_size allows)"))
    max_token_length: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata=_doc(
        "no token longer than this many characters"))
    normalizer: Literal["none", "nfc", "nfkc"] = _normalizer_field()
    lowercase: bool = attrs.field(default=False, validator=_flag,
                                  metadata=_doc("lower-case text before tokenizing (lossy)"))

    @classmethod
    def _floor(cls, values: dict[str, Any]) -> int:
        return len(values["special_tokens"]) + (256 if values.get("byte_fallback", True) else 0) + 1

    @classmethod
    def _floor_reason(cls, values: dict[str, Any]) -> str:
        fallback = "256 byte tokens, " if values.get("byte_fallback", True) else ""
        return f"{fallback}{len(values['special_tokens'])} special token(s) and one character"

    def _pipeline(self) -> tuple[Any, Any]:
        from tokenizers import Tokenizer, models, trainers

        byte_ids = 256 if self.byte_fallback else 0
        learned = self.vocab_size - byte_ids  # the byte tokens are added after training
        room = learned - len(self.special_tokens)  # characters beyond it would overflow vocab_size
        backend = Tokenizer(models.BPE(unk_token=self.unk_token))
        backend.normalizer, backend.pre_tokenizer = _sentencepiece_style(self.normalizer, self.lowercase)
        backend.decoder = _sentencepiece_decoder(self.byte_fallback)
        trainer = trainers.BpeTrainer(
            vocab_size=learned, min_frequency=self.min_frequency, special_tokens=list(self.special_tokens),
            limit_alphabet=min(room, self.limit_alphabet or room), max_token_length=self.max_token_length,
            initial_alphabet=["▁"], show_progress=False)  # spaces are "▁": never left to the bytes
        return backend, trainer

    def _finish(self, backend: Any) -> Any:
        return with_byte_fallback(backend) if self.byte_fallback else backend


@attrs.define
class Unigram(_HFTrainer):
    """A Unigram language model over subwords (SentencePiece's default), trained by EM with
    pruning; SentencePiece-style "▁" words. Every character of the corpus is in the
    vocabulary; a character outside it is the unknown token (an error in strict encoding)."""

    name = "unigram"
    deterministic = False  # EM sums scores in hash-map order: the last bits vary between runs

    special_tokens: tuple[str, ...] = _specials("<unk>", "<s>", "</s>")
    bos_token: str | None = attrs.field(default="<s>", metadata=_doc("the special token that begins a text"))
    eos_token: str | None = attrs.field(default="</s>", metadata=_doc("the special token that ends a text"))
    unk_token: str = attrs.field(default="<unk>", metadata=_doc("the special token for unseen characters"))
    max_piece_length: int = attrs.field(default=16, validator=positive_int, metadata=_doc(
        "no piece longer than this many characters"))
    shrinking_factor: float = attrs.field(default=0.75, validator=positive, metadata=_doc(
        "the share of pieces kept at each pruning step, in (0, 1)"))
    n_sub_iterations: int = attrs.field(default=2, validator=positive_int, metadata=_doc(
        "EM iterations before each pruning step"))
    normalizer: Literal["none", "nfc", "nfkc"] = _normalizer_field()
    lowercase: bool = attrs.field(default=False, validator=_flag,
                                  metadata=_doc("lower-case text before tokenizing (lossy)"))

    @classmethod
    def check_parameters(cls, values: dict[str, Any]) -> None:
        super().check_parameters(values)
        if not 0 < values["shrinking_factor"] < 1:
            raise ConfigError(f"shrinking_factor must be in (0, 1), got {values['shrinking_factor']}")

    def _pipeline(self) -> tuple[Any, Any]:
        from tokenizers import Tokenizer, models, trainers

        backend = Tokenizer(models.Unigram())
        backend.normalizer, backend.pre_tokenizer = _sentencepiece_style(self.normalizer, self.lowercase)
        backend.decoder = _sentencepiece_decoder(False)
        trainer = trainers.UnigramTrainer(
            vocab_size=self.vocab_size, special_tokens=list(self.special_tokens), unk_token=self.unk_token,
            max_piece_length=self.max_piece_length, shrinking_factor=self.shrinking_factor,
            n_sub_iterations=self.n_sub_iterations, show_progress=False)
        return backend, trainer


@attrs.define
class WordPiece(_HFTrainer):
    """WordPiece as in BERT: the BERT normalizer and pre-tokenizer (words and punctuation),
    "##" marking a word's continuation. Lossy by design (whitespace is not kept)."""

    name = "wordpiece"
    deterministic = False  # "##" token ids follow hash-map order and break ties (tokenizers#1794)

    special_tokens: tuple[str, ...] = _specials("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    pad_token: str | None = attrs.field(default="[PAD]", metadata=_doc("the special token used for padding"))
    unk_token: str = attrs.field(default="[UNK]", metadata=_doc("the special token for unseen characters"))
    min_frequency: int = attrs.field(default=2, validator=non_negative_int, metadata=_doc(
        "a pair seen fewer times is never merged"))
    limit_alphabet: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata=_doc(
        "keep at most this many characters, the most frequent (default: as many as vocab_size allows)"))
    lowercase: bool = attrs.field(default=False, validator=_flag, metadata=_doc(
        "lower-case and strip accents (BERT uncased)"))

    def _pipeline(self) -> tuple[Any, Any]:
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        room = self.vocab_size - len(self.special_tokens)
        backend = Tokenizer(models.WordPiece(unk_token=self.unk_token))
        backend.normalizer = normalizers.BertNormalizer(lowercase=self.lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=self.vocab_size, min_frequency=self.min_frequency,
            special_tokens=list(self.special_tokens), limit_alphabet=min(room, self.limit_alphabet or room),
            show_progress=False)
        return backend, trainer
