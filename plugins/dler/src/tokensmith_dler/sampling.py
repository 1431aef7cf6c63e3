"""Dynamic sampling that refills the batch (DLER, Liu et al., 2025, arXiv 2510.15110, after DAPO's
dynamic sampling, Yu et al., 2025, arXiv 2503.14476).

A prompt whose group of responses all earned the same reward has zero advantage everywhere: it
only shrinks the update. DAPO (and DLER's recipe: ``filter_groups`` on the sequence reward, a
generation batch of 384 prompts for 256 kept) drops such groups and *samples more prompts until
the batch is full*, so that every update has its full number of informative groups.
:class:`DynamicSampling` is that loop, independent of any trainer: it asks a ``sample(round)``
callback for rounds of scored groups, keeps the informative ones in order until ``target``
groups are kept, and stops after ``max_extra_rounds`` extra rounds. When the cap is reached
with the batch still short, it says so in its counters (``cap_reached``, ``short``), and either
completes the batch with dropped groups that the update must mask out (``on_cap="mask"``: the
batch keeps its shape, its gradient is that of the informative groups alone) or raises a
:class:`~tokensmith.ResourceLimitError` (``on_cap="error"``, as the reference recipe, which
stops when its generation-batch cap is exceeded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs

from tokensmith import ConfigError, InputError, ResourceLimitError, non_negative, non_negative_int

from .objectives import informative_groups

__all__ = ["DynamicSampling", "SampledGroup", "SamplingResult"]


@attrs.frozen
class SampledGroup:
    """One group of the assembled batch: which round it came from, its group id in that round,
    and whether it is informative (False only for the masked groups that complete a batch after
    the cap was reached)."""

    round: int
    group: int
    informative: bool


@attrs.frozen
class SamplingResult:
    """What :meth:`DynamicSampling.collect` assembled, and its counters."""

    picks: tuple[SampledGroup, ...]
    rounds: int
    sampled_groups: int
    informative_groups: int
    target: int
    cap_reached: bool

    @property
    def kept_groups(self) -> int:
        """Informative groups in the batch (at most ``target``)."""
        return sum(p.informative for p in self.picks)

    @property
    def short(self) -> int:
        """How many informative groups the batch lacks (0 when it is full)."""
        return self.target - self.kept_groups

    def counters(self) -> dict[str, float]:
        """The counters as numbers, for a trainer's logs."""
        return {
            "rounds": float(self.rounds),
            "sampled_groups": float(self.sampled_groups),
            "informative_groups": float(self.informative_groups),
            "kept_groups": float(self.kept_groups),
            "short_groups": float(self.short),
            "cap_reached": float(self.cap_reached),
        }


def _on_cap(value: Any) -> None:
    if value not in ("mask", "error"):
        raise ConfigError(
            f"on_cap must be 'mask' or 'error', got {value!r}",
            component="dynamic sampling",
            hint="'mask' keeps the batch's shape and masks the missing groups; 'error' stops",
        )


def _groups_in_order(groups: Any) -> list[int]:
    seen: dict[int, None] = {}
    for g in groups.tolist():
        seen.setdefault(int(g), None)
    return list(seen)


@attrs.define
class DynamicSampling:
    """DAPO/DLER dynamic sampling: drop the groups whose rewards are all equal (range at most
    ``eps``, the guard against float noise in a near-zero-variance group) and sample more rounds
    of prompts until ``target`` informative groups are kept, at most ``max_extra_rounds`` rounds
    after the first (0: no refill, the dropped groups are only masked)."""

    eps: float = attrs.field(
        default=1e-6,
        validator=non_negative,
        metadata={"doc": "a group whose reward range is at most eps counts as zero-variance and is dropped"},
    )
    max_extra_rounds: int = attrs.field(
        default=3,
        validator=non_negative_int,
        metadata={"doc": "sampling rounds after the first, at most, to refill the batch (0: mask only)"},
    )
    on_cap: Literal["mask", "error"] = attrs.field(
        default="mask",
        validator=lambda _i, _a, value: _on_cap(value),
        metadata={
            "doc": "the cap reached with the batch short: 'mask' completes it with dropped groups "
            "that the update masks out, 'error' raises ResourceLimitError"
        },
    )

    def collect(self, sample: Callable[[int], tuple[Any, Any]], target: int) -> SamplingResult:
        """Call ``sample(round)`` (round 0, 1, ...; each returns ``(rewards, groups)``: one reward
        and one group id per completion) until ``target`` informative groups are kept or the cap
        is reached. Informative groups are kept in the order sampled; once the batch is full the
        rest of the last round is discarded (as the reference recipe trims to the train batch)."""
        if isinstance(target, bool) or not isinstance(target, int) or target < 1:
            raise InputError(
                f"target must be a positive number of groups, got {target!r}",
                component="dynamic sampling",
                hint="the number of prompt groups in one update batch",
            )
        import torch

        picks: list[SampledGroup] = []
        dropped: list[SampledGroup] = []
        sampled = informative = 0
        rounds = 0
        for r in range(self.max_extra_rounds + 1):
            rewards, groups = sample(r)
            rounds += 1
            keep = informative_groups(rewards, groups, self.eps)
            g = torch.as_tensor(groups).detach().cpu()
            order = _groups_in_order(g)
            sampled += len(order)
            for gid in order:
                if bool(keep[g == gid][0]):
                    informative += 1
                    if len(picks) < target:
                        picks.append(SampledGroup(r, gid, True))
                else:
                    dropped.append(SampledGroup(r, gid, False))
            if len(picks) >= target:
                break
        cap_reached = len(picks) < target
        if cap_reached:
            if self.on_cap == "error":
                raise ResourceLimitError(
                    f"{len(picks)} informative groups of {target} after {rounds} sampling rounds "
                    f"({sampled} groups sampled, every other one had all-equal rewards)",
                    component="dynamic sampling",
                    hint="raise max_extra_rounds, use easier or harder prompts, or on_cap='mask'",
                )
            # the batch keeps its shape: dropped groups fill it, and the trainer masks them out
            picks += dropped[: target - len(picks)]
        return SamplingResult(
            picks=tuple(picks),
            rounds=rounds,
            sampled_groups=sampled,
            informative_groups=informative,
            target=target,
            cap_reached=cap_reached,
        )
