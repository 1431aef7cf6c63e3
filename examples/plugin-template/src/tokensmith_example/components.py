"""The components: a text stage and a constraint."""

from __future__ import annotations

import unicodedata

import attrs

from tokensmith import BuildContext, Constraint, TokenizerStage


@attrs.frozen
class NFKCConfig:
    casefold: bool = False


class NFKC(TokenizerStage):
    """NFKC-normalize text (optionally case-folded) before it is tokenized."""

    name = "nfkc"

    def __init__(self, casefold: bool = False) -> None:
        self.casefold = casefold

    @classmethod
    def from_config(cls, config: NFKCConfig, ctx: BuildContext) -> NFKC:
        return cls(config.casefold)

    def normalize(self, text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        return text.casefold() if self.casefold else text


def _positive(instance, attribute, value):
    if value < 0:
        raise ValueError(f"limit must be >= 0, got {value}")


@attrs.frozen
class MaxBytesConfig:
    limit: int = attrs.field(validator=_positive)


class MaxBytes(Constraint):
    """Strings of at most ``limit`` bytes: a prefix is viable while it fits."""

    name = "max-bytes"

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    @classmethod
    def from_config(cls, config: MaxBytesConfig, ctx: BuildContext) -> MaxBytes:
        return cls(config.limit)

    def _allows(self, prefix: bytes) -> bool:
        return len(prefix) <= self.limit
