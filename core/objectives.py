"""Typed objectives: pure functions of a batch and the model's outputs (or of completions).

Five roles, one small interface each, so they compose and any recipe or trainer can use them:

- :class:`Loss` ``(batch, outputs) -> Tensor``: a scalar to minimise;
- :class:`TokenWeights` ``(batch, outputs) -> Tensor``: a float weight per label position,
  shaped like ``batch["labels"]``;
- :class:`TokenMask` ``(batch, outputs) -> Tensor``: a bool selection per label position,
  shaped like ``batch["labels"]`` (a selection mask inside a weighted loss composes);
- :class:`Reward` ``(prompts, completions, **info) -> list[float]``: one reward per completion;
- :class:`Advantage` ``(rewards, groups) -> Tensor``: one advantage per completion, from the
  rewards and the group (prompt) index of each completion.

``batch`` is a mapping of tensors (``input_ids``, ``attention_mask``, ``labels`` with ``-100``
where nothing is predicted, optionally ``response_mask``); ``outputs`` is what the model's
forward returned (``outputs.logits``). Labels follow the Hugging Face convention: position
``t`` of ``labels`` is the target for the logits at ``t - 1`` (the shift happens inside the loss).

Core imports no torch at module level: the tensors are whatever the caller's framework is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

#: The label value that marks a position nothing is predicted for (Hugging Face convention).
IGNORE_INDEX = -100

ROLES: dict[str, str] = {
    "loss": "(batch, outputs) -> scalar Tensor",
    "weights": "(batch, outputs) -> float Tensor shaped like batch['labels']",
    "mask": "(batch, outputs) -> bool Tensor shaped like batch['labels']",
    "reward": "(prompts, completions, **info) -> list[float], one per completion",
    "advantage": "(rewards, groups) -> Tensor, one per completion",
}


class Objective(ABC):
    """Base of every objective; ``role`` says which of the five signatures it has."""

    name: str = "objective"
    role: ClassVar[str] = ""

    @abstractmethod
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


class Loss(Objective):
    """A scalar loss of a batch and the model's outputs."""

    role: ClassVar[str] = "loss"

    @abstractmethod
    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any: ...


class TokenWeights(Objective):
    """A float weight per label position (shaped like ``batch["labels"]``)."""

    role: ClassVar[str] = "weights"

    @abstractmethod
    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any: ...


class TokenMask(Objective):
    """A bool selection per label position (shaped like ``batch["labels"]``); ``False``
    positions do not count in the loss."""

    role: ClassVar[str] = "mask"

    @abstractmethod
    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any: ...


class Reward(Objective):
    """One float reward per completion."""

    role: ClassVar[str] = "reward"

    @abstractmethod
    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **info: Any) -> list[float]: ...


class Advantage(Objective):
    """One advantage per completion from its reward and its group (prompt) index."""

    role: ClassVar[str] = "advantage"

    @abstractmethod
    def __call__(self, rewards: Any, groups: Any) -> Any: ...


def role_of(obj: Any) -> str:
    """The role of an objective (its ``role`` attribute), checked against :data:`ROLES`."""
    role = getattr(obj, "role", "")
    if role not in ROLES:
        from .errors import ConfigError

        raise ConfigError(f"objective {getattr(obj, 'name', type(obj).__name__)!r} has role {role!r}; "
                          f"one of {sorted(ROLES)} expected",
                          hint="subclass tokensmith.Loss, TokenWeights, TokenMask, Reward or Advantage")
    return role


#: The batch key under which :func:`compose` hands a loss the combined token weights (float,
#: shaped like the labels, 0 where a mask deselects or the label is IGNORE_INDEX).
TOKEN_WEIGHTS_KEY = "token_weights"


def token_cross_entropy(batch: Mapping[str, Any], outputs: Any, *, num_items: Any = None) -> Any:
    """Next-token cross-entropy with the Hugging Face shift (``logits[:, t-1]`` predicts
    ``labels[:, t]``), over positions whose label is not :data:`IGNORE_INDEX`, each position's
    loss multiplied by ``batch["token_weights"]`` when present.

    The sum is divided by ``num_items`` when given (transformers' ``num_items_in_batch``, so
    gradient accumulation normalises like an unaccumulated batch), else by the number of
    counted positions: with all weights 1 this is exactly the model's own ``outputs.loss``.
    """
    import torch

    logits = outputs.logits if hasattr(outputs, "logits") else outputs["logits"]
    labels = batch["labels"]
    vocab = logits.shape[-1]
    # the shift as transformers' ForCausalLMLoss does it (pad, then drop the first label), so an
    # unweighted loss is bit-identical to the model's own outputs.loss
    shift_labels = torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    shift_labels = shift_labels.to(logits.device).reshape(-1)
    flat = logits.float().reshape(-1, vocab)
    weights = batch.get(TOKEN_WEIGHTS_KEY) if hasattr(batch, "get") else None
    if weights is None:
        if num_items is None:
            return torch.nn.functional.cross_entropy(flat, shift_labels, ignore_index=IGNORE_INDEX)
        total = torch.nn.functional.cross_entropy(flat, shift_labels, ignore_index=IGNORE_INDEX,
                                                  reduction="sum")
    else:
        shift_weights = torch.nn.functional.pad(weights, (0, 1), value=0.0)[..., 1:]
        per_token = torch.nn.functional.cross_entropy(flat, shift_labels, ignore_index=IGNORE_INDEX,
                                                      reduction="none")
        total = (per_token * shift_weights.reshape(-1).to(per_token)).sum()
        if num_items is None:
            num_items = (shift_labels != IGNORE_INDEX).sum()
    if isinstance(num_items, torch.Tensor):
        num_items = num_items.to(total.device)
    return total / num_items


class TokenCrossEntropy(Loss):
    """The default loss: :func:`token_cross_entropy` (honours composed token weights)."""

    name = "cross-entropy"

    def __call__(self, batch: Mapping[str, Any], outputs: Any, *, num_items: Any = None) -> Any:
        return token_cross_entropy(batch, outputs, num_items=num_items)


def _check_like_labels(value: Any, labels: Any, what: str) -> None:
    from .errors import ComponentError

    if tuple(getattr(value, "shape", ())) != tuple(labels.shape):
        raise ComponentError(f"{what} returned shape {tuple(getattr(value, 'shape', ()))}, "
                             f"expected the labels' shape {tuple(labels.shape)}", component=what,
                             hint="token weights and masks are shaped like batch['labels']")


class ComposedLoss(Loss):
    """A loss with token weights and masks applied: the weights multiply, the masks AND, and
    the product (0 where deselected or ignored) reaches the loss as ``batch["token_weights"]``.
    """

    def __init__(self, loss: Loss | None = None, weights: Sequence[TokenWeights] = (),
                 masks: Sequence[TokenMask] = ()) -> None:
        self.loss = loss if loss is not None else TokenCrossEntropy()
        self.weights = tuple(weights)
        self.masks = tuple(masks)
        parts = [getattr(o, "name", type(o).__name__) for o in (*self.masks, *self.weights)]
        self.name = " * ".join([getattr(self.loss, "name", "loss"), *parts])

    def token_weights(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        """The combined per-position weights (float, shaped like the labels), or None."""
        import torch

        labels = batch["labels"]
        if not self.weights and not self.masks:
            return None
        combined = (labels != IGNORE_INDEX).to(torch.float32)
        for mask in self.masks:
            selected = mask(batch, outputs)
            _check_like_labels(selected, labels, f"mask '{getattr(mask, 'name', type(mask).__name__)}'")
            combined = combined * selected.to(combined)
        for weight in self.weights:
            w = weight(batch, outputs)
            _check_like_labels(w, labels, f"weights '{getattr(weight, 'name', type(weight).__name__)}'")
            combined = combined * w.to(combined)
        return combined

    def __call__(self, batch: Mapping[str, Any], outputs: Any, *, num_items: Any = None) -> Any:
        weights = self.token_weights(batch, outputs)
        if weights is not None:
            batch = {**batch, TOKEN_WEIGHTS_KEY: weights.detach()}
        try:
            return self.loss(batch, outputs, num_items=num_items)
        except TypeError as exc:
            if "num_items" not in str(exc):
                raise
            return self.loss(batch, outputs)


def compose(objectives: Sequence[Objective]) -> ComposedLoss:
    """One loss from a recipe's objectives: at most one :class:`Loss` (default: token
    cross-entropy), any number of :class:`TokenWeights` and :class:`TokenMask`. Rewards and
    advantages belong to RL recipes and are refused here."""
    from .errors import ConfigError

    by_role: dict[str, list[Any]] = {role: [] for role in ROLES}
    for objective in objectives:
        by_role[role_of(objective)].append(objective)
    if len(by_role["loss"]) > 1:
        raise ConfigError(f"{len(by_role['loss'])} losses given "
                          f"({[getattr(o, 'name', '?') for o in by_role['loss']]}); a recipe has one",
                          hint="combine token weights and masks with one loss instead")
    rl = by_role["reward"] + by_role["advantage"]
    if rl:
        raise ConfigError(f"{[getattr(o, 'name', '?') for o in rl]} are rewards/advantages, which a "
                          f"supervised loss cannot use", hint="use them in an RL recipe (e.g. TRL GRPO)")
    return ComposedLoss(by_role["loss"][0] if by_role["loss"] else None,
                        weights=by_role["weights"], masks=by_role["mask"])
