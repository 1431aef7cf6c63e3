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
where nothing is predicted, optionally ``response_mask``: True on the tokens of the response);
``outputs`` is what the model's forward returned (``outputs.logits``). Labels follow the Hugging
Face convention: position ``t`` of ``labels`` is the target for the logits at ``t - 1`` (the
shift happens inside the loss), and weights and masks are indexed like the labels.

Core imports no torch at module level: the tensors are whatever the caller's framework is.
"""

from __future__ import annotations

import copy
import inspect
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

#: The batch key under which :class:`ComposedLoss` hands a loss the product of the token
#: weights (float, shaped like the labels, 0 where a mask deselects or the label is IGNORE_INDEX).
TOKEN_WEIGHTS_KEY = "token_weights"

#: The optional batch key marking the response tokens (bool or 0/1, shaped like the labels).
RESPONSE_MASK_KEY = "response_mask"


def _name(obj: Any) -> str:
    return getattr(obj, "name", None) or type(obj).__name__


class Objective(ABC):
    """Base of every objective; ``role`` says which of the five signatures it has."""

    name: str = "objective"
    role: ClassVar[str] = ""

    @abstractmethod
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    @property
    def component(self) -> str:
        """How errors name this objective (``"mask 'response-only'"``)."""
        return f"{self.role or 'objective'} '{_name(self)}'"


class Loss(Objective):
    """A scalar loss of a batch and the model's outputs. A loss that also accepts a keyword
    ``num_items`` (the number of predicted tokens of the whole accumulated batch, transformers'
    ``num_items_in_batch``) is handed it, so gradient accumulation normalises like one batch."""

    role: ClassVar[str] = "loss"

    @abstractmethod
    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any: ...


class TokenWeights(Objective):
    """A float weight per label position (shaped like ``batch["labels"]``, finite, >= 0, 0
    where the label is IGNORE_INDEX or, when the batch has one, outside ``response_mask``)."""

    role: ClassVar[str] = "weights"

    @abstractmethod
    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any: ...


class TokenMask(Objective):
    """A bool selection per label position (shaped like ``batch["labels"]``, False where the
    label is IGNORE_INDEX or outside ``response_mask``); False positions do not count in the
    loss."""

    role: ClassVar[str] = "mask"

    @abstractmethod
    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any: ...


class Reward(Objective):
    """One float reward per completion. ``info`` holds per-completion columns (lists as long as
    ``completions``, e.g. ``answer``) and anything else the caller passes."""

    role: ClassVar[str] = "reward"

    @abstractmethod
    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **info: Any) -> list[float]: ...

    def check_inputs(self, prompts: Sequence[str], completions: Sequence[str],
                     info: Mapping[str, Any] | None = None, *, require: Sequence[str] = ()
                     ) -> tuple[list[str], list[str]]:
        """The prologue every reward shares: prompts and completions are sequences of ``str``
        of one length, every list (or tuple) in ``info`` has that length, the ``require``d columns are
        there. Returns them as lists; any problem is an :class:`InputError`."""
        from .errors import InputError

        for what, value in (("prompts", prompts), ("completions", completions)):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise InputError(f"{what} must be a sequence of str, not {type(value).__name__}",
                                 component=self.component, hint="pass one string per completion")
            bad = next((v for v in value if not isinstance(v, str)), None)
            if bad is not None:
                raise InputError(f"{what} must hold str, found {type(bad).__name__}",
                                 component=self.component,
                                 hint="chat messages: tokensmith.reward_funcs turns them into text")
        if len(prompts) != len(completions):
            raise InputError(f"{len(prompts)} prompts for {len(completions)} completions",
                             component=self.component, hint="one prompt per completion (repeat it)")
        info = info or {}
        for key in require:
            if key not in info:
                raise InputError(f"needs the column {key!r} (one value per completion)",
                                 component=self.component,
                                 hint=f"pass {key}=[...] (a dataset column of that name, in TRL)")
        for key, value in info.items():
            if isinstance(value, (list, tuple)) and len(value) != len(completions):
                raise InputError(f"column {key!r} has {len(value)} values for {len(completions)} "
                                 "completions", component=self.component,
                                 hint="per-completion columns are as long as completions")
        return list(prompts), list(completions)


class Advantage(Objective):
    """One advantage per completion from its reward and its group (prompt) index."""

    role: ClassVar[str] = "advantage"

    @abstractmethod
    def __call__(self, rewards: Any, groups: Any) -> Any: ...

    def check_inputs(self, rewards: Any, groups: Any) -> tuple[Any, Any]:
        """The prologue every advantage shares: ``rewards`` (finite numbers) and ``groups``
        (integers) are 1-D and of one length. Returns them as a float64 and an int64 CPU tensor;
        any problem is an :class:`InputError`."""
        import torch

        from .errors import InputError

        try:
            r = torch.as_tensor(rewards, dtype=torch.float64).detach().cpu()
            g = torch.as_tensor(groups).detach().cpu()
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputError(f"rewards and groups must be 1-D numbers: {exc}", component=self.component,
                             hint="a list or tensor of floats, and one of ints") from exc
        if r.dim() != 1 or g.dim() != 1 or len(r) != len(g):
            raise InputError(f"rewards {tuple(r.shape)} and groups {tuple(g.shape)} must be 1-D and of "
                             "one length", component=self.component,
                             hint="one reward and one group index per completion")
        if (g.is_floating_point() or g.dtype == torch.bool) and g.numel():
            raise InputError(f"groups must be integers, not {g.dtype}", component=self.component,
                             hint="the index of each completion's prompt")
        if not torch.isfinite(r).all():
            raise InputError("rewards must be finite", component=self.component,
                             hint="a reward that does not apply is a choice of value, not NaN")
        return r, g.to(torch.int64)


def role_of(obj: Any) -> str:
    """The role of an objective (its ``role`` attribute), checked against :data:`ROLES`."""
    role = getattr(obj, "role", "")
    if role not in ROLES:
        from .errors import ConfigError

        raise ConfigError(f"objective {_name(obj)!r} has role {role!r}; one of {sorted(ROLES)} expected",
                          component="objectives",
                          hint="subclass tokensmith.Loss, TokenWeights, TokenMask, Reward or Advantage")
    return role


def _logits(outputs: Any) -> Any:
    return outputs.logits if hasattr(outputs, "logits") else outputs["logits"]


def shifted_labels(labels: Any) -> Any:
    """``labels`` moved one position left (the target of the logits at each position), with
    IGNORE_INDEX at the end — transformers' ``ForCausalLMLoss`` shift."""
    import torch

    return torch.nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]


def response_tokens(batch: Mapping[str, Any]) -> Any:
    """Where a weight or mask may be non-zero (bool, shaped like the labels): the label is not
    IGNORE_INDEX and, when the batch has ``response_mask``, the token is in the response."""
    labels = batch["labels"]
    selected = labels != IGNORE_INDEX
    response = batch.get(RESPONSE_MASK_KEY) if hasattr(batch, "get") else None
    if response is not None:
        from .errors import InputError

        if tuple(response.shape) != tuple(labels.shape):
            raise InputError(f"batch['response_mask'] has shape {tuple(response.shape)}, the labels "
                             f"{tuple(labels.shape)}", hint="response_mask is shaped like the labels")
        selected = selected & response.to(labels.device).bool()
    return selected


def token_cross_entropy(batch: Mapping[str, Any], outputs: Any, *, num_items: Any = None) -> Any:
    """Next-token cross-entropy with the Hugging Face shift (``logits[:, t-1]`` predicts
    ``labels[:, t]``), over positions whose label is not :data:`IGNORE_INDEX`, each position's
    loss multiplied by ``batch["token_weights"]`` when present.

    The sum is divided by ``num_items`` when given (transformers' ``num_items_in_batch``, so
    gradient accumulation normalises like an unaccumulated batch), else by the number of
    counted positions — at least 1 either way, so a batch with nothing to predict has loss 0,
    not NaN. With all weights 1 this is exactly the model's own ``outputs.loss``.
    """
    import torch

    logits = _logits(outputs)
    vocab = logits.shape[-1]
    shift = shifted_labels(batch["labels"]).to(logits.device).reshape(-1)
    flat = logits.float().reshape(-1, vocab)
    weights = batch.get(TOKEN_WEIGHTS_KEY) if hasattr(batch, "get") else None
    if weights is None:
        total = torch.nn.functional.cross_entropy(flat, shift, ignore_index=IGNORE_INDEX, reduction="sum")
    else:
        shift_weights = torch.nn.functional.pad(weights, (0, 1), value=0.0)[..., 1:]
        per_token = torch.nn.functional.cross_entropy(flat, shift, ignore_index=IGNORE_INDEX,
                                                      reduction="none")
        total = (per_token * shift_weights.reshape(-1).to(per_token)).sum()
    # at least 1: a batch (or accumulated batch) with nothing to predict has loss 0, not NaN
    if num_items is None:
        num_items = (shift != IGNORE_INDEX).sum().clamp(min=1)
    elif isinstance(num_items, torch.Tensor):
        num_items = num_items.to(total.device).clamp(min=1)
    else:
        num_items = max(num_items, 1)
    return total / num_items


class TokenCrossEntropy(Loss):
    """The default loss: :func:`token_cross_entropy` (honours composed token weights)."""

    name = "cross-entropy"

    def __call__(self, batch: Mapping[str, Any], outputs: Any, *, num_items: Any = None) -> Any:
        return token_cross_entropy(batch, outputs, num_items=num_items)


def _accepts_num_items(loss: Any) -> bool:
    try:
        params = inspect.signature(loss).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "num_items" or p.kind is p.VAR_KEYWORD for p in params)


def _checked(value: Any, labels: Any, objective: Any, *, boolean: bool) -> Any:
    from .errors import ComponentError

    component = getattr(objective, "component", f"objective '{_name(objective)}'")
    shape = tuple(getattr(value, "shape", ()))
    if shape != tuple(labels.shape):
        raise ComponentError(f"returned shape {shape}, expected the labels' shape {tuple(labels.shape)}",
                             component=component,
                             hint="token weights and masks are shaped like batch['labels']")
    dtype = getattr(value, "dtype", None)
    if boolean and str(dtype) != "torch.bool":
        raise ComponentError(f"a mask must be a bool tensor, not {dtype}", component=component,
                             hint="return a comparison (x > 0), or make it a TokenWeights")
    if not boolean and not getattr(value, "is_floating_point", lambda: False)():
        raise ComponentError(f"token weights must be a float tensor, not {dtype}", component=component,
                             hint="return weights as float32")
    if not boolean:
        import torch

        if not bool(torch.isfinite(value).all()):
            raise ComponentError("returned non-finite token weights (NaN or infinity)", component=component,
                                 hint="token weights are finite numbers >= 0")
        if bool((value < 0).any()):
            raise ComponentError(f"returned a negative token weight ({float(value.min())})",
                                 component=component, hint="token weights are finite numbers >= 0")
    return value


def _call(objective: Any, *args: Any, **kwargs: Any) -> Any:
    """Call one objective; an exception that is not a tokensmith error names it."""
    from .errors import blame

    component = getattr(objective, "component", f"objective '{_name(objective)}'")
    with blame(component, None, "computing it"):
        return objective(*args, **kwargs)


def _checked_loss(value: Any, loss: Any, outputs: Any) -> Any:
    """A loss's value: a floating-point scalar tensor, with a gradient when the logits have one."""
    from .errors import ComponentError

    component = getattr(loss, "component", f"loss '{_name(loss)}'")
    is_float = getattr(value, "is_floating_point", None)
    if is_float is None or not is_float() or getattr(value, "numel", lambda: 0)() != 1:
        what = f"a {value.dtype} tensor of shape {tuple(value.shape)}" if hasattr(value, "shape") \
            and hasattr(value, "dtype") else f"{type(value).__name__} {value!r:.40}"
        raise ComponentError(f"returned {what}, not a floating-point scalar tensor", component=component,
                             hint="a loss returns one number as a tensor (e.g. a mean over tokens)")
    logits = _logits(outputs)
    if getattr(logits, "requires_grad", False) and not value.requires_grad:
        raise ComponentError("returned a value that does not depend on the model's outputs (no gradient)",
                             component=component,
                             hint="compute the loss from outputs.logits with torch operations "
                             "(no .item(), .detach() or new tensors)")
    return value


class ComposedLoss(Loss):
    """One loss with token masks and weights applied.

    - Masks are **selections**: they AND, and a deselected position becomes IGNORE_INDEX in the
      labels the loss sees, so the mean runs over the selected tokens (a random half of the
      response is a mean over that half, not half the loss).
    - Weights **multiply**; their product (0 where deselected or ignored; times the batch's own
      ``token_weights`` when the data brought them) reaches the loss as ``batch["token_weights"]``
      and does not change the normaliser (weights of 1 leave the loss as it is).

    With ``num_items`` (counted by the Trainer over the labels *before* selection, for the whole
    accumulated batch), masks scale it by this micro-batch's selected fraction: exact for one
    micro-batch, an estimate across accumulation steps or ranks whose fractions differ.
    """

    def __init__(self, loss: Loss | None = None, weights: Sequence[TokenWeights] = (),
                 masks: Sequence[TokenMask] = ()) -> None:
        self.loss = loss if loss is not None else TokenCrossEntropy()
        self.weights = tuple(weights)
        self.masks = tuple(masks)
        self.name = " * ".join([_name(self.loss), *(_name(o) for o in (*self.masks, *self.weights))])
        self._pass_num_items = _accepts_num_items(self.loss)

    def selection(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        """The AND of the masks and of ``labels != IGNORE_INDEX`` (bool), or None without masks."""
        labels = batch["labels"]
        if not self.masks:
            return None
        selected = labels != IGNORE_INDEX
        for mask in self.masks:
            selected = selected & _checked(_call(mask, batch, outputs), labels, mask,
                                           boolean=True).to(labels.device)
        return selected

    def token_weights(self, batch: Mapping[str, Any], outputs: Any, selected: Any = None) -> Any:
        """The product of the weights and the selection (float, 0 where deselected or ignored),
        or None without weights and masks. ``selected``: the :meth:`selection`, if computed."""
        import torch

        if not self.weights and not self.masks:
            return None
        labels = batch["labels"]
        if selected is None:
            selected = self.selection(batch, outputs)
        combined = (labels != IGNORE_INDEX if selected is None else selected).to(torch.float32)
        given = batch.get(TOKEN_WEIGHTS_KEY)
        if given is not None:  # weights that came with the data ([data] token_fields) multiply in too
            combined = combined * given.to(combined)
        for weight in self.weights:
            w = _checked(_call(weight, batch, outputs), labels, weight, boolean=False)
            combined = combined * w.to(combined)
        return combined

    def __call__(self, batch: Mapping[str, Any], outputs: Any, *, num_items: Any = None) -> Any:
        import torch

        labels = batch["labels"]
        selected = self.selection(batch, outputs)
        weights = self.token_weights(batch, outputs, selected) if self.weights else None
        batch = copy.copy(batch) if isinstance(batch, dict) else dict(batch)  # keeps a dict subclass
        if selected is not None:
            batch["labels"] = labels.masked_fill(~selected, IGNORE_INDEX)
            if num_items is not None:
                before = (shifted_labels(labels) != IGNORE_INDEX).sum()
                after = (shifted_labels(batch["labels"]) != IGNORE_INDEX).sum()
                scaled = num_items * after / before.clamp(min=1)
                # nothing kept: the loss is 0, not 0 / 0
                num_items = torch.where(after > 0, scaled, torch.ones_like(scaled))
        if weights is not None:
            batch[TOKEN_WEIGHTS_KEY] = weights.detach()
        if self._pass_num_items:
            value = _call(self.loss, batch, outputs, num_items=num_items)
        else:
            value = _call(self.loss, batch, outputs)
        return _checked_loss(value, self.loss, outputs)


def compose(objectives: Sequence[Objective] | Objective) -> ComposedLoss:
    """One loss from a recipe's objectives: at most one :class:`Loss` (default: token
    cross-entropy), any number of :class:`TokenWeights` and :class:`TokenMask`. Rewards and
    advantages belong to RL recipes and are refused here."""
    from .errors import ConfigError

    if hasattr(objectives, "role"):
        objectives = [objectives]
    by_role: dict[str, list[Any]] = {role: [] for role in ROLES}
    for objective in objectives:
        by_role[role_of(objective)].append(objective)
    if len(by_role["loss"]) > 1:
        raise ConfigError(f"{len(by_role['loss'])} losses given ({[_name(o) for o in by_role['loss']]}); "
                          "a recipe has one", component="compose",
                          hint="combine token weights and masks with one loss instead")
    rl = by_role["reward"] + by_role["advantage"]
    if rl:
        raise ConfigError(f"{[_name(o) for o in rl]} are rewards/advantages, which a supervised loss "
                          "cannot use", component="compose",
                          hint="use rewards in an RL trainer (tokensmith.reward_funcs for TRL's GRPOTrainer)")
    return ComposedLoss(by_role["loss"][0] if by_role["loss"] else None,
                        weights=by_role["weights"], masks=by_role["mask"])


def build_objectives(objectives: Any, *, registry: Any = None, component: str = "objectives") -> list[Any]:
    """Objectives as users give them — objects, registered names (``"response-only"``) or
    tables (``{"type": "random-fraction", "fraction": 0.3}``), one or a list — as built
    objectives; names and tables are built through ``registry`` (default: the installed
    plugins). Anything else is a ConfigError naming ``component``."""
    from collections.abc import Iterable

    from .errors import ConfigError

    if isinstance(objectives, (str, Mapping)) or hasattr(objectives, "role"):
        objectives = [objectives]
    if not isinstance(objectives, Iterable):
        raise ConfigError(f"objectives must be a list of objectives, names or tables, got "
                          f"{type(objectives).__name__}", component=component,
                          hint="e.g. objectives=['response-only']")
    built = []
    for item in objectives:
        if isinstance(item, (str, Mapping)):
            if registry is None:
                from tokensmith import default_registry

                registry = default_registry()
            item = registry.build("objective", item)
        elif not hasattr(item, "role"):
            raise ConfigError(f"{type(item).__name__} {item!r:.60} is not an objective", component=component,
                              hint="an objective subclasses tokensmith.Loss, TokenWeights, TokenMask, Reward "
                              "or Advantage; or give its registered name")
        built.append(item)
    return built
