"""Configuration records of tokensmith-transnormer (no torch import: read at registration).

TransNormerLLM: Qin et al., "TransNormerLLM: A Faster and Better Large Language
Model with Improved TransNormer" / "Scaling TransNormer to 175 Billion
Parameters", arXiv 2307.14995.
"""

from __future__ import annotations

import attrs

DECAY_FORMS = ("alibi", "paper")
NORM_KINDS = ("rmsnorm", "layernorm")


def _positive(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


def _optional_positive(instance, attribute, value):
    if value is not None:
        _positive(instance, attribute, value)


def _non_negative_float(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


def _int_tuple(value):
    return None if value is None else tuple(value)


@attrs.frozen
class TransNormerConfig:
    """A TransNormer LM (section 3 of the paper).

    ``vocab_size`` ``None`` takes the pipeline tokenizer's size. ``sglu_hidden``
    ``None`` is ``2 * width``. ``block_size`` is Lightning Attention's ``B`` (256
    in the paper). ``decay`` picks the per-head/per-layer decay formula:
    ``"alibi"`` (the released code) or ``"paper"`` (the paper's text), see
    :func:`tokensmith_transnormer.lightning_attention.decay_rates`. ``lrpe``
    turns LRPE on, on every layer or only on ``lrpe_layers``.
    """

    vocab_size: int | None = attrs.field(default=None, validator=_optional_positive)
    width: int = attrs.field(default=128, validator=_positive)
    layers: int = attrs.field(default=2, validator=_positive)
    heads: int = attrs.field(default=4, validator=_positive)
    block_size: int = attrs.field(default=256, validator=_positive)
    sglu_hidden: int | None = attrs.field(default=None, validator=_optional_positive)
    decay: str = attrs.field(default="alibi", validator=attrs.validators.in_(DECAY_FORMS))
    lrpe: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    lrpe_layers: tuple[int, ...] | None = attrs.field(default=None, converter=_int_tuple)
    scale_embedding: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    tie_embeddings: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    eps: float = attrs.field(default=1e-6, validator=_non_negative_float)

    def __attrs_post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.lrpe_layers is not None:
            if not self.lrpe:
                raise ValueError("lrpe_layers is set but lrpe is false; set lrpe = true")
            bad = [i for i in self.lrpe_layers if not 0 <= i < self.layers]
            if bad:
                raise ValueError(f"lrpe_layers {bad} are outside 0..{self.layers - 1}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def ffn_hidden(self) -> int:
        return self.sglu_hidden if self.sglu_hidden is not None else 2 * self.width

    def uses_lrpe(self, layer: int) -> bool:
        return self.lrpe and (self.lrpe_layers is None or layer in self.lrpe_layers)


@attrs.frozen
class SRMSNormConfig:
    """Norm surgery with SRMSNorm: which kinds of norm layers to replace, and ``eps``
    (``None`` keeps each replaced layer's own epsilon)."""

    kinds: tuple[str, ...] = attrs.field(
        default=NORM_KINDS, converter=tuple,
        validator=attrs.validators.deep_iterable(attrs.validators.in_(NORM_KINDS)))
    eps: float | None = attrs.field(default=None, validator=attrs.validators.optional(_non_negative_float))

    def __attrs_post_init__(self):
        if not self.kinds:
            raise ValueError(f"kinds is empty; choose from {list(NORM_KINDS)}")
