"""Typed objectives inside TRL (``pip install 'tokensmith[trl]'``; docs/objectives.md).

- :class:`ObjectiveSFTTrainer`: ``trl.SFTTrainer`` with ``compute_loss`` overridden to train on
  composed objectives (TRL 1.16 deprecates ``compute_loss_func`` for SFT and asks for a
  subclass, which this is);
- :func:`reward_funcs`: Reward objectives as TRL reward functions, for
  ``GRPOTrainer(reward_funcs=...)``;
- :func:`sft_config` / :func:`grpo_config`: TRL's configs with CPU-safe defaults (TRL defaults to
  bf16, which fails on a machine without an accelerator; these train in float32 there).

Only :class:`ObjectiveSFTTrainer` and the configs need TRL; :func:`reward_funcs` is plain Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokensmith.core.errors import ComponentError, ConfigError, InputError, blame
from tokensmith.core.objectives import Reward, role_of

from .trainer_bridge import BATCH_KEYS, composed, model_inputs, scaled_for_devices

_INSTALL = "pip install 'tokensmith[trl]'"

#: What GRPOTrainer passes a reward function besides the dataset's columns: TRL's own
#: machinery, not information about the completions.
TRL_MACHINERY = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


def _on_cpu(kwargs: Mapping[str, Any]) -> bool:
    import torch

    if kwargs.get("use_cpu"):
        return True
    xpu = getattr(torch, "xpu", None)
    return not (torch.cuda.is_available() or (xpu is not None and xpu.is_available()))


def _cpu_safe(kwargs: dict[str, Any]) -> dict[str, Any]:
    if _on_cpu(kwargs):
        kwargs.setdefault("bf16", False)
        kwargs.setdefault("fp16", False)
    return kwargs


def _require_trl(what: str) -> None:
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        raise ConfigError(f"{what} needs TRL, which is not installed", component=what, hint=_INSTALL)


def sft_config(output_dir: str, **kwargs: Any) -> Any:
    """``trl.SFTConfig(output_dir, **kwargs)``, in float32 without an accelerator (or with
    ``use_cpu=True``) unless ``bf16``/``fp16`` are given."""
    _require_trl("sft_config")
    from trl import SFTConfig

    return SFTConfig(output_dir=output_dir, **_cpu_safe(dict(kwargs)))


def grpo_config(output_dir: str, **kwargs: Any) -> Any:
    """``trl.GRPOConfig(output_dir, **kwargs)``, in float32 without an accelerator (or with
    ``use_cpu=True``) unless ``bf16``/``fp16`` are given."""
    _require_trl("grpo_config")
    from trl import GRPOConfig

    return GRPOConfig(output_dir=output_dir, **_cpu_safe(dict(kwargs)))


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
        return part["text"]
    return ""  # an image or other non-text part carries no text


def as_text(item: Any, what: str = "completion") -> str:
    """A completion or prompt as text: a ``str`` as it is; chat messages (TRL's
    conversational format: ``[{"role": ..., "content": ...}, ...]``, content a string or a list
    of parts) as their text contents joined by newlines."""
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        item = [item]
    if isinstance(item, Sequence) and all(isinstance(m, Mapping) and "content" in m for m in item):
        texts = []
        for message in item:
            content = message["content"]
            parts = [content] if isinstance(content, str) else list(content or [])
            texts.append("".join(_part_text(p) for p in parts))
        return "\n".join(texts)
    raise InputError(f"a {what} must be a str or a list of chat messages, not {type(item).__name__}",
                     component="reward_funcs", hint="TRL passes either; anything else is not a completion")


def checked_rewards(rewards: Any, n: int, component: str) -> list[float]:
    """What a reward returned, checked: a list (or tuple, or 1-D array) of ``n`` finite real
    numbers (``bool``, strings and ``None`` are not rewards), as Python floats."""
    import math
    import numbers

    hint = "a reward returns one finite float per completion"
    if hasattr(rewards, "tolist") and getattr(rewards, "ndim", 1) == 1:
        rewards = rewards.tolist()
    if not isinstance(rewards, (list, tuple)):
        raise ComponentError(f"returned {type(rewards).__name__} {rewards!r:.60}, not a list of floats",
                             component=component, hint=hint)
    if len(rewards) != n:
        raise ComponentError(f"returned {len(rewards)} rewards for {n} completions", component=component,
                             hint=hint)
    for i, r in enumerate(rewards):
        if isinstance(r, bool) or not isinstance(r, numbers.Real):
            raise ComponentError(f"reward {i} is {type(r).__name__} {r!r:.40}, not a number",
                                 component=component, hint=hint)
        if not math.isfinite(r):
            raise ComponentError(f"reward {i} is {r}: rewards are finite numbers", component=component,
                                 hint="a completion the reward does not apply to gets a chosen value "
                                 "(e.g. 0.0), not NaN")
    return [float(r) for r in rewards]


class RewardFunction:
    """A tokensmith :class:`Reward` in TRL's reward-function form,
    ``f(prompts, completions, completion_ids=..., **columns) -> list[float]``: chat messages
    become text (:func:`as_text`), the dataset's columns (and ``completion_ids``) are the
    reward's ``info``, TRL's machinery arguments are not passed on. Picklable when the reward is."""

    def __init__(self, reward: Reward) -> None:
        self.reward = reward
        self.__name__ = getattr(reward, "name", type(reward).__name__)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None,
                 **columns: Any) -> list[float]:
        info = {k: v for k, v in columns.items() if k not in TRL_MACHINERY}
        if completion_ids is not None:
            info["completion_ids"] = completion_ids
        component = getattr(self.reward, "component", self.__name__)
        prompts = [as_text(p, "prompt") for p in prompts]
        completions = [as_text(c) for c in completions]
        with blame(component, None, "computing the rewards"):
            rewards = self.reward(prompts, completions, **info)
        return checked_rewards(rewards, len(completions), component)

    def __repr__(self) -> str:
        return f"RewardFunction({self.__name__})"


def reward_funcs(*rewards: Any, registry: Any = None) -> list[RewardFunction]:
    """TRL reward functions from Reward objectives, names (``"exact-match"``) or tables
    (``{"type": "exact-match", "extract": "boxed"}``, built through ``registry``, default the
    installed plugins): ``GRPOTrainer(reward_funcs=tokensmith.reward_funcs("exact-match"))``."""
    if not rewards:
        raise ConfigError("no rewards given", component="reward_funcs",
                          hint="e.g. reward_funcs('exact-match')")
    out = []
    for item in rewards:
        if isinstance(item, (str, Mapping)):
            if registry is None:
                from tokensmith import default_registry

                registry = default_registry()
            item = registry.build("objective", item)
        if role_of(item) != "reward":
            raise ConfigError(f"{getattr(item, 'name', item)!r} is a {item.role}, not a reward",
                              component="reward_funcs",
                              hint="losses, weights and masks go to ObjectiveSFTTrainer(objectives=...)")
        out.append(RewardFunction(item))
    return out


class _ObjectiveSFTMixin:
    """What :class:`ObjectiveSFTTrainer` adds to ``trl.SFTTrainer`` (kept apart so that this
    module imports without TRL: the class is made on first use)."""

    def __init__(self, model: Any, args: Any = None, *, objectives: Any,
                 batch_keys: Sequence[str] = BATCH_KEYS, registry: Any = None, **kwargs: Any) -> None:
        if kwargs.get("compute_loss_func") is not None:
            raise ConfigError("ObjectiveSFTTrainer got both objectives= and compute_loss_func=",
                              component="ObjectiveSFTTrainer", hint="give the loss as objectives only")
        if getattr(args, "loss_type", "nll") != "nll":
            raise ConfigError(f"loss_type={args.loss_type!r} is TRL's own loss; the objectives replace it",
                              component="ObjectiveSFTTrainer",
                              hint="leave loss_type at 'nll' and express the loss as objectives")
        self.objective = composed(objectives, registry=registry)
        self.batch_keys = tuple(batch_keys)
        if args is None:
            name = model if isinstance(model, str) else getattr(model.config, "_name_or_path", "") or "model"
            args = sft_config(f"{name.split('/')[-1]}-SFT")
        super().__init__(model, args, **kwargs)

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        inputs["use_cache"] = False
        outputs = model(**model_inputs(inputs, self.batch_keys))
        loss = self.objective(inputs, outputs, num_items=num_items_in_batch)
        loss = scaled_for_devices(self, loss, num_items_in_batch)
        self._log_token_metrics(inputs, outputs.logits)
        return (loss, outputs) if return_outputs else loss

    def _log_token_metrics(self, inputs: Mapping[str, Any], logits: Any) -> None:
        """TRL's entropy, mean_token_accuracy and num_tokens, from the full logits."""
        import torch

        mode = "train" if self.model.training else "eval"
        gather = self.accelerator.gather_for_metrics
        with torch.no_grad():
            labels = inputs["labels"][..., 1:]
            counted = labels != -100
            logp = logits[..., :-1, :].float().log_softmax(-1)
            entropy = -(logp.exp() * logp).sum(-1)
            correct = (logp.argmax(-1) == labels) & counted
            n = gather(counted.sum()).sum()
            entropy_sum = gather((entropy * counted).sum()).sum()
            correct_sum = gather(correct.sum()).sum()
        self._metrics[mode]["entropy"].append((entropy_sum / n).item() if n > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((correct_sum / n).item() if n > 0 else 0.0)
        if mode == "train" and "attention_mask" in inputs:
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item()
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


_DOC = """``trl.SFTTrainer`` training on tokensmith objectives: ``objectives=`` (objectives, names or
tables, composed into one loss) replaces TRL's loss; everything else — data preparation,
completion-only labels, packing, logging — is TRL's. The objectives see the collated batch
(prompt labels are IGNORE_INDEX with ``completion_only_loss``, so ``response-only`` selects the
completion). Without ``args``, :func:`sft_config`'s CPU-safe defaults. Like TRL's own
``compute_loss_func`` path, a MoE router's auxiliary loss is not added."""


def _objective_sft_trainer() -> type:
    try:
        from trl import SFTTrainer
    except ImportError as exc:
        missing = exc

        class ObjectiveSFTTrainer:
            """Stands in where TRL cannot be imported: building one says how to install it."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise ConfigError(f"ObjectiveSFTTrainer needs TRL, which cannot be imported ({missing})",
                                  component="ObjectiveSFTTrainer", hint=_INSTALL) from missing

        ObjectiveSFTTrainer.__qualname__ = "ObjectiveSFTTrainer"
        return ObjectiveSFTTrainer
    return type("ObjectiveSFTTrainer", (_ObjectiveSFTMixin, SFTTrainer),
                {"__doc__": _DOC, "__module__": __name__})


def __getattr__(name: str) -> Any:
    if name == "ObjectiveSFTTrainer":
        cls = globals()[name] = _objective_sft_trainer()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
