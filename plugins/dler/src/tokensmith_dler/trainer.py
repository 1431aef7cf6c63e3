"""DLER inside TRL's GRPOTrainer (DLER, Liu et al., 2025, arXiv 2510.15110).

TRL owns the rollout loop (generation, reward calls, reference model, logging); this subclass
changes only what DLER changes, each through one of our objective components:

- the rewards see a ``finished`` column (the completion ended with EOS — TRL's own test for
  truncation), and with Difficulty-Aware DLER a ``truncation_length`` column: L(q) from the
  group's pass rate under the full cap, after which the rewards are computed again;
- the advantages are our ``advantage`` (default: correct-sample boost on batch whitening, with
  each completion weighted by its token count), not TRL's;
- dynamic sampling (:class:`~tokensmith_dler.sampling.DynamicSampling`; TRL has none): the groups
  whose rewards are all equal (within ``eps``) are dropped and more prompts are drawn from the
  train dataset and rolled out until the batch holds its full number of informative groups, at
  most ``max_extra_rounds`` extra rounds; the rounds' rollouts are re-padded into one batch. A
  batch still short at the cap is completed with dropped groups whose loss mask is zeroed (the
  token count that normalises the loss excludes them: the same gradient as removing the rows) and
  the counters say so (``dler/dynamic_sampling/*``), or the run stops (``on_cap="error"``);
- the loss is our ``loss`` (default :class:`~tokensmith_dler.objectives.ClipHigher`) on TRL's
  per-token log-probabilities, normalised like TRL's ``loss_type="dapo"``.

The class is made on first use (``tokensmith_dler.trainer.DLERTrainer``), so this module imports
without TRL.
"""

from __future__ import annotations

from typing import Any

from tokensmith import ConfigError

from .objectives import ClipHigher, CorrectSampleBoost, DifficultyAwareTruncation
from .sampling import DynamicSampling

_INSTALL = "pip install 'tokensmith[trl]'"


class _DLERMixin:
    """What :class:`DLERTrainer` adds to ``trl.GRPOTrainer``."""

    def __init__(
        self,
        *args: Any,
        advantage: Any = None,
        loss: Any = None,
        dynamic_sampling: DynamicSampling | bool | None = True,
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
        if dynamic_sampling is True:
            dynamic_sampling = DynamicSampling()
        elif dynamic_sampling is False:
            dynamic_sampling = None
        if dynamic_sampling is not None and not isinstance(dynamic_sampling, DynamicSampling):
            raise ConfigError(
                "dynamic_sampling must be a DynamicSampling, True or False, got "
                f"{type(dynamic_sampling).__name__}",
                component="DLERTrainer",
                hint="e.g. DynamicSampling(eps=1e-6, max_extra_rounds=3)",
            )
        self.dynamic_sampling = dynamic_sampling
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
        if self.dynamic_sampling is not None and self.dynamic_sampling.max_extra_rounds:
            self._check_refill()
        self.dler_last_sampling = None  # the SamplingResult of the latest generation batch
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

    def _check_refill(self) -> None:
        """Refill rounds are generated and assembled on one process, from an indexable dataset,
        with transformers' generation: say which of these a run lacks."""
        problems = []
        if self.accelerator.num_processes > 1:
            problems.append(f"{self.accelerator.num_processes} processes")
        if self.use_vllm:
            problems.append("vLLM generation")
        if not (hasattr(self.train_dataset, "__getitem__") and hasattr(self.train_dataset, "__len__")):
            problems.append("an iterable dataset (refill prompts are drawn by index)")
        if getattr(self, "environment_factories", None) is not None or getattr(self, "tools", None):
            problems.append("tools or environments")
        if self.beta != 0.0 and self.ref_model is None:
            problems.append("a PEFT adapter as the reference model")
        if problems:
            raise ConfigError(
                f"dynamic sampling with refill (max_extra_rounds = {self.dynamic_sampling.max_extra_rounds}) "
                f"does not support {', '.join(problems)}",
                component="DLERTrainer",
                hint="DynamicSampling(max_extra_rounds=0) drops the zero-variance groups by masking them",
            )

    def _refill_rows(self, n_prompts: int, round_: int) -> list[dict[str, Any]]:
        """``n_prompts`` fresh prompts from the train dataset (seeded by the run's seed, the step
        and the round), each repeated ``num_generations`` times like TRL's sampler does."""
        import torch

        seed = int(self.args.seed) * 1_000_003 + int(self.state.global_step) * 1_009 + round_
        gen = torch.Generator().manual_seed(seed)
        n = len(self.train_dataset)
        if n >= n_prompts:
            picked = torch.randperm(n, generator=gen)[:n_prompts]
        else:
            picked = torch.randint(n, (n_prompts,), generator=gen)
        rows = []
        for i in picked.tolist():
            row = dict(self.train_dataset[int(i)])
            rows += [dict(row) for _ in range(self.num_generations)]
        return rows

    def _assemble(self, outs: list[dict[str, Any]], picks: Any, g: int) -> dict[str, Any]:
        """One batch from the picked groups of several rounds: prompts re-padded on the left and
        completions on the right to the widest round (TRL's layout); log-probabilities computed
        under a round's own padding are recomputed for the assembled batch."""
        import torch

        prompt_keys = ("prompt_ids", "prompt_mask")
        completion_keys = (
            "completion_ids",
            "completion_mask",
            "old_per_token_logps",
            "ref_per_token_logps",
            "sampling_per_token_logps",
            "tool_mask",
        )
        known = {*prompt_keys, *completion_keys, "advantages", "num_items_in_batch"}
        for out in outs:
            unknown = sorted(set(out) - known)
            if unknown:
                raise ConfigError(
                    f"dynamic sampling with refill cannot assemble rollouts that carry {unknown}",
                    component="DLERTrainer",
                    hint="DynamicSampling(max_extra_rounds=0) for multimodal or custom rollouts",
                )
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        pad_id = getattr(tokenizer, "pad_token_id", None) or 0
        widths = {
            "prompt": max(o["prompt_ids"].size(1) for o in outs),
            "completion": max(o["completion_ids"].size(1) for o in outs),
        }
        merged: dict[str, Any] = {}
        for key in prompt_keys + completion_keys:
            if key not in outs[0]:
                continue
            side = "prompt" if key in prompt_keys else "completion"
            fill = pad_id if key.endswith("_ids") else 0
            parts = []
            for p in picks:
                t = outs[p.round][key][p.group * g : (p.group + 1) * g]
                extra = widths[side] - t.size(1)
                if extra:
                    block = t.new_full((t.size(0), extra), fill)
                    t = torch.cat([block, t] if side == "prompt" else [t, block], dim=1)
                parts.append(t)
            merged[key] = torch.cat(parts)
        if "old_per_token_logps" in merged or "ref_per_token_logps" in merged:
            ids = torch.cat([merged["prompt_ids"], merged["completion_ids"]], dim=1)
            attention = torch.cat([merged["prompt_mask"], merged["completion_mask"]], dim=1)
            size = self.args.per_device_train_batch_size
            with torch.no_grad():
                if "old_per_token_logps" in merged:
                    merged["old_per_token_logps"], _, _ = self._get_per_token_logps_and_entropies(
                        self.model, ids, attention, widths["completion"], batch_size=size
                    )
                if "ref_per_token_logps" in merged:
                    merged["ref_per_token_logps"], _, _ = self._get_per_token_logps_and_entropies(
                        self.ref_model, ids, attention, widths["completion"], batch_size=size
                    )
        return merged

    def _generate_and_score_completions(self, inputs):
        import torch

        parent = super()._generate_and_score_completions
        train = self.model.training
        mode = "train" if train else "eval"
        g = self.num_generations if train else self.num_generations_eval
        result = None
        if self.dynamic_sampling is None or not train:
            # no filter (or evaluation: nothing is updated, every group is scored)
            out = parent(inputs)
            rewards = self._dler_rewards.detach().cpu()
            keep = torch.ones(len(rewards), dtype=torch.bool)
        else:
            rounds: list[tuple[dict[str, Any], Any, Any]] = []

            def sample(round_: int) -> tuple[Any, Any]:
                batch = inputs if round_ == 0 else self._refill_rows(len(inputs) // g, round_)
                scored = parent(batch)
                caps = getattr(self, "_dler_caps", None) if self.difficulty_aware is not None else None
                rounds.append((scored, self._dler_rewards.detach().cpu(), caps))
                n = len(rounds[-1][1])
                return rounds[-1][1], torch.arange(n // g).repeat_interleave(g)

            target = len(inputs) * self.accelerator.num_processes // g
            result = self.dynamic_sampling.collect(sample, target)
            self.dler_last_sampling = result
            informative = {(p.round, p.group) for p in result.picks if p.informative}
            if result.rounds == 1:
                # the first round alone: keep TRL's rows (and its split across processes) as they
                # are, and mask the dropped groups
                out, rewards, _ = rounds[0]
                keep = torch.tensor([(0, k // g) in informative for k in range(len(rewards))])
            else:
                out = self._assemble([r[0] for r in rounds], result.picks, g)

                def picked(column: int) -> Any:
                    return torch.cat(
                        [rounds[p.round][column][p.group * g : (p.group + 1) * g] for p in result.picks]
                    )

                rewards = picked(1)
                keep = torch.tensor([p.informative for p in result.picks]).repeat_interleave(g)
                if self.difficulty_aware is not None:
                    self._dler_caps = picked(2)
            self._dler_rewards = rewards
        groups = torch.arange(len(rewards) // g).repeat_interleave(g)
        mask = out["completion_mask"] if "tool_mask" not in out else out["completion_mask"] * out["tool_mask"]
        lengths = self.accelerator.gather(mask.sum(dim=1)).detach().cpu()
        advantages = torch.zeros(len(rewards), dtype=torch.float32)
        if keep.any():
            advantages[keep] = torch.as_tensor(
                self.dler_advantage(rewards[keep], groups[keep], lengths=lengths[keep]),
                dtype=torch.float32,
            )
        local = self._local_slice(len(out["completion_ids"]))
        device = out["completion_ids"].device
        keep_local = keep[local].to(device)
        out["advantages"] = advantages[local].to(device)
        # dropped groups leave the update: no loss tokens, and the normaliser excludes them (the
        # same gradient as removing their rows)
        out["completion_mask"] = out["completion_mask"] * keep_local.unsqueeze(1).to(
            out["completion_mask"].dtype
        )
        kept_mask = mask * keep_local.unsqueeze(1).to(mask.dtype)
        out["num_items_in_batch"] = self.accelerator.gather(kept_mask.sum()).sum()
        self._metrics[mode]["dler/kept_groups_frac"].append(keep.float().mean().item())
        if result is not None:
            for name, value in result.counters().items():
                self._metrics[mode][f"dler/dynamic_sampling/{name}"].append(value)
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
``dynamic_sampling=`` (a DynamicSampling, True or False: drop zero-variance groups and refill the
batch with more prompts; ``eps`` the guard, ``max_extra_rounds`` the cap), ``difficulty_aware=``
(a DifficultyAwareTruncation: L(q) per prompt). Give it a
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
