"""Typed objectives inside transformers' ``Trainer`` (docs/objectives.md).

- :func:`compute_loss_func` for ``Trainer(compute_loss_func=...)``: the Trainer hands a loss
  function only ``(outputs, labels, num_items_in_batch)``, so the objectives see
  ``{"labels": labels}`` as their batch;
- :class:`ObjectiveTrainer`, a ``Trainer`` whose ``compute_loss`` hands the objectives the
  whole batch (``response_mask`` included: it is kept from the dataset and not given to the
  model).

Both normalise by ``num_items_in_batch`` like the model's own loss, so gradient accumulation
and ``average_tokens_across_devices`` behave as with the default loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transformers import Trainer

from tokensmith.core.errors import ConfigError, IncompatibleComponentsError
from tokensmith.core.objectives import (
    RESPONSE_MASK_KEY,
    TOKEN_WEIGHTS_KEY,
    ComposedLoss,
    Objective,
    build_objectives,
    compose,
)

#: Batch keys objectives may read that are not inputs of the model's forward: kept in the batch
#: (not removed as unused columns) and not passed to the model.
BATCH_KEYS: tuple[str, ...] = (RESPONSE_MASK_KEY, TOKEN_WEIGHTS_KEY)

ObjectiveSpec = Objective | str | Mapping[str, Any]


def composed(objectives: ComposedLoss | ObjectiveSpec | Sequence[ObjectiveSpec], *,
             registry: Any = None) -> ComposedLoss:
    """One :class:`ComposedLoss` from objectives, names (``"response-only"``) or tables
    (``{"type": "random-fraction", "fraction": 0.3}``); names are built through ``registry``
    (default: the installed plugins)."""
    if isinstance(objectives, ComposedLoss):
        return objectives
    built = build_objectives(objectives, registry=registry, component="objectives")
    if not built:
        raise ConfigError("no objectives given", hint="e.g. objectives=['cross-entropy']")
    return compose(built)


class _LabelsOnly(dict):
    """The batch ``Trainer(compute_loss_func=...)`` can offer: the labels and nothing else."""

    def __missing__(self, key: str) -> Any:
        raise IncompatibleComponentsError(
            f"an objective needs batch[{key!r}], but Trainer(compute_loss_func=...) hands objectives "
            "only the labels", component="compute_loss_func",
            hint="use tokensmith.ObjectiveTrainer(objectives=...), which passes the whole batch")


def compute_loss_func(objectives: ComposedLoss | ObjectiveSpec | Sequence[ObjectiveSpec], *,
                      registry: Any = None) -> Callable[..., Any]:
    """A loss function for ``transformers.Trainer(compute_loss_func=...)`` from objectives
    (composed with :func:`tokensmith.compose`). The objectives see ``{"labels": labels}`` as
    the batch; one that needs another key raises an :class:`IncompatibleComponentsError`
    pointing to :class:`ObjectiveTrainer`."""
    loss = composed(objectives, registry=registry)

    def loss_func(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        if labels is None:
            raise IncompatibleComponentsError(
                "the batch has no labels", component="compute_loss_func",
                hint="a causal-LM collator (DataCollatorForLanguageModeling(mlm=False)) adds them")
        return loss(_LabelsOnly(labels=labels), outputs, num_items=num_items_in_batch)

    loss_func.__name__ = loss_func.__qualname__ = f"tokensmith_loss[{loss.name}]"
    loss_func.objective = loss  # type: ignore[attr-defined]
    return loss_func


def model_inputs(inputs: Mapping[str, Any], batch_keys: Sequence[str]) -> dict[str, Any]:
    """The part of a batch the model's forward receives: not the labels (the objectives make
    the loss) and not the objectives' own keys."""
    return {k: v for k, v in inputs.items() if k != "labels" and k not in batch_keys}


def scaled_for_devices(trainer: Trainer, loss: Any, num_items_in_batch: Any) -> Any:
    """``Trainer.compute_loss``'s last step: with ``average_tokens_across_devices`` the token
    count is global, and DDP averages gradients, so the loss is multiplied back by the ranks."""
    if trainer.args.average_tokens_across_devices and num_items_in_batch is not None:
        scale = trainer.accelerator.num_processes // trainer.get_tp_size()
        loss = loss * (scale if trainer.args.n_gpu <= 1 else trainer.args.n_gpu)
    return loss


class ObjectiveTrainer(Trainer):
    """``transformers.Trainer`` training on tokensmith objectives: ``objectives=`` (objectives,
    names or tables, composed into one loss) replaces the model's own loss, and they see the
    whole batch. ``batch_keys`` (default :data:`BATCH_KEYS`) are the dataset columns the
    objectives read besides the model's inputs. Everything else is the Trainer's."""

    def __init__(self, *args: Any, objectives: Any, batch_keys: Sequence[str] = BATCH_KEYS,
                 registry: Any = None, **kwargs: Any) -> None:
        if kwargs.get("compute_loss_func") is not None:
            raise ConfigError("ObjectiveTrainer got both objectives= and compute_loss_func=",
                              component="ObjectiveTrainer", hint="give the loss as objectives only")
        self.objective = composed(objectives, registry=registry)
        self.batch_keys = tuple(batch_keys)
        super().__init__(*args, **kwargs)

    def _set_signature_columns_if_needed(self) -> None:
        first = self._signature_columns is None
        super()._set_signature_columns_if_needed()
        if first:
            self._signature_columns = [*self._signature_columns,
                                       *(k for k in self.batch_keys if k not in self._signature_columns)]

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        outputs = model(**model_inputs(inputs, self.batch_keys))
        loss = self.objective(inputs, outputs, num_items=num_items_in_batch)
        loss = scaled_for_devices(self, loss, num_items_in_batch)
        return (loss, outputs) if return_outputs else loss
