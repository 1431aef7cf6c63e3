"""DLER's objective pieces (Liu et al., 2025, "DLER: Doing Length pEnalty Right", arXiv 2510.15110).

Each piece is a tokensmith objective, so any recipe or trainer can use it alone or with the
others (the DLER recipe is all of them; :class:`~tokensmith_dler.trainer.DLERTrainer` wires them
into TRL's GRPOTrainer):

- :class:`TruncationPenalty` (reward): the truncation length penalty. A response earns its
  correctness reward only if it finished (EOS) within the length cap L (or the prompt's own
  L(q), Difficulty-Aware DLER); a response cut off at L gets the reward times ``penalty_coef``
  (the reference code's "stop properly" coefficient, 0.1), so it is never rewarded 1;
- :class:`BatchWhitened` (advantage): batch-wise reward normalisation — subtract the group
  mean, broadcast to the response tokens, whiten over the whole batch's valid tokens;
- :class:`CorrectSampleBoost` (advantage): another advantage plus a constant on correct samples;
- :class:`ClipHigher` (loss): the asymmetric (clip-higher, DAPO) PPO objective with dual clip,
  token-mean aggregation and an optional k3 KL term;
- :func:`informative_groups` (dynamic sampling's filter) and :class:`DifficultyAwareTruncation`
  (L(q) from a group's pass rate), used by the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from tokensmith import (
    IGNORE_INDEX,
    TOKEN_WEIGHTS_KEY,
    Advantage,
    ConfigError,
    InputError,
    Loss,
    Reward,
    non_negative,
    positive,
    positive_int,
    response_tokens,
)

__all__ = [
    "BatchWhitened",
    "ClipHigher",
    "CorrectSampleBoost",
    "DifficultyAwareTruncation",
    "TruncationPenalty",
    "clip_higher_token_loss",
    "informative_groups",
]


def _below_one(instance: Any, attribute: Any, value: Any) -> None:
    non_negative(instance, attribute, value)
    if value >= 1:
        raise ConfigError(
            f"{attribute.name} must be in [0, 1), got {value}: a truncated response would "
            "otherwise be rewarded like a finished one",
            component=f"reward '{instance.name}'",
        )


def _int_tuple(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return tuple(value)


def _token_ids(instance: Any, attribute: Any, value: tuple[int, ...]) -> None:
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in value):
        raise ConfigError(
            f"{attribute.name} must be non-negative token ids, got {value!r}",
            component=f"reward '{instance.name}'",
        )


@attrs.define
class TruncationPenalty(Reward):
    """The truncation length penalty (DLER, section "truncation penalty"; the reference code's
    ``stop_properly`` penalty):

        r_i = c_i            if response i ended with EOS within L(q) tokens,
        r_i = c_i · penalty  otherwise (cut off by the cap, or longer than its prompt's L(q)),

    with c_i = 1 when its final answer equals ``info["answer"]`` (tokensmith-baselines'
    ``exact-match``, ``extract`` as there). Whether a response finished is ``info["finished"]``
    when given (the DLER trainer passes it), else whether its ``completion_ids`` end with one of
    ``eos_token_ids`` (TRL passes ``completion_ids``, EOS included). Its length is
    ``len(completion_ids)``; the cap is ``info["truncation_length"]`` (per completion, from
    :class:`DifficultyAwareTruncation`) when given, else ``max_length``.
    """

    name = "truncation-penalty"
    max_length: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(positive_int),
        metadata={"doc": "L, the response-token cap (None: the generation cap alone, seen as a missing EOS)"},
    )
    penalty_coef: float = attrs.field(
        default=0.1,
        validator=_below_one,
        metadata={"doc": "factor on the reward of a response that did not finish within L (0: it scores 0)"},
    )
    eos_token_ids: tuple[int, ...] = attrs.field(
        default=(),
        converter=_int_tuple,
        validator=_token_ids,
        metadata={"doc": "ids that end a response (when info has no 'finished' column)"},
    )
    extract: Literal["last-number", "boxed", "text"] = attrs.field(
        default="last-number", metadata={"doc": "what the final answer is: last-number, boxed or text"}
    )

    def _column(self, info: Mapping[str, Any], key: str) -> list[Any] | None:
        value = info.get(key)
        if value is None:
            return None
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InputError(
                f"{key!r} must be a list (one per completion), not {type(value).__name__}",
                component=self.component,
                hint="one value per completion",
            )
        return list(value)

    def finished_and_lengths(self, n: int, info: Mapping[str, Any]) -> tuple[list[bool], list[int | None]]:
        """Per completion: did it end with EOS, and how many tokens it has (None when unknown)."""
        ids = self._column(info, "completion_ids")
        finished = self._column(info, "finished")
        if ids is not None:
            ids = [list(row.tolist() if hasattr(row, "tolist") else row) for row in ids]
        if finished is None:
            if ids is None or not self.eos_token_ids:
                raise InputError(
                    "cannot tell which responses finished: no 'finished' column, and no "
                    "'completion_ids' with eos_token_ids",
                    component=self.component,
                    hint="pass eos_token_ids=(tokenizer.eos_token_id,) (TRL passes "
                    "completion_ids), or a 'finished' column",
                )
            finished = [bool(row) and row[-1] in self.eos_token_ids for row in ids]
        if any(not isinstance(f, bool) for f in finished):
            raise InputError(
                "'finished' must hold bools",
                component=self.component,
                hint="True where the response ended with EOS",
            )
        lengths = [len(row) for row in ids] if ids is not None else [None] * n
        return finished, lengths

    def __call__(self, prompts: Sequence[str], completions: Sequence[str], **info: Any) -> list[float]:
        from tokensmith import default_registry

        prompts, completions = self.check_inputs(prompts, completions, info, require=("answer",))
        # correctness is tokensmith-baselines' exact-match, built by name (plugins share components
        # through the registry, not imports)
        exact = default_registry().build("objective", {"type": "exact-match", "extract": self.extract})
        correct = exact(prompts, completions, answer=info["answer"])
        finished, lengths = self.finished_and_lengths(len(completions), info)
        caps = self._column(info, "truncation_length") or [self.max_length] * len(completions)
        rewards = []
        for c, done, length, cap in zip(correct, finished, lengths, caps):
            if cap is not None and length is None:
                raise InputError(
                    f"a length cap ({cap}) needs the responses' lengths",
                    component=self.component,
                    hint="pass completion_ids (TRL does)",
                )
            within = done and (cap is None or length <= cap)
            rewards.append(c if within else c * self.penalty_coef)
        return rewards


def _token_weighted(values: Any, lengths: Any) -> tuple[Any, Any]:
    """Mean and unbiased variance of ``values`` where value i counts ``lengths[i]`` times (the
    per-completion value broadcast to its tokens, as in the paper's token-level whitening)."""
    n = lengths.sum()
    mean = (lengths * values).sum() / n
    var = (lengths * (values - mean) ** 2).sum() / n
    # unbiased over the N tokens, as masked whitening in the reference recipe
    return mean, var * n / (n - 1).clamp(min=1)


@attrs.define
class BatchWhitened(Advantage):
    """Batch-wise reward normalisation (DLER's fix for the biased per-group std; REINFORCE++
    with a group baseline):

        a_i = r_i − mean_{j ∈ group(i)} r_j,      Â_i = (a_i − μ_B) / sqrt(σ²_B + eps),

    where μ_B, σ²_B are the mean and (unbiased) variance of a over the batch's valid response
    tokens: completion i counts ``lengths[i]`` times (its token count; all 1 when not given).
    Over those tokens the advantages have mean 0 and standard deviation 1 (unless every a_i is
    equal: then all are 0)."""

    name = "batch-whitened"
    eps: float = attrs.field(
        default=1e-8,
        validator=positive,
        metadata={"doc": "added to the batch variance before the square root"},
    )

    def __call__(self, rewards: Any, groups: Any, lengths: Any = None) -> Any:
        import torch

        r, g = self.check_inputs(rewards, groups)
        if lengths is None:
            w = torch.ones_like(r)
        else:
            w = torch.as_tensor(lengths, dtype=torch.float64).detach().cpu()
            if w.shape != r.shape or (w < 0).any() or not torch.isfinite(w).all():
                raise InputError(
                    f"lengths {tuple(w.shape)} must be one non-negative count per completion ({len(r)})",
                    component=self.component,
                    hint="the number of valid response tokens of each completion",
                )
        if not len(r):
            return r.to(torch.float32)
        _, inverse, counts = torch.unique(g, return_inverse=True, return_counts=True)
        group_mean = torch.zeros(len(counts), dtype=r.dtype).index_add_(0, inverse, r) / counts
        a = r - group_mean[inverse]
        if w.sum() <= 0:
            return torch.zeros_like(a, dtype=torch.float32)
        mean, var = _token_weighted(a, w)
        return ((a - mean) / torch.sqrt(var + self.eps)).to(torch.float32)


def _advantage_spec(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, (str, Mapping)) or getattr(value, "role", None) == "advantage":
        return
    raise ConfigError(
        f"base must be an advantage, its registered name or a table, got {type(value).__name__}",
        component=f"advantage '{instance.name}'",
        hint="e.g. 'batch-whitened'",
    )


@attrs.define
class CorrectSampleBoost(Advantage):
    """The correct-sample advantage boost of the reference recipe: the ``base`` advantage plus
    ``value`` on every completion whose reward is at least ``threshold`` (a correct, finished
    response), so that correct answers keep a positive push even in mostly-correct groups."""

    name = "correct-sample-boost"
    base: Any = attrs.field(
        default="batch-whitened",
        validator=_advantage_spec,
        metadata={"doc": "the advantage boosted: a registered name, a table or an Advantage"},
    )
    value: float = attrs.field(
        default=0.1, validator=non_negative, metadata={"doc": "added to the advantage of a correct sample"}
    )
    threshold: float = attrs.field(
        default=1.0, metadata={"doc": "a sample with reward >= threshold is correct"}
    )
    _built: Any = attrs.field(default=None, init=False, repr=False, eq=False)

    def _base(self) -> Any:
        if self._built is None:
            base = self.base
            if isinstance(base, (str, Mapping)):
                from tokensmith import default_registry

                base = default_registry().build("objective", base)
                if getattr(base, "role", None) != "advantage":
                    raise ConfigError(
                        f"base {self.base!r} is a {base.role}, not an advantage",
                        component=self.component,
                        hint="e.g. 'batch-whitened'",
                    )
            self._built = base
        return self._built

    def __call__(self, rewards: Any, groups: Any, lengths: Any = None) -> Any:
        import torch

        r, g = self.check_inputs(rewards, groups)
        base = self._base()
        advantages = base(r, g, lengths=lengths) if lengths is not None else base(r, g)
        return (torch.as_tensor(advantages, dtype=torch.float32) + self.value * (r >= self.threshold)).to(
            torch.float32
        )


def informative_groups(rewards: Any, groups: Any, eps: float = 1e-6) -> Any:
    """Dynamic sampling's filter (DAPO; DLER's "dynamic sampling"): True on the completions of
    groups whose rewards are not all equal — a group whose reward range is at most ``eps`` (the
    guard against float noise in a near-zero-variance group) has zero advantage everywhere and
    only dilutes the update, so it is dropped."""
    import torch

    r = torch.as_tensor(rewards, dtype=torch.float64).detach().cpu()
    g = torch.as_tensor(groups).detach().cpu()
    if r.dim() != 1 or g.shape != r.shape:
        raise InputError(
            f"rewards {tuple(r.shape)} and groups {tuple(g.shape)} must be 1-D and of one length",
            component="dynamic sampling",
            hint="one reward and one group index per completion",
        )
    _, inverse = torch.unique(g, return_inverse=True)
    n = int(inverse.max()) + 1 if len(inverse) else 0
    high = torch.full((n,), -torch.inf, dtype=r.dtype).scatter_reduce(0, inverse, r, "amax")
    low = torch.full((n,), torch.inf, dtype=r.dtype).scatter_reduce(0, inverse, r, "amin")
    return (high - low > eps)[inverse]


@attrs.define
class DifficultyAwareTruncation:
    """Difficulty-Aware DLER: a tighter truncation length L(q) for easier prompts. The difficulty
    of prompt q is its group's pass rate p(q) (share of responses correct and finished under the
    full cap); the cap shrinks linearly from ``max_length`` (p = 0) to ``min_length`` (p = 1):

        L(q) = max_length − round((max_length − min_length) · p(q)).

    The paper states the principle (easy questions, tighter truncation); this linear schedule is
    our reconstruction of it, stated as such in the README."""

    min_length: int = attrs.field(
        validator=positive_int, metadata={"doc": "L(q) of a prompt solved every time"}
    )
    max_length: int = attrs.field(validator=positive_int, metadata={"doc": "L(q) of a prompt never solved"})

    def __attrs_post_init__(self) -> None:
        if self.min_length > self.max_length:
            raise ConfigError(
                f"min_length {self.min_length} > max_length {self.max_length}",
                component="difficulty-aware truncation",
                hint="min_length <= max_length",
            )

    def lengths(self, pass_rates: Sequence[float]) -> list[int]:
        out = []
        for p in pass_rates:
            if not 0 <= p <= 1:
                raise InputError(
                    f"pass rate {p} is not in [0, 1]",
                    component="difficulty-aware truncation",
                    hint="the share of a group's responses that were correct",
                )
            out.append(self.max_length - round((self.max_length - self.min_length) * p))
        return out


def clip_higher_token_loss(
    logprobs: Any,
    old_logprobs: Any,
    advantages: Any,
    *,
    epsilon_low: float,
    epsilon_high: float,
    dual_clip: float | None,
    ref_logprobs: Any = None,
    kl_coef: float = 0.0,
) -> Any:
    """Per-token loss of the clip-higher PPO objective (DAPO eq. 8, with PPO's dual clip):

        ρ_t = exp(log π_θ − log π_old),
        ℓ_t = −min(ρ_t·A, clip(ρ_t, 1 − ε_lo, 1 + ε_hi)·A),
        ℓ_t ← min(ℓ_t, −c·A)  where A < 0  (dual clip: a bounded push-down on very large ratios),
        ℓ_t ← ℓ_t + β·(exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1)   (k3 KL, when β > 0).

    ``advantages`` broadcast against ``logprobs`` (one per sequence, ``(B, 1)``, or per token)."""
    import torch

    ratio = torch.exp(logprobs - old_logprobs)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    loss = -torch.min(ratio * advantages, clipped * advantages)
    if dual_clip is not None:
        loss = torch.where(advantages < 0, torch.min(loss, -dual_clip * advantages), loss)
    if kl_coef:
        delta = ref_logprobs - logprobs
        loss = loss + kl_coef * (torch.exp(delta) - delta - 1)
    return loss


def _dual_clip(instance: Any, attribute: Any, value: float | None) -> None:
    if value is None:
        return
    positive(instance, attribute, value)
    if value <= 1 + instance.epsilon_high:
        raise ConfigError(
            f"dual_clip c = {value} must be > 1 + epsilon_high = {1 + instance.epsilon_high}",
            component=f"loss '{instance.name}'",
            hint="the reference recipe uses c = 10",
        )


def _below_one_eps(instance: Any, attribute: Any, value: float) -> None:
    positive(instance, attribute, value)
    if value >= 1:
        raise ConfigError(
            f"{attribute.name} must be in (0, 1), got {value}", component=f"loss '{instance.name}'"
        )


@attrs.define
class ClipHigher(Loss):
    """DLER's policy loss: the asymmetric clip-higher PPO objective (ε_lo = 0.2 < ε_hi = 0.28:
    low-probability exploratory tokens may grow further, which keeps entropy from collapsing),
    dual clip c = 10, token-mean aggregation over every response token of the batch, and a k3 KL
    term to a reference policy (β = 5e-4 in the recipe; 0 here by default, so no reference is needed).

    The batch holds, besides ``labels`` (IGNORE_INDEX on the prompt and padding) and optionally
    ``response_mask``: ``advantages`` (one per sequence, or shaped like the labels), optionally
    ``old_logprobs`` (log π_old of each label, shaped like the labels; without it the update is
    on-policy: π_old = the current policy, detached) and ``ref_logprobs`` (needed when
    ``kl_coef > 0``). ``token_weights`` multiply the per-token loss. The sum over tokens is divided
    by ``num_items`` when given (the token count of the whole accumulated batch), else by the
    batch's response-token count.
    """

    name = "clip-higher"
    epsilon_low: float = attrs.field(
        default=0.2,
        validator=_below_one_eps,
        metadata={"doc": "ε_lo: the ratio is clipped below at 1 − ε_lo"},
    )
    epsilon_high: float = attrs.field(
        default=0.28, validator=positive, metadata={"doc": "ε_hi: the ratio is clipped above at 1 + ε_hi"}
    )
    dual_clip: float | None = attrs.field(
        default=10.0,
        validator=_dual_clip,
        metadata={"doc": "c: the loss of a negative-advantage token is at most c·|A| (None: no dual clip)"},
    )
    kl_coef: float = attrs.field(
        default=0.0, validator=non_negative, metadata={"doc": "β, the weight of the k3 KL to ref_logprobs"}
    )

    def clip_bounds(self) -> tuple[float, float]:
        return 1 - self.epsilon_low, 1 + self.epsilon_high

    def _aligned(self, batch: Mapping[str, Any], key: str, like: Any) -> Any:
        value = batch.get(key)
        if value is None:
            return None
        if tuple(value.shape) != tuple(like.shape):
            raise InputError(
                f"batch[{key!r}] has shape {tuple(value.shape)}, the labels {tuple(like.shape)}",
                component=self.component,
                hint=f"{key} is indexed like the labels",
            )
        return value

    def from_logprobs(
        self,
        logprobs: Any,
        old_logprobs: Any,
        advantages: Any,
        mask: Any,
        ref_logprobs: Any = None,
        *,
        weights: Any = None,
        num_items: Any = None,
    ) -> Any:
        """The loss from per-token log-probabilities (any aligned ``(B, T)`` layout, e.g. TRL's
        completion tokens): Σ mask·weights·ℓ_t / num_items (default: mask.sum(), at least 1)."""
        import torch

        if self.kl_coef and ref_logprobs is None:
            raise InputError(
                "kl_coef > 0 needs the reference log-probabilities",
                component=self.component,
                hint="pass ref_logprobs, or kl_coef = 0",
            )
        advantages = torch.as_tensor(advantages, dtype=logprobs.dtype, device=logprobs.device)
        if advantages.dim() == 1:
            advantages = advantages.unsqueeze(1)
        per_token = clip_higher_token_loss(
            logprobs,
            old_logprobs.to(logprobs),
            advantages,
            epsilon_low=self.epsilon_low,
            epsilon_high=self.epsilon_high,
            dual_clip=self.dual_clip,
            ref_logprobs=None if ref_logprobs is None else ref_logprobs.to(logprobs),
            kl_coef=self.kl_coef,
        )
        mask = mask.to(logprobs.dtype)
        scale = mask if weights is None else mask * weights.to(logprobs)
        # where() rather than a product: a masked position's loss may be anything (even inf) and
        # must contribute exactly 0, value and gradient
        total = torch.where(scale != 0, per_token * scale, torch.zeros_like(per_token)).sum()
        if num_items is None:
            num_items = mask.sum().clamp(min=1)
        elif isinstance(num_items, torch.Tensor):
            num_items = num_items.to(total).clamp(min=1)
        else:
            num_items = max(num_items, 1)
        return total / num_items

    def __call__(self, batch: Mapping[str, Any], outputs: Any, num_items: Any = None) -> Any:
        import torch

        labels = batch["labels"]
        if "advantages" not in batch:
            raise InputError(
                "the batch has no 'advantages'",
                component=self.component,
                hint="one advantage per sequence (or per label position) under batch['advantages']",
            )
        logits = outputs.logits if hasattr(outputs, "logits") else outputs["logits"]
        selected = response_tokens(batch)
        advantages = torch.as_tensor(batch["advantages"]).to(logits.device)
        if advantages.dim() == 1:
            if len(advantages) != labels.shape[0]:
                raise InputError(
                    f"{len(advantages)} advantages for {labels.shape[0]} sequences",
                    component=self.component,
                    hint="one advantage per sequence",
                )
            advantages = advantages.unsqueeze(1).expand(labels.shape)
        elif tuple(advantages.shape) != tuple(labels.shape):
            raise InputError(
                f"advantages {tuple(advantages.shape)} are neither per sequence nor shaped like "
                f"the labels {tuple(labels.shape)}",
                component=self.component,
                hint="shape (B,) or like the labels",
            )
        old = self._aligned(batch, "old_logprobs", labels)
        ref = self._aligned(batch, "ref_logprobs", labels)
        weights = self._aligned(batch, TOKEN_WEIGHTS_KEY, labels)
        # position t-1 of the logits predicts label t (the Hugging Face shift): drop the last
        # logit and the first label, and align every per-label tensor the same way
        target = labels[:, 1:].to(logits.device)
        safe = target.clamp(min=0)
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
        mask = selected[:, 1:].to(logits.device) & (target != IGNORE_INDEX)
        old = logp.detach() if old is None else old[:, 1:].to(logp)
        ref = None if ref is None else ref[:, 1:].to(logp)
        return self.from_logprobs(
            logp,
            old,
            advantages[:, 1:],
            mask,
            ref,
            weights=None if weights is None else weights[:, 1:],
            num_items=num_items,
        )
