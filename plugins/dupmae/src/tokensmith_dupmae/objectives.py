"""DupMAE's training objective (Xiao & Liu, 2022, arXiv 2211.08769) as a tokensmith loss:

    L = L_cls + λ_bow · L_bow + L_enc        (the paper's total loss; λ_bow = 0.1 in the released code)

- L_cls: cross-entropy of the one-layer enhanced decoder's reconstruction of every ordinary token
  from h_c and the sampled context (RetroMAE's decoding loss);
- L_bow: the bag-of-words loss of the ordinary-token decoding, ``-Σ_v b_v log softmax(z)_v``, with
  z the max-pooled OT logits and b the input's BoW distribution (:func:`bow_targets`);
- L_enc: the encoder's MLM cross-entropy on its whole-word-masked positions.

With ``bow_weight = 0`` it is RetroMAE's loss exactly. The pieces come from a
:class:`~tokensmith_dupmae.model.DupMAEModel`'s outputs (the ``dupmae`` recipe builds it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tokensmith import IGNORE_INDEX, IncompatibleComponentsError, Loss, non_negative

COMPONENT = "loss 'dupmae'"
_NEEDED = ("encoder_labels", "decoder_logits", "decoder_labels", "bow_logits", "input_ids", "ordinary_mask")


def bow_targets(input_ids: Any, ordinary: Any, vocab_size: int) -> Any:
    """b ∈ ℝ^{batch × |V|}: the uniform distribution over the row's distinct ordinary tokens
    (``1/d`` on each of its ``d`` distinct tokens, 0 elsewhere: the set ``t ∈ X`` of the bag-of-words
    loss), so a row sums to 1; specials and padding get 0, and a row with no ordinary token is all 0.
    The released code assigns ``1/n`` (n: ordinary tokens, repeats counted) to each distinct token,
    which sums to ``d/n ≤ 1``: the same direction, a per-row scale."""
    import torch

    present = torch.zeros(input_ids.shape[0], vocab_size, dtype=torch.float32, device=input_ids.device)
    index = input_ids.masked_fill(~ordinary, 0)
    # scatter_reduce "amax" marks a token once however often it occurs (0 for the non-ordinary fill)
    present = present.scatter_reduce(1, index, ordinary.to(torch.float32), reduce="amax")
    return present / present.sum(-1, keepdim=True).clamp(min=1.0)


def bow_loss(bow_logits: Any, targets: Any) -> Any:
    """L_bow = mean over rows of ``-Σ_v b_v log softmax(z)_v``."""
    import torch

    logp = torch.log_softmax(bow_logits.float(), dim=-1)
    return -(targets * logp).sum(-1).mean()


def masked_lm_loss(logits: Any, labels: Any) -> Any:
    """Mean cross-entropy over the positions whose label is not IGNORE_INDEX (0 when there are none)."""
    import torch

    kept = labels != IGNORE_INDEX
    losses = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return losses / kept.sum().clamp(min=1)


def dupmae_terms(outputs: Any, bow_weight: float) -> dict[str, Any]:
    """The three terms and the total, from a DupMAE model's outputs."""
    missing = [k for k in _NEEDED if getattr(outputs, k, None) is None]
    if missing:
        raise IncompatibleComponentsError(
            f"the model's outputs have no {', '.join(missing)}: the dupmae loss reads a DupMAE model's "
            "encoder, [CLS]-decoder and bag-of-words outputs",
            component=COMPONENT,
            hint='train with [recipe] type = "dupmae" (it wraps the BERT encoder in the DupMAE model)',
        )
    enc = masked_lm_loss(outputs.logits, outputs.encoder_labels)
    cls = masked_lm_loss(outputs.decoder_logits, outputs.decoder_labels)
    targets = bow_targets(outputs.input_ids, outputs.ordinary_mask, outputs.bow_logits.shape[-1])
    bow = bow_loss(outputs.bow_logits, targets)
    return {"enc": enc, "cls": cls, "bow": bow, "total": cls + bow_weight * bow + enc}


@attrs.define
class DupMAELoss(Loss):
    """L = L_cls + λ_bow·L_bow + L_enc on a DupMAE model's outputs (λ_bow = 0: RetroMAE)."""

    name = "dupmae"
    bow_weight: float = attrs.field(
        default=0.1,
        validator=non_negative,
        metadata={
            "doc": "λ_bow, the weight of the bag-of-words loss of the ordinary tokens (released code: 0.1; "
            "0 gives RetroMAE's loss)"
        },
    )

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        return dupmae_terms(outputs, self.bow_weight)["total"]
