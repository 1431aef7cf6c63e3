"""The ssToken selector as a pure function (Qin et al., "ssToken: Self-modulated and
Semantic-aware Token Selection for LLM Fine-tuning", ICLR 2026, arXiv 2510.18250).

Indexing follows the labels (Hugging Face convention): ``labels[:, t]`` is the target of
``logits[:, t - 1]``, and every per-token quantity here (losses, scores, the kept mask) sits at
the label position ``t``. The token at ``t`` is predicted by the hidden state at ``t - 1``, so
its attention row (the semantic score) is the query row ``t - 1`` of the attention map.
"""

from __future__ import annotations

from typing import Any

from tokensmith import IGNORE_INDEX, InputError

COMPONENT = "sstoken"


def per_token_loss(logits: Any, labels: Any) -> Any:
    """Next-token cross-entropy at each label position (0 where the label is IGNORE_INDEX),
    shaped like ``labels``: ``out[:, t] = -log p(labels[:, t] | logits[:, t - 1])``."""
    import torch

    shift = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    flat = torch.nn.functional.cross_entropy(logits.detach().float().reshape(-1, logits.shape[-1]),
                                             shift.reshape(-1).to(logits.device), ignore_index=IGNORE_INDEX,
                                             reduction="none").reshape(shift.shape)
    # flat[:, t - 1] is the loss of labels[:, t]: move it to the label position
    return torch.nn.functional.pad(flat, (1, 0), value=0.0)[..., :-1]


def _check(logits: Any, labels: Any, attention: Any, ref_losses: Any, response_mask: Any) -> None:
    if labels.dim() != 2:
        raise InputError(f"labels have shape {tuple(labels.shape)}, not (batch, length)", component=COMPONENT)
    b, t = labels.shape
    if tuple(logits.shape[:2]) != (b, t):
        raise InputError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}",
                         component=COMPONENT, hint="pass the model's logits for this batch")
    if tuple(attention.shape) != (b, t, t):
        raise InputError(f"attention has shape {tuple(attention.shape)}, not (batch, length, length) = "
                         f"{(b, t, t)}", component=COMPONENT,
                         hint="average the last layer's attention over its heads")
    if tuple(ref_losses.shape) != (b, t):
        raise InputError(f"ref_losses have shape {tuple(ref_losses.shape)}, not the labels' {(b, t)}",
                         component=COMPONENT,
                         hint="the history model's per-token losses, indexed like labels")
    if response_mask is not None and tuple(response_mask.shape) != (b, t):
        raise InputError(f"response_mask has shape {tuple(response_mask.shape)}, not the labels' {(b, t)}",
                         component=COMPONENT)


def sstoken_scores(logits: Any, labels: Any, attention: Any, ref_losses: Any, *, response_mask: Any = None,
                   gamma: float = 0.5, eps: float = 1e-8) -> tuple[Any, Any]:
    """ssToken's combined score ``s_i = γ·norm(REL_i) + (1-γ)·a_i`` on the response tokens.

    - REL_i = ℓ_his(x_i) - ℓ_θ(x_i) (the retrospective excess loss, eq. 3 of the paper), min-max
      normalised to [0, 1] within each sample over its response tokens (a constant REL, e.g.
      θ = θ_his, normalises to 0, not NaN: ``eps`` guards the range);
    - a_i = Σ_{j ∈ prompt} A[i, j], the head-averaged last-layer attention from the token's
      predicting position to the prompt (the positions before the sample's first response token).

    Returns ``(scores, eligible)``: float scores shaped like the labels and the bool response
    tokens they apply to (label not IGNORE_INDEX, inside ``response_mask`` when given).
    """
    import torch

    _check(logits, labels, attention, ref_losses, response_mask)
    eligible = labels != IGNORE_INDEX
    if response_mask is not None:
        eligible = eligible & response_mask.to(labels.device).bool()
    rel = ref_losses.detach().float().to(labels.device) - per_token_loss(logits, labels).to(labels.device)
    big = torch.finfo(torch.float32).max
    low = torch.where(eligible, rel, big).amin(dim=1, keepdim=True)
    high = torch.where(eligible, rel, -big).amax(dim=1, keepdim=True)
    norm = torch.where(eligible, (rel - low) / (high - low + eps), 0.0)
    # the prompt of a sample: every position before its first response token
    positions = torch.arange(labels.shape[1], device=labels.device)
    first = torch.where(eligible, positions, labels.shape[1]).amin(dim=1, keepdim=True)
    prompt = positions[None, :] < first
    # query row t-1 predicts the token at t; row 0 (no predictor) never holds a response token
    mass = (attention.detach().float().to(labels.device) * prompt[:, None, :]).sum(-1)
    semantic = torch.nn.functional.pad(mass, (1, 0), value=0.0)[..., :-1]
    scores = gamma * norm + (1.0 - gamma) * semantic
    return torch.where(eligible, scores, 0.0), eligible


def keep_top(scores: Any, eligible: Any, ratio: float) -> Any:
    """The top ``ceil(ratio·R)`` eligible positions of each row (R its eligible count), by score,
    ties broken by position (earlier first): a bool mask shaped like ``scores``."""
    import math

    import torch

    keys = torch.where(eligible, scores, float("-inf"))
    order = torch.argsort(keys, dim=1, descending=True, stable=True)
    counts = eligible.sum(dim=1)
    keep = torch.tensor([math.ceil(ratio * int(c) - 1e-9) for c in counts], device=scores.device)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < keep[:, None]) & eligible


def sstoken_select(logits: Any, labels: Any, attention: Any, ref_losses: Any, *, response_mask: Any = None,
                   ratio: float = 0.6, gamma: float = 0.5, eps: float = 1e-8) -> Any:
    """ssToken's selection (Algorithm 1): the new labels, IGNORE_INDEX everywhere except the top
    ``ceil(ρ·R)`` response tokens of each sample by :func:`sstoken_scores`."""
    import torch

    if not 0.0 < ratio <= 1.0:
        raise InputError(f"ratio {ratio!r} is not in (0, 1]", component=COMPONENT)
    if not 0.0 <= gamma <= 1.0:
        raise InputError(f"gamma {gamma!r} is not in [0, 1]", component=COMPONENT)
    scores, eligible = sstoken_scores(logits, labels, attention, ref_losses, response_mask=response_mask,
                                      gamma=gamma, eps=eps)
    kept = keep_top(scores, eligible, ratio)
    return torch.where(kept, labels, torch.full_like(labels, IGNORE_INDEX))
