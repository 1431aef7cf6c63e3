"""PRIOR's token weights (Chen, Peng, Zhang, Ji, "Prioritizing Image-Related Tokens Enhances
Vision-Language Pre-Training", 2025, arXiv 2505.08971).

A frozen text-only reference model P_r scores each caption token; tokens it predicts badly
without the image are likely image-related and weigh more:

    w_i = (1 - P_r(t_i | t_<i))^α                      (importance score, α = 1 in the paper)
    L_PRIOR = -Σ_i k · (w_i / Σ_j w_j) · log P_θ(t_i | image, t_<i)

so the weights average exactly 1 over the k tokens of each caption. Here a caption is a row's
response tokens (``tokensmith.response_tokens``: labels not IGNORE_INDEX, inside
``response_mask``); the loss itself is the core token cross-entropy, which multiplies each
token's loss by its weight (``tokensmith.compose``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tokensmith import (
    IGNORE_INDEX,
    ConfigError,
    IncompatibleComponentsError,
    InputError,
    TokenWeights,
    non_negative,
    response_tokens,
)

COMPONENT = "prior"


def reference_probabilities(ref_logits: Any, labels: Any) -> Any:
    """P_r of each label under the reference logits, at the label position (HF shift:
    ``logits[:, t - 1]`` predicts ``labels[:, t]``), 0 where the label is IGNORE_INDEX."""
    import torch

    if tuple(ref_logits.shape[:2]) != tuple(labels.shape):
        raise InputError(f"reference logits {tuple(ref_logits.shape)} do not match labels "
                         f"{tuple(labels.shape)}", component=COMPONENT,
                         hint="the reference model must read the same token positions as the model")
    shift = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:].to(ref_logits.device)
    logp = torch.log_softmax(ref_logits.detach().float(), dim=-1)
    picked = logp.gather(-1, shift.clamp(min=0)[..., None]).squeeze(-1).exp()
    picked = torch.where(shift == IGNORE_INDEX, 0.0, picked)
    return torch.nn.functional.pad(picked, (1, 0), value=0.0)[..., :-1]


def prior_weights(ref_logits: Any, labels: Any, *, response_mask: Any = None, alpha: float = 1.0,
                  eps: float = 1e-12) -> Any:
    """PRIOR's normalised weights, shaped like ``labels`` (0 outside the caption tokens):
    ``k · w_i / Σ_j w_j`` with ``w_i = (1 - P_r)^α`` over each row's k caption tokens. A caption
    the reference predicts perfectly (every ``w_i = 0``, so ``Σ w = 0``) gets weight 1 on every
    token (the α → 0 limit) rather than 0/0."""
    import torch

    if alpha < 0:
        raise InputError(f"alpha {alpha!r} is negative", component=COMPONENT)
    batch = {"labels": labels}
    if response_mask is not None:
        batch["response_mask"] = response_mask
    eligible = response_tokens(batch).to(ref_logits.device)
    p = reference_probabilities(ref_logits, labels).double()
    w = torch.where(eligible, (1.0 - p).clamp(min=0.0) ** alpha, 0.0)
    total = w.sum(dim=1, keepdim=True)
    k = eligible.sum(dim=1, keepdim=True).double()
    degenerate = total <= eps
    normalised = torch.where(degenerate, eligible.double(), w * k / total.clamp(min=eps))
    return normalised.float()


@attrs.define(eq=False)
class PRIORWeights(TokenWeights):
    """PRIOR's token weights from a frozen text-only reference model: ``(1 - P_r)^alpha``,
    normalised to mean 1 over each caption's (response) tokens. The reference reads the
    batch's ``input_ids``/``attention_mask`` only (never image inputs such as pixels), so it
    is text-only by construction."""

    name = "prior"
    alpha: float = attrs.field(default=1.0, converter=float, validator=non_negative,
                               metadata={"doc": "α, the exponent of (1 - P_r) (paper: 1; 0 gives plain NTP)"})
    reference: Any = attrs.field(default=None, metadata={
        "doc": "the frozen text-only reference model: a model source (a name, a directory, or a "
               "[model]-style table); None: attach one with with_reference(model)"})
    ctx: Any = attrs.field(default=None, repr=False, metadata={"doc": "the build context (its registry "
                                                               "and runtime load the reference)"})
    _model: Any = attrs.field(default=None, init=False, repr=False)

    @reference.validator
    def _check_reference(self, attribute: Any, value: Any) -> None:
        if value is not None and not isinstance(value, (str, Mapping)):
            raise ConfigError(f"reference is {type(value).__name__}, not a model source (a name, a path "
                              "or a table)", component=COMPONENT,
                              hint='reference = "runs/reference/final", or attach one with with_reference')

    def __attrs_post_init__(self) -> None:
        if self.reference is not None:
            from tokensmith import ModelSource, Runtime, default_registry

            registry = getattr(self.ctx, "registry", None) or default_registry()
            runtime = getattr(self.ctx, "runtime", None) or Runtime()
            model, _ = registry.load_model(ModelSource.from_config(self.reference), runtime)
            self.with_reference(model)

    def with_reference(self, model: Any) -> PRIORWeights:
        """Use ``model`` (frozen here: eval mode, no gradients) as P_r; returns self."""
        model.eval()
        model.requires_grad_(False)
        self._model = model
        return self

    @property
    def model(self) -> Any:
        return self._model

    def reference_logits(self, batch: Mapping[str, Any]) -> Any:
        import torch

        if self._model is None:
            raise IncompatibleComponentsError(
                "no reference model: PRIOR's weights need a frozen text-only model's probabilities",
                component=COMPONENT, hint="give reference = <model source>, or call .with_reference(model)")
        labels = batch["labels"]
        if next(self._model.parameters()).device != labels.device:
            self._model.to(labels.device)
        kwargs = {"input_ids": batch["input_ids"].to(labels.device)}
        if batch.get("attention_mask") is not None:
            kwargs["attention_mask"] = batch["attention_mask"].to(labels.device)
        with torch.no_grad():
            out = self._model(**kwargs, use_cache=False)
        return out.logits if hasattr(out, "logits") else out[0]

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        return prior_weights(self.reference_logits(batch), batch["labels"],
                             response_mask=batch.get("response_mask"), alpha=self.alpha)
