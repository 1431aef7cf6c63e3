"""KL3M tokenizer trainers (Bommarito, Katz, Bommarito, arXiv 2503.17247, section "Tokenizer
Design") on Hugging Face ``tokenizers``, through ``tokensmith.train_tokenizer``.

``kl3m-bpe`` is the domain BPE recipe: byte-level BPE, NFKC (and Lowercase for the uncased
variant), ``min_frequency = 10``, the custom token groups reserved in the vocabulary before
training and matched before the model (so each is one id), special tokens for causal and masked
LMs, and the vocabulary padded to an exact power of two with whitespace combinations when BPE
stops early ("Power-of-2 Padding").

``kl3m-char`` is the character tokenizer recipe: the same byte-level BPE with the merged tokens'
length capped (``max_token_length = max_chars + 1`` in ``tokenizers``' terms, which keeps tokens
of at most ``max_chars`` symbols: 3 for the 4k and 8k vocabularies, 4 for the 16k one) and the
whole initial alphabet forced, so a one-character edit can only move the boundaries near it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import attrs

from tokensmith import (
    ConfigError,
    HFTokenizer,
    ParameterTypeError,
    TokenizerTrainer,
    non_negative_int,
    positive_int,
    train_tokenizer,
)

from .custom_tokens import GROUPS, custom_tokens, whitespace_combinations

#: the paper's special tokens, for both causal (start/end/pad) and masked LMs (sep/cls/mask)
SPECIAL_TOKENS = ("<|start|>", "<|end|>", "<|pad|>", "<|unk|>", "<|sep|>", "<|cls|>", "<|mask|>")
#: the character tokenizers' sizes and their maximum token length (section "Character Tokenizers")
CHAR_MAX_CHARS = {4096: 3, 8192: 3, 16384: 4}
#: the byte-level alphabet: every byte value is one base token
BYTES = 256


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _flag(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise ParameterTypeError(f"{attribute.name} must be true or false, got {value!r}")


def _token_list(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise ParameterTypeError(f"{attribute.name} must be a list of non-empty strings, got {value!r:.80}")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ConfigError(f"{attribute.name} lists {', '.join(map(repr, repeated))} more than once")


def _groups(instance: Any, attribute: Any, value: Any) -> None:
    _token_list(instance, attribute, value)
    unknown = [g for g in value if g not in GROUPS]
    if unknown:
        raise ConfigError(
            f"{attribute.name}: unknown group(s) {', '.join(map(repr, unknown))}; "
            f"the groups are {', '.join(GROUPS)}"
        )


def _optional_token(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ParameterTypeError(f"{attribute.name} must be a token string or None, got {value!r}")


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@attrs.define(kw_only=True)
class _KL3MTrainer(TokenizerTrainer):
    """What both recipes share: the byte-level NFKC pipeline, special tokens and their roles,
    the padding to a power of two."""

    name: ClassVar[str] = "kl3m"

    vocab_size: int = attrs.field(
        default=32768,
        validator=positive_int,
        metadata=_doc(
            "the vocabulary's size, special, byte, custom and padding tokens included (a power of two "
            "when pad_to_power_of_two)"
        ),
    )
    min_frequency: int = attrs.field(
        default=10,
        validator=non_negative_int,
        metadata=_doc("a pair seen fewer times is never merged (the paper: 10)"),
    )
    cased: bool = attrs.field(
        default=True,
        validator=_flag,
        metadata=_doc("false: the uncased variant (Lowercase after NFKC; custom tokens lower-cased)"),
    )
    special_tokens: tuple[str, ...] = attrs.field(
        default=SPECIAL_TOKENS,
        converter=_tuple,
        validator=_token_list,
        metadata=_doc("control tokens, ids 0, 1, ... in this order (the paper's, for causal and masked LMs)"),
    )
    bos_token: str | None = attrs.field(
        default="<|start|>", validator=_optional_token, metadata=_doc("the special token that begins a text")
    )
    eos_token: str | None = attrs.field(
        default="<|end|>", validator=_optional_token, metadata=_doc("the special token that ends a text")
    )
    pad_token: str | None = attrs.field(
        default="<|pad|>", validator=_optional_token, metadata=_doc("the padding token")
    )
    unk_token: str | None = attrs.field(
        default="<|unk|>",
        validator=_optional_token,
        metadata=_doc("the unknown token's role (byte-level BPE never needs it: every byte is a token)"),
    )
    pad_to_power_of_two: bool = attrs.field(
        default=True,
        validator=_flag,
        metadata=_doc("when BPE stops before vocab_size, add whitespace combinations until it is reached"),
    )

    def __attrs_post_init__(self) -> None:
        try:
            self.check_parameters(attrs.asdict(self, recurse=False))
        except ConfigError as err:
            raise ConfigError(err.message, component=self.component, hint=err.hint) from None

    @property
    def component(self) -> str:
        return f"tokenizer_trainer '{self.name}'"

    @classmethod
    def check_parameters(cls, values: dict[str, Any]) -> None:
        cls.check_special_roles(values)
        if values["pad_to_power_of_two"] and not is_power_of_two(values["vocab_size"]):
            below = 2 ** int(math.log2(values["vocab_size"]))
            raise ConfigError(
                f"vocab_size {values['vocab_size']} is not a power of two",
                hint=f"use {below} or {below * 2}, or pad_to_power_of_two = false",
            )
        floor = cls._floor(values)
        if values["vocab_size"] < floor:
            raise ConfigError(
                f"vocab_size {values['vocab_size']} is below the {floor} ids this recipe needs "
                f"before learning anything ({cls._floor_reason(values)})",
                hint=f"set vocab_size >= {floor}" + cls._floor_fix(),
            )

    @classmethod
    def _floor(cls, values: dict[str, Any]) -> int:
        return BYTES + len(values["special_tokens"]) + 1

    @classmethod
    def _floor_reason(cls, values: dict[str, Any]) -> str:
        return f"{BYTES} bytes and {len(values['special_tokens'])} special tokens"

    @classmethod
    def _floor_fix(cls) -> str:
        return ""

    # -- the pipeline ------------------------------------------------------------------
    def _added(self) -> list[str]:
        """Tokens added to the vocabulary before padding (the custom tokens)."""
        return []

    def _max_chars(self) -> int | None:
        return None

    def _pad_length(self) -> int | None:
        """The longest padding token (None: as long as needed)."""
        return self._max_chars()

    def _backend(self) -> Any:
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

        backend = Tokenizer(models.BPE())
        steps = [normalizers.NFKC()] + ([] if self.cased else [normalizers.Lowercase()])
        backend.normalizer = normalizers.Sequence(steps)
        # no prefix space: a text's first word is spelled as typed (the paper's ByteLevelBPETokenizer)
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        backend.decoder = decoders.ByteLevel()
        return backend

    def _trainer(self) -> Any:
        from tokenizers import pre_tokenizers, trainers

        max_chars = self._max_chars()
        return trainers.BpeTrainer(
            # the custom tokens' ids are reserved before training: BPE learns the rest
            vocab_size=self.vocab_size - len(self._added()),
            min_frequency=self.min_frequency,
            special_tokens=list(self.special_tokens),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            # tokenizers keeps merges of fewer than max_token_length symbols (checked in the tests)
            max_token_length=None if max_chars is None else max_chars + 1,
            show_progress=False,
        )

    def _finish(self, backend: Any) -> Any:
        from tokenizers import AddedToken

        added = self._added()
        if added:
            # matched in the normalized text before the model, so each is one id wherever it occurs;
            # one the model learned anyway keeps its id (tokenizers reuses it)
            backend.add_tokens([AddedToken(t, normalized=True, special=False) for t in added])
        if self.pad_to_power_of_two:
            self._pad(backend)
        return backend

    def _pad(self, backend: Any) -> None:
        """Section "Power-of-2 Padding": whitespace combinations until vocab_size is reached."""
        from tokenizers import AddedToken

        vocab = backend.get_vocab(with_added_tokens=True)
        missing = self.vocab_size - backend.get_vocab_size(with_added_tokens=True)
        if missing <= 0:
            return
        pads: list[str] = []
        for token in whitespace_combinations(self._pad_length()):
            if token not in vocab:
                pads.append(token)
                if len(pads) == missing:
                    break
        if len(pads) < missing:
            raise ConfigError(
                f"BPE stopped {missing} ids short of vocab_size = {self.vocab_size} (min_frequency = "
                f"{self.min_frequency}) and only {len(pads)} whitespace combinations of at most "
                f"{self._max_chars()} characters are left to pad with",
                component=self.component,
                hint="train on more text, lower min_frequency, set pad_to_power_of_two = false"
                + (" or pad_beyond_max_chars = true" if isinstance(self, KL3MChar) else ""),
            )
        backend.add_tokens([AddedToken(t, normalized=True, special=False) for t in pads])

    def train(self, texts: Iterable[str], *, progress: bool = True) -> HFTokenizer:
        return train_tokenizer(
            self._backend(),
            self._trainer(),
            texts,
            progress=progress,
            name=self.name,
            component=self.component,
            max_vocab_size=self.vocab_size,
            finish=self._finish,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            pad_token=self.pad_token,
            unk_token=self.unk_token,
        )


@attrs.define(kw_only=True)
class KL3MBPE(_KL3MTrainer):
    """The KL3M domain BPE: byte-level BPE with NFKC, min_frequency 10, the custom token groups
    (one id each), the paper's special tokens and a vocabulary padded to a power of two."""

    name: ClassVar[str] = "kl3m-bpe"

    custom_groups: tuple[str, ...] = attrs.field(
        default=GROUPS,
        converter=_tuple,
        validator=_groups,
        metadata=_doc("custom token groups added before training: " + ", ".join(GROUPS)),
    )
    extra_tokens: tuple[str, ...] = attrs.field(
        default=(),
        converter=_tuple,
        validator=_token_list,
        metadata=_doc("further custom tokens of your own (one id each)"),
    )

    @classmethod
    def check_parameters(cls, values: dict[str, Any]) -> None:
        clash = sorted(set(values["special_tokens"]) & set(cls._custom(values)))
        if clash:
            raise ConfigError(
                f"{', '.join(map(repr, clash))} is both a special and a custom token",
                hint="a token is either a control token (special) or text (custom)",
            )
        super().check_parameters(values)

    @staticmethod
    def _custom(values: dict[str, Any]) -> list[str]:
        tokens = set(custom_tokens(values["custom_groups"], cased=values["cased"]))
        extra = [t if values["cased"] else t.lower() for t in values["extra_tokens"]]
        return sorted(tokens | set(extra))

    @classmethod
    def _floor(cls, values: dict[str, Any]) -> int:
        return super()._floor(values) + len(cls._custom(values))

    @classmethod
    def _floor_reason(cls, values: dict[str, Any]) -> str:
        return f"{super()._floor_reason(values)}, {len(cls._custom(values))} custom tokens"

    @classmethod
    def _floor_fix(cls) -> str:
        return " or include fewer custom_groups"

    def custom_tokens(self) -> list[str]:
        """The custom tokens this recipe adds (after case folding), sorted."""
        return self._custom(attrs.asdict(self, recurse=False))

    def _added(self) -> list[str]:
        return self.custom_tokens()


def _char_vocab(instance: Any, attribute: Any, value: Any) -> None:
    positive_int(instance, attribute, value)
    if value not in CHAR_MAX_CHARS:
        raise ConfigError(
            f"{attribute.name} must be one of {', '.join(map(str, CHAR_MAX_CHARS))} (the "
            f"paper's character tokenizers), got {value}"
        )


@attrs.define(kw_only=True)
class KL3MChar(_KL3MTrainer):
    """A KL3M character tokenizer: byte-level BPE whose tokens are at most 3 (4k, 8k) or 4 (16k)
    symbols long, every byte a base token, padded to its power-of-two size with short whitespace
    combinations."""

    name: ClassVar[str] = "kl3m-char"

    vocab_size: int = attrs.field(
        default=4096,
        validator=_char_vocab,
        metadata=_doc("4096, 8192 or 16384 (special, byte and padding tokens included)"),
    )
    min_frequency: int = attrs.field(
        default=1,
        validator=non_negative_int,
        metadata=_doc(
            "a pair seen fewer times is never merged (1: the authors' character training script's default; "
            "with 10 a 13 MB corpus has too few frequent short tokens to fill 8k)"
        ),
    )
    max_chars: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(positive_int),
        metadata=_doc(
            "the longest token, in byte-level symbols (UTF-8 bytes); None: the paper's, 3 for 4k "
            "and 8k, 4 for 16k"
        ),
    )

    pad_beyond_max_chars: bool = attrs.field(
        default=False,
        validator=_flag,
        metadata=_doc(
            "when the whitespace combinations of at most max_chars cannot fill vocab_size, pad with longer "
            "whitespace runs (as the paper's published character tokenizers do) instead of refusing"
        ),
    )

    def _max_chars(self) -> int:
        return self.max_chars if self.max_chars is not None else CHAR_MAX_CHARS[self.vocab_size]

    def _pad_length(self) -> int | None:
        return None if self.pad_beyond_max_chars else self._max_chars()
