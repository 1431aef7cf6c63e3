"""The removal schedule: which fake norm is frozen at which fine-tuning step.

Heimersheim (2024), "You can remove GPT2's LayerNorm by fine-tuning";
Baroni et al. (2025), arXiv 2507.02559 (the "fast" GPT-2 schedule of their code).

Order of the paper: the MLP-input norms (``ln_2``) layer by layer, then the attention-input
norms (``ln_1``), then the final norm (``ln_f``), then the end-of-text special treatment,
then the first-position (BOS) special treatment, each ``gap`` steps after the previous one.
The paper freezes ``ln_1`` on the q/k path and on the v path in two separate passes; this
implementation does not patch attention, so ``ln_1`` is frozen once for all three paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from tokensmith import ConfigError

#: targets of the two events that are not norm paths
SPECIAL_IDS = "special-ids"
FIRST_POSITION = "first-position"
ROLES = ("mlp-input", "attention-input", "final")
_MLP_NAMES = ("ln_2", "post_attention_layernorm", "ffn_norm", "mlp_norm")


@attrs.frozen
class RemovalEvent:
    """At training step ``step``, freeze the norm at ``target`` (or turn a special treatment off)."""

    step: int
    target: str
    role: str


def layer_index(path: str) -> int | None:
    """The block number in a norm path (``model.layers.12.input_layernorm`` -> 12), None outside blocks."""
    numbers = [int(p) for p in path.split(".") if p.isdigit()]
    return numbers[-1] if numbers else None


def norm_role(path: str) -> str:
    """``"final"`` for a norm outside the numbered blocks, ``"mlp-input"`` for the norm before the
    MLP (``ln_2``, ``post_attention_layernorm``), ``"attention-input"`` for the other block norms."""
    if layer_index(path) is None:
        return "final"
    name = path.rsplit(".", 1)[-1]
    return "mlp-input" if name in _MLP_NAMES or re.search(r"mlp|ffn", name) else "attention-input"


def removal_schedule(paths: Iterable[str], *, start: int = 20, gap: int = 2,
                     special_ids: bool = True, first_position: bool = True) -> tuple[RemovalEvent, ...]:
    """The paper's order with one event every ``gap`` steps from ``start`` (GPT-2 small fast
    schedule: ``start=20, gap=2`` in steps of 0.5M tokens)."""
    if start < 0 or gap < 1:
        raise ConfigError(f"removal schedule needs start >= 0 and gap >= 1, got start={start}, gap={gap}",
                          component="ln-free schedule")
    paths = list(paths)
    ordered = []
    for role in ROLES:
        ordered += sorted((p for p in paths if norm_role(p) == role), key=lambda p: (layer_index(p) or 0, p))
    targets = [(p, norm_role(p)) for p in ordered]
    targets += [(SPECIAL_IDS, "special")] if special_ids else []
    targets += [(FIRST_POSITION, "special")] if first_position else []
    return tuple(RemovalEvent(start + gap * i, target, role) for i, (target, role) in enumerate(targets))
