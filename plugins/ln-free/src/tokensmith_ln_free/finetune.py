"""The training recipe: fine-tune with cross-entropy while fake norms are frozen on a schedule.

Heimersheim (2024), "You can remove GPT2's LayerNorm by fine-tuning";
Baroni et al. (2025), arXiv 2507.02559. Defaults follow the paper's training setup
(AdamW, lr 6e-4 with warm-up then cosine to 3e-4, weight decay 0.01, gradient clip 1.0).

While a fake norm is live, every training forward pass updates its σ̄ EMA; at its removal
event σ̄ is frozen. Under ``torchrun`` (``Runtime.world_size > 1``) the model is wrapped in
DDP, each rank takes every ``world_size``-th batch, and σ̄ is averaged over ranks before it
is frozen so that all ranks remove the same norm.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Sequence
from typing import Any

import attrs

from tokensmith import ConfigError, non_negative, non_negative_int, positive, positive_int

from .schedule import FIRST_POSITION, SPECIAL_IDS, RemovalEvent
from .surgery import fake_norms, forward_kwargs, observing, special_positions

COMPONENT = "ln-free finetune"


def _patterns(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _globs(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{attribute.name} must be a non-empty tuple of glob patterns, got {value!r}")


@attrs.frozen
class FinetuneConfig:
    """The recipe's hyperparameters (a Python API, not a pipeline component).
    ``trainable``: glob patterns over parameter names (the rest is frozen for the run);
    ``eval_every``: also evaluate every N steps (0: only at removal events and at the end)."""

    steps: int = attrs.field(validator=positive_int)
    lr: float = attrs.field(default=6e-4, validator=positive)
    min_lr: float = attrs.field(default=3e-4, validator=non_negative)
    warmup: int = attrs.field(default=20, validator=non_negative_int)
    weight_decay: float = attrs.field(default=0.01, validator=non_negative)
    grad_clip: float = attrs.field(default=1.0, validator=positive)
    trainable: tuple[str, ...] = attrs.field(default=("*",), converter=_patterns, validator=_globs)
    eval_every: int = attrs.field(default=0, validator=non_negative_int)


@attrs.frozen
class EvalPoint:
    step: int
    loss: float
    label: str


@attrs.define
class FinetuneLog:
    """Training loss per step, evaluation loss at each removal event (just before and just after
    it) and at the end, the events applied, and the wall time."""

    train_loss: list[float] = attrs.field(factory=list)
    evals: list[EvalPoint] = attrs.field(factory=list)
    events: list[RemovalEvent] = attrs.field(factory=list)
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.evals[-1].loss

    def to_dict(self) -> dict[str, Any]:
        return {"train_loss": self.train_loss, "seconds": self.seconds,
                "evals": [attrs.asdict(e) for e in self.evals],
                "events": [attrs.asdict(e) for e in self.events]}


def learning_rate(step: int, config: FinetuneConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr`` over the remaining steps."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    span = max(1, config.steps - config.warmup)
    progress = min(1.0, (step - config.warmup) / span)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def evaluate(model: Any, batches: Sequence[Any]) -> float:
    """Mean next-token cross-entropy over ``batches`` (eval mode, no σ̄ updates)."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        losses = [float(model(**forward_kwargs(b, device, labels=True)).loss) for b in batches]
    model.train(was_training)
    return sum(losses) / len(losses)


def apply_event(model: Any, event: RemovalEvent, world_size: int = 1) -> None:
    """Freeze the event's norm (σ̄ averaged over ranks first) or turn its special treatment off."""
    if event.target == SPECIAL_IDS:
        special_positions(model).treat_special_ids = False
        return
    if event.target == FIRST_POSITION:
        special_positions(model).treat_first = False
        return
    norm = fake_norms(model)[event.target]
    if world_size > 1:
        import torch.distributed as dist

        for stat in (norm.average_std, norm.special_std):
            dist.all_reduce(stat)
            stat.div_(world_size)
    norm.freeze()


def _distributed(model: Any, runtime: Any) -> tuple[Any, int, int]:
    if runtime is None or not runtime.is_distributed:
        return model, 0, 1
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if runtime.device_type == "cuda" else "gloo")
    device_ids = [runtime.local_rank] if runtime.device_type == "cuda" else None
    # Each rank keeps its own σ̄ EMA (no buffer broadcast); apply_event averages them.
    wrapped = DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
    return wrapped, runtime.rank, runtime.world_size


def finetune(model: Any, train_batches: Sequence[Any], config: FinetuneConfig, *,
             schedule: Sequence[RemovalEvent] = (), eval_batches: Sequence[Any] = (),
             runtime: Any = None) -> FinetuneLog:
    """Fine-tune ``model`` (with fake norms installed when ``schedule`` is not empty) for
    ``config.steps`` steps on ``train_batches`` (token ids ``(batch, seq)``, or mappings of model
    keyword arguments with ``labels``), applying each removal event
    at its step. An empty schedule is the vanilla fine-tune the paper compares against."""
    import torch

    late = [e for e in schedule if e.step >= config.steps]
    if late:
        raise ConfigError(f"{len(late)} removal event(s) at or after the last step ({config.steps}): "
                          f"{[e.target for e in late]}", component=COMPONENT,
                          hint="use more steps or an earlier/denser schedule")
    if not train_batches:
        raise ConfigError("no training batches", component=COMPONENT)
    named = list(model.named_parameters())
    unmatched = [p for p in config.trainable if not any(fnmatch.fnmatchcase(n, p) for n, _ in named)]
    if unmatched:
        raise ConfigError(f"trainable pattern(s) {unmatched} match no parameter", component=COMPONENT,
                          hint="patterns are globs over model.named_parameters() names")
    flags = {n: p.requires_grad for n, p in named}
    params = []
    for name, param in named:
        param.requires_grad_(any(fnmatch.fnmatchcase(name, p) for p in config.trainable))
        if param.requires_grad:
            params.append(param)
    device = params[0].device
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    trained, rank, world = _distributed(model, runtime)
    log = FinetuneLog()
    start = time.perf_counter()

    def record(step: int, label: str) -> None:
        if eval_batches:
            log.evals.append(EvalPoint(step, evaluate(model, eval_batches), label))

    try:
        record(0, "start")
        for step in range(config.steps):
            for event in (e for e in schedule if e.step == step):
                record(step, f"before {event.target}")
                apply_event(model, event, world)
                log.events.append(event)
                record(step, f"after {event.target}")
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            batch = train_batches[(step * world + rank) % len(train_batches)]
            model.train()
            with observing(model):
                loss = trained(**forward_kwargs(batch, device, labels=True)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            log.train_loss.append(float(loss.detach()))
            if config.eval_every and (step + 1) % config.eval_every == 0 and step + 1 < config.steps:
                record(step + 1, "step")
        record(config.steps, "end")
    finally:
        for name, param in named:
            param.requires_grad_(flags[name])
        model.eval()
    log.seconds = time.perf_counter() - start
    return log
