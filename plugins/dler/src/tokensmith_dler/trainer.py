"""DLER inside TRL's GRPOTrainer (DLER, Liu et al., 2025, arXiv 2510.15110).

TRL owns the rollout loop (generation, reward calls, reference model, logging); this subclass
changes only what DLER changes, each through one of our objective components:

- the rewards see a ``finished`` column (the completion ended with EOS — TRL's own test for
  truncation), and with Difficulty-Aware DLER a ``truncation_length`` column: L(q) from the
  group's pass rate under the full cap, after which the rewards are computed again;
- the advantages are our ``advantage`` (default: correct-sample boost on batch whitening, with
  each completion weighted by its token count), not TRL's;
- dynamic sampling: the completions of groups whose rewards are all equal (within ``eps``) are
  dropped from the update — their loss mask is zeroed and the token count that normalises the
  loss excludes them, which is the same gradient as removing the rows;
- the loss is our ``loss`` (default :class:`~tokensmith_dler.objectives.ClipHigher`) on TRL's
  per-token log-probabilities, normalised like TRL's ``loss_type="dapo"``.

The class is made on first use (``tokensmith_dler.trainer.DLERTrainer``), so this module imports
without TRL.
"""

from __future__ import annotations

from typing import Any

from tokensmith import ConfigError

from .objectives import ClipHigher, CorrectSampleBoost, DifficultyAwareTruncation, informative_groups

_INSTALL = "pip install 'tokensmith[trl]'"


class _DLERMixin:
    """What :class:`DLERTrainer` adds to ``trl.GRPOTrainer``."""

    def __init__(
        self,
        *args: Any,
        advantage: Any = None,
        loss: Any = None,
        dynamic_sampling: bool = True,
        dynamic_sampling_eps: float = 1e-6,
        difficulty_aware: DifficultyAwareTruncation | None = None,
        **kwargs: Any,
    ) -> None:
        self.dler_advantage = advantage if advantage is not None else CorrectSampleBoost()
        self.dler_loss = loss if loss is not None else ClipHigher()
        if getattr(self.dler_advantage, "role", None) != "advantage":
            raise ConfigError(
                f"advantage= must be an Advantage, got {type(self.dler_advantage).__name__}",
                component="DLERTrainer",
                hint="e.g. CorrectSampleBoost() or BatchWhitened()",
            )
        if getattr(self.dler_loss, "role", None) != "loss" or not hasattr(self.dler_loss, "from_logprobs"):
            raise ConfigError(
                "loss= must be a policy loss with from_logprobs (e.g. ClipHigher())",
                component="DLERTrainer",
                hint="ClipHigher(epsilon_low=0.2, epsilon_high=0.28)",
            )
        if not isinstance(dynamic_sampling, bool):
            raise ConfigError("dynamic_sampling must be a bool", component="DLERTrainer")
        if not dynamic_sampling_eps >= 0:
            raise ConfigError(
                f"dynamic_sampling_eps must be >= 0, got {dynamic_sampling_eps}", component="DLERTrainer"
            )
        self.dynamic_sampling = dynamic_sampling
        self.dynamic_sampling_eps = dynamic_sampling_eps
        self.difficulty_aware = difficulty_aware
        args_ = kwargs.get("args")
        kl = getattr(self.dler_loss, "kl_coef", 0.0)
        if args_ is not None and float(getattr(args_, "beta", 0.0)) != float(kl):
            # TRL computes the reference log-probabilities only when beta != 0
            raise ConfigError(
                f"args.beta = {args_.beta} but the loss's kl_coef = {kl}",
                component="DLERTrainer",
                hint="set GRPOConfig(beta=...) to the loss's kl_coef",
            )
        super().__init__(*args, **kwargs)
        if (
            self.difficulty_aware is not None
            and self.difficulty_aware.max_length > self.max_completion_length
        ):
            raise ConfigError(
                f"difficulty_aware.max_length {self.difficulty_aware.max_length} exceeds "
                f"max_completion_length {self.max_completion_length}",
                component="DLERTrainer",
                hint="the cap L(q) of an unsolved prompt is at most the generation cap",
            )

    def _local_slice(self, n_local: int) -> slice:
        rank = self.accelerator.process_index
        return slice(rank * n_local, (rank + 1) * n_local)

    def _summed(self, rewards_per_func: Any) -> Any:
        import torch

        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        return torch.nan_to_num(rewards_per_func * weights).sum(dim=1)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        import torch

        ends = {*self.eos_token_ids}
        for row, ids in zip(inputs, completion_ids_list):
            row["finished"] = bool(len(ids)) and ids[-1] in ends
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if self.difficulty_aware is not None:
            correct = self._summed(rewards_per_func) >= 1.0
            g = self.num_generations if self.model.training else self.num_generations_eval
            pass_rates = correct.float().view(-1, g).mean(dim=1).tolist()
            caps = torch.tensor(self.difficulty_aware.lengths(pass_rates)).repeat_interleave(g)
            local = caps[self._local_slice(len(inputs))].tolist()
            for row, cap in zip(inputs, local):
                row["truncation_length"] = int(cap)
            self._dler_caps = caps
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._dler_rewards = self._summed(rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        import torch

        out = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        rewards = self._dler_rewards
        g = self.num_generations if mode == "train" else self.num_generations_eval
        groups = torch.arange(len(rewards) // g).repeat_interleave(g)
        mask = out["completion_mask"] if "tool_mask" not in out else out["completion_mask"] * out["tool_mask"]
        lengths = self.accelerator.gather(mask.sum(dim=1)).detach().cpu()
        keep = (
            informative_groups(rewards, groups, self.dynamic_sampling_eps)
            if self.dynamic_sampling
            else torch.ones(len(rewards), dtype=torch.bool)
        )
        advantages = torch.zeros(len(rewards), dtype=torch.float32)
        if keep.any():
            advantages[keep] = torch.as_tensor(
                self.dler_advantage(rewards.cpu()[keep], groups[keep], lengths=lengths[keep]),
                dtype=torch.float32,
            )
        local = self._local_slice(len(out["advantages"]))
        device = out["advantages"].device
        keep_local = keep[local].to(device)
        out["advantages"] = advantages[local].to(device)
        out["completion_mask"] = out["completion_mask"] * keep_local.unsqueeze(1).to(
            out["completion_mask"].dtype
        )
        kept_mask = mask * keep_local.unsqueeze(1).to(mask.dtype)
        out["num_items_in_batch"] = self.accelerator.gather(kept_mask.sum()).sum()
        self._metrics[mode]["dler/kept_groups_frac"].append(keep.float().mean().item())
        if self.difficulty_aware is not None:
            self._metrics[mode]["dler/mean_truncation_length"].append(self._dler_caps.float().mean().item())
        return out

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        import torch

        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        logps, entropies, _ = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True
        )
        old = inputs.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        mode = "train" if self.model.training else "eval"
        # TRL's dapo normaliser: the generation batch's token count, rescaled to one accumulation window
        normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
        if mode == "train":
            normalizer = (
                normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            )
        loss = self.dler_loss.from_logprobs(
            logps, old, inputs["advantages"], mask, inputs.get("ref_per_token_logps"), num_items=normalizer
        )
        with torch.no_grad():
            n = mask.sum().clamp(min=1)
            self._metrics[mode]["entropy"].append(((entropies * mask).sum() / n).item())
            lo, hi = self.dler_loss.clip_bounds()
            ratio = torch.exp(logps - old)
            adv = (
                inputs["advantages"].unsqueeze(1) if inputs["advantages"].dim() == 1 else inputs["advantages"]
            )
            high = ((ratio > hi) & (adv > 0) & mask.bool()).sum() / n
            low = ((ratio < lo) & (adv < 0) & mask.bool()).sum() / n
            self._metrics[mode]["clip_ratio/high_mean"].append(high.item())
            self._metrics[mode]["clip_ratio/low_mean"].append(low.item())
        return loss


_DOC = """``trl.GRPOTrainer`` running the DLER recipe: ``advantage=`` (default correct-sample boost on
batch whitening), ``loss=`` (default clip-higher, ε_lo 0.2 / ε_hi 0.28, dual clip 10),
``dynamic_sampling=`` (drop zero-variance groups from the update, ``dynamic_sampling_eps`` the
guard), ``difficulty_aware=`` (a DifficultyAwareTruncation: L(q) per prompt). Give it a
``truncation-penalty`` reward (``tokensmith.reward_funcs(TruncationPenalty(...))``), which reads the
``finished`` and ``truncation_length`` columns this trainer adds. ``args.beta`` must equal the loss's
``kl_coef`` (TRL loads the reference model only when beta != 0)."""


def _dler_trainer() -> type:
    try:
        from trl import GRPOTrainer
    except ImportError as exc:
        missing = exc

        class DLERTrainer:
            """Stands in where TRL cannot be imported: building one says how to install it."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise ConfigError(
                    f"DLERTrainer needs TRL, which cannot be imported ({missing})",
                    component="DLERTrainer",
                    hint=_INSTALL,
                ) from missing

        return DLERTrainer
    return type("DLERTrainer", (_DLERMixin, GRPOTrainer), {"__doc__": _DOC, "__module__": __name__})


def __getattr__(name: str) -> Any:
    if name == "DLERTrainer":
        cls = globals()[name] = _dler_trainer()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
