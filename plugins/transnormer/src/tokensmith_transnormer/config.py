"""The TransNormer LM's parameters, declared once (no torch import: read at validation).

TransNormerLLM: Qin et al., "TransNormerLLM: A Faster and Better Large Language
Model with Improved TransNormer" / "Scaling TransNormer to 175 Billion
Parameters", arXiv 2307.14995.

:class:`TransNormerConfig` is what the ``nn.Module``\\ s of :mod:`.model` read, and its
fields are the parameters of the ``transnormer-lm`` architecture (which subclasses
it) and of the ``transnormer-lm`` model source (:func:`config_parameters`).
"""

from __future__ import annotations

import typing
from typing import Literal

import attrs

from tokensmith import ConfigError, Parameter, non_negative, parameters_of, positive_int

Decay = Literal["alibi", "paper"]
DECAY_FORMS: tuple[str, ...] = typing.get_args(Decay)


def as_tuple(value):
    """A list (from Python or TOML) as a tuple; anything else is left for the type check to name."""
    return tuple(value) if isinstance(value, list) else value


def _optional(validator):
    return attrs.validators.optional(validator)


_bool = attrs.validators.instance_of(bool)


@attrs.frozen
class TransNormerConfig:
    """A TransNormer LM (section 3 of the paper)."""

    vocab_size: int | None = attrs.field(default=None, validator=_optional(positive_int), metadata={
        "doc": "output rows; unset: the pipeline tokenizer's size"})
    width: int = attrs.field(default=128, validator=positive_int, metadata={"doc": "model width d"})
    layers: int = attrs.field(default=2, validator=positive_int, metadata={"doc": "TransNormer blocks"})
    heads: int = attrs.field(default=4, validator=positive_int, metadata={
        "doc": "attention heads (must divide width)"})
    block_size: int = attrs.field(default=256, validator=positive_int, metadata={
        "doc": "Lightning Attention's block size B (256 in the paper)"})
    sglu_hidden: int | None = attrs.field(default=None, validator=_optional(positive_int), metadata={
        "doc": "SGLU hidden size; unset: 2 * width"})
    decay: Decay = attrs.field(default="alibi", validator=attrs.validators.in_(DECAY_FORMS), metadata={
        "doc": "decay formula: 'alibi' (the released code) or 'paper' (the paper's text)"})
    lrpe: bool = attrs.field(default=False, validator=_bool, metadata={"doc": "use LRPE"})
    lrpe_layers: tuple[int, ...] | None = attrs.field(default=None, converter=as_tuple, metadata={
        "doc": "the layers (0-based) with LRPE; unset: every layer when lrpe is on"})
    scale_embedding: bool = attrs.field(default=True, validator=_bool, metadata={
        "doc": "scale token embeddings by sqrt(width)"})
    tie_embeddings: bool = attrs.field(default=True, validator=_bool, metadata={
        "doc": "tie the output head to the token embedding"})
    eps: float = attrs.field(default=1e-6, validator=non_negative, metadata={"doc": "SRMSNorm epsilon"})

    def __attrs_post_init__(self):
        # checks across fields; ConfigError, so the registry names the component
        if self.width % self.heads:
            raise ConfigError(f"width {self.width} is not divisible by heads {self.heads}",
                              hint="choose heads that divide width")
        if self.lrpe_layers is not None:
            if not self.lrpe:
                raise ConfigError("lrpe_layers is set but lrpe is false", hint="set lrpe = true")
            bad = [i for i in self.lrpe_layers if not 0 <= i < self.layers]
            if bad:
                raise ConfigError(f"lrpe_layers {bad} are outside 0..{self.layers - 1}",
                                  hint="layers are numbered from 0 to layers - 1")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def ffn_hidden(self) -> int:
        return self.sglu_hidden if self.sglu_hidden is not None else 2 * self.width

    def uses_lrpe(self, layer: int) -> bool:
        return self.lrpe and (self.lrpe_layers is None or layer in self.lrpe_layers)


def config_parameters() -> tuple[Parameter, ...]:
    """The fields of :class:`TransNormerConfig` as :class:`tokensmith.Parameter`\\ s (for the
    ``[model]`` table of the ``transnormer-lm`` source)."""
    return parameters_of(TransNormerConfig)
