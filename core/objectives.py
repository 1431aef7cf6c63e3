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
