"""Fine-tuning with the norms removed on a schedule, on tokensmith's recipe runner.

Heimersheim (2024), "You can remove GPT2's LayerNorm by fine-tuning";
Baroni et al. (2025), arXiv 2507.02559.

The loop is transformers' ``Trainer`` (``tokensmith.run_recipe``, ``tokensmith train``, the
same under ``torchrun``); this module is what ln-free puts around it:

- :class:`LNFreeRecipe`, the ``recipe`` component ``ln-free``: ``prepare`` installs live fake
  norms and lays out the removal schedule; its callback lets the live norms measure σ̄ on the
  training forward passes only (never on evaluations), averages σ̄ over the ranks after every
  step (so under ``torchrun`` every rank freezes the same σ̄), and applies each removal event
  once its step is done, with an evaluation just before and just after it;
- :data:`PAPER`: the paper's optimisation as ``[train]`` keys (AdamW, warm-up then cosine
  from 6e-4 to 3e-4, weight decay 0.01, gradient clip 1.0);
- :func:`finetune`: the runner with those defaults, with the recipe or (the vanilla
  fine-tune the paper compares against) without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from tokensmith import ConfigError, Recipe, find_norm_layers, positive_int

from .schedule import FIRST_POSITION, SPECIAL_IDS, RemovalEvent, removal_schedule
from .surgery import (
    LNFreeNormalization,
    _open_unit,
    _texts,
    _token_ids,
    _tuple,
    fake_norms,
    forward_kwargs,
    special_positions,
)

COMPONENT = "recipe 'ln-free'"
#: the paper's optimisation, as [train] keys (steps and warm-up are the run's own)
PAPER: dict[str, Any] = {"lr": 6e-4, "min_lr": 3e-4, "schedule": "cosine_with_min_lr", "warmup": 20,
                         "weight_decay": 0.01, "grad_clip": 1.0}


def evaluate(model: Any, batches: Sequence[Any]) -> float:
    """Mean next-token cross-entropy over ``batches`` (token ids ``(batch, seq)`` or mappings of
    model keyword arguments; eval mode, no σ̄ updates)."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        losses = [float(model(**forward_kwargs(b, device, labels=True)).loss) for b in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def apply_event(model: Any, event: RemovalEvent) -> None:
    """Freeze the event's norm at its σ̄, or turn its special treatment off."""
    if event.target == SPECIAL_IDS:
        special_positions(model).treat_special_ids = False
    elif event.target == FIRST_POSITION:
        special_positions(model).treat_first = False
    else:
        fake_norms(model)[event.target].freeze()


def average_over_ranks(norms: Iterable[Any]) -> None:
    """Replace σ̄ and σ̄_special of ``norms`` by their mean over the ranks (one all-reduce);
    nothing outside ``torch.distributed``. Every rank starts a step from the same σ̄ and adds
    one EMA update from its own batch, so the mean is the EMA of the ranks' mean statistics."""
    import torch
    import torch.distributed as dist

    norms = list(norms)
    if not norms or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    stats = torch.stack([s for n in norms for s in (n.average_std, n.special_std)])
    dist.all_reduce(stats)
    stats /= dist.get_world_size()
    for i, norm in enumerate(norms):
        norm.average_std.copy_(stats[2 * i])
        norm.special_std.copy_(stats[2 * i + 1])


@attrs.define
class LNFreeRecipe(Recipe):
    """The ``ln-free`` recipe: fine-tune while the fake norms are frozen one by one.

    Its fields are the ``[recipe]`` parameters. Event ``i`` of the paper's order (every
    MLP-input norm layer by layer, every attention-input norm, the final norm, the EOT
    treatment, the position-0 treatment) is applied after step ``start + gap * i``; every event
    must leave at least one step after it. After a run, ``events`` is the schedule and
    ``applied`` the events applied, in order."""

    name = "ln-free"

    layers: tuple[str, ...] = attrs.field(default=("*",), converter=_tuple, validator=_texts, metadata={
        "doc": "glob patterns over the norm paths to remove (the others stay as they are)"})
    start: int = attrs.field(default=20, validator=positive_int, metadata={
        "doc": "the step after which the first norm is frozen (>= 1: σ̄ is measured while training)"})
    gap: int = attrs.field(default=2, validator=positive_int, metadata={"doc": "steps between two events"})
    remove_special_ids: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool),
                                           metadata={"doc": "end with the EOT treatment turned off"})
    remove_first_position: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool),
                                              metadata={"doc": "end with the position-0 treatment off"})
    momentum: float = attrs.field(default=0.9, validator=_open_unit, metadata={
        "doc": "EMA momentum of σ̄, in (0, 1)"})
    special_ids: tuple[int, ...] | None = attrs.field(default=None, converter=_tuple, validator=_token_ids,
                                                      metadata={"doc": "token ids that share σ̄_special with "
                                                                       "position 0 (default: BOS/EOS ids)"})
    events: tuple[RemovalEvent, ...] = attrs.field(default=(), init=False)
    applied: list[RemovalEvent] = attrs.field(factory=list, init=False)

    def prepare(self, model: Any, ctx: Any) -> Any:
        """Install live fake norms (bit-identical outputs) on ``model``, in place, after checking
        that the schedule fits in the run's steps."""
        provider = LNFreeNormalization(layers=self.layers, momentum=self.momentum,
                                       special_ids=self.special_ids)
        provider.tokenizer = ctx.tokenizer
        paths = [layer.path for layer in provider.select(find_norm_layers(model)[0])]
        events = removal_schedule(paths, start=self.start, gap=self.gap, special_ids=self.remove_special_ids,
                                  first_position=self.remove_first_position)
        steps = ctx.settings.steps
        late = [e for e in events if e.step >= steps]
        if late:
            raise ConfigError(f"{len(late)} of {len(events)} removal events at or after the last step "
                              f"({steps}): {[e.target for e in late][:4]}", component=COMPONENT,
                              hint=f"the last event is after step {events[-1].step}: train at least "
                                   f"{events[-1].step + 1} steps, or use a smaller start/gap")
        model, _ = provider.replace(model, inplace=True)
        self.events, self.applied = events, []
        return model

    def callbacks(self, ctx: Any) -> list[Any]:
        from .callbacks import RemovalCallback

        return [RemovalCallback(self, ctx)]


def finetune(model: Any, train_data: Iterable[Any], *, steps: int, recipe: LNFreeRecipe | None = None,
             eval_data: Iterable[Any] | None = None, tokenizer: Any = None, data: Any = None,
             output_dir: Any = "runs/ln-free", runtime: Any = None, callbacks: Sequence[Any] = (),
             resume: Any = None, **train: Any) -> Any:
    """Fine-tune ``model`` for ``steps`` steps through ``tokensmith.run_recipe`` with the
    paper's optimisation (:data:`PAPER`; any ``[train]`` key overrides it) and return its
    ``tokensmith.TrainResult``. With ``recipe`` (an :class:`LNFreeRecipe`) the norms are
    removed on its schedule; without it this is the vanilla fine-tune. ``train_data`` and
    ``eval_data`` are examples as the runner takes them: ``{"input_ids": ...}`` or text
    (with ``tokenizer``). ``resume``: a checkpoint directory or ``"latest"`` (in ``output_dir``),
    with a fresh recipe: the events before the checkpoint are applied again."""
    from tokensmith import run_recipe

    return run_recipe(model=model, train_data=train_data, tokenizer=tokenizer, eval_data=eval_data,
                      data=data, arguments={**PAPER, "steps": steps, **train}, recipe=recipe,
                      callbacks=callbacks, runtime=runtime, output_dir=output_dir, resume=resume)
