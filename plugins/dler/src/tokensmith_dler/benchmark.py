"""Benchmark ``dler``: DLER vs naive GRPO with the same truncation (DLER, Liu et al., 2025,
arXiv 2510.15110), both in TRL's GRPOTrainer, from the same warm-started policy.

The setup is small enough for a 2-core CPU: a tiny Llama (tokensmith.testing) is first taught a
verbose answer format on seeded one-digit additions through the core recipe runner — the
response is a random run of filler words ("so so so ...") and then the sum — so that many of its
responses run past the cap L. Then each method trains for the same steps on the same prompts:

- naive GRPO: TRL's ``loss_type="grpo"``, symmetric clip 0.2, per-group std (``scale_rewards="group"``);
- DLER: :class:`~tokensmith_dler.trainer.DLERTrainer` — batch whitening, correct-sample boost,
  clip-higher (0.2 / 0.28, dual clip 10), dynamic sampling;

both rewarded by ``truncation-penalty`` at the same L. Accuracy (the answer is right, whatever the
length) and mean response length come from TRL's logs at every step (``exact-match`` is a
second reward function with weight 0: logged, not trained on).
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from tokensmith import Benchmark, Provenance, Report, Series, Table, positive_int


def arithmetic_problems(n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` seeded one-digit additions as (prompt, answer)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        out.append((f"{a} + {b} =", str(a + b)))
    return out


@attrs.define
class DLERBenchmark(Benchmark):
    name = "dler"
    steps: int = attrs.field(default=30, validator=positive_int, metadata={"doc": "RL steps per method"})
    sft_steps: int = attrs.field(
        default=150, validator=positive_int, metadata={"doc": "warm-start steps (verbose format) before RL"}
    )
    max_length: int = attrs.field(
        default=64, validator=positive_int, metadata={"doc": "L, the response cap of both methods (tokens)"}
    )
    max_filler: int = attrs.field(
        default=40,
        validator=positive_int,
        metadata={"doc": "warm-start responses carry 0..max_filler filler words"},
    )
    num_generations: int = attrs.field(
        default=8, validator=positive_int, metadata={"doc": "responses per prompt (group size)"}
    )
    prompts_per_step: int = attrs.field(
        default=4, validator=positive_int, metadata={"doc": "prompts per RL step"}
    )
    seed: int = attrs.field(default=0, metadata={"doc": "seed of the problems, the model and the runs"})

    def _warm_start(self, tokenizer: Any, steps: int, out_dir: str) -> Any:
        import tokensmith
        from tokensmith.testing import tiny_llama

        rng = random.Random(self.seed + 1)
        examples = []
        for prompt, answer in arithmetic_problems(400, self.seed + 1):
            filler = " so" * rng.randint(0, self.max_filler)
            examples.append({"prompt": prompt, "response": f"{filler} {answer}"})
        model, _ = tiny_llama(tokenizer, hidden_size=64, layers=2, seed=self.seed)
        result = tokensmith.run_recipe(
            model=model,
            tokenizer=tokenizer,
            train_data=examples,
            data={"prompt": "prompt", "response": "response", "max_length": 96},
            arguments={
                "steps": steps,
                "batch_size": 16,
                "lr": 3e-3,
                "progress": "off",
                "save_final": False,
                "seed": self.seed,
            },
            output_dir=out_dir,
        )
        return result.model

    def _rl(
        self, method: str, base: Any, hf_tokenizer: Any, steps: int, out_dir: str
    ) -> list[dict[str, Any]]:
        import copy

        import datasets
        import trl

        import tokensmith

        from .objectives import TruncationPenalty
        from .trainer import DLERTrainer

        data = datasets.Dataset.from_list(
            [{"prompt": p, "answer": a} for p, a in arithmetic_problems(512, self.seed + 2)]
        )
        rewards = tokensmith.reward_funcs(
            TruncationPenalty(max_length=self.max_length, eos_token_ids=(hf_tokenizer.eos_token_id,)),
            "exact-match",
        )
        common = dict(
            use_cpu=True,
            max_steps=steps,
            per_device_train_batch_size=self.prompts_per_step * self.num_generations,
            num_generations=self.num_generations,
            max_completion_length=self.max_length,
            temperature=1.0,
            learning_rate=1e-3,
            beta=0.0,
            reward_weights=[1.0, 0.0],
            use_vllm=False,
            report_to="none",
            logging_steps=1,
            save_strategy="no",
            seed=self.seed,
            disable_tqdm=True,
        )
        model = copy.deepcopy(base)
        if method == "grpo":
            args = tokensmith.grpo_config(
                out_dir, loss_type="grpo", epsilon=0.2, scale_rewards="group", **common
            )
            trainer = trl.GRPOTrainer(
                model=model,
                reward_funcs=rewards,
                args=args,
                train_dataset=data,
                processing_class=hf_tokenizer,
            )
        else:
            args = tokensmith.grpo_config(out_dir, loss_type="dapo", **common)
            trainer = DLERTrainer(
                model=model,
                reward_funcs=rewards,
                args=args,
                train_dataset=data,
                processing_class=hf_tokenizer,
            )
        trainer.train()
        return [e for e in trainer.state.log_history if "completions/mean_length" in e]

    def run(self, *, quick: bool = False) -> Report:
        import tempfile
        import warnings

        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        from tokensmith.testing import tiny_tokenizer

        steps = 3 if quick else self.steps
        sft_steps = 10 if quick else self.sft_steps
        tokenizer = tiny_tokenizer()
        hf = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(tokenizer.backend.to_str()),
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            padding_side="left",
        )
        series, rows, metrics = [], [], {}
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = self._warm_start(tokenizer, sft_steps, f"{tmp}/sft")
            for method in ("grpo", "dler"):
                logs = self._rl(method, base, hf, steps, f"{tmp}/{method}")
                x = tuple(float(e["step"]) for e in logs)
                acc = tuple(float(e["rewards/exact-match/mean"]) for e in logs)
                length = tuple(float(e["completions/mean_length"]) for e in logs)
                reward = tuple(float(e["rewards/truncation-penalty/mean"]) for e in logs)
                clipped = tuple(float(e.get("completions/clipped_ratio", 0.0)) for e in logs)
                label = "naive GRPO" if method == "grpo" else "DLER"
                series += [
                    Series(f"{label} accuracy", x, acc, "step", "accuracy", group="accuracy"),
                    Series(f"{label} length", x, length, "step", "mean response tokens", group="length"),
                ]
                tail = max(1, len(logs) // 4)
                last = slice(len(logs) - tail, len(logs))

                def mean(v: tuple[float, ...], last: slice = last) -> float:
                    return sum(v[last]) / len(v[last])

                rows.append((label, acc[0], mean(acc), length[0], mean(length), mean(reward), mean(clipped)))
                metrics[f"{method}_final_accuracy"] = mean(acc)
                metrics[f"{method}_final_length"] = mean(length)
                metrics[f"{method}_truncated_share"] = mean(clipped)
        metrics["length_ratio_dler_over_grpo"] = metrics["dler_final_length"] / max(
            metrics["grpo_final_length"], 1e-9
        )
        notes = (
            f"tiny Llama (hidden 64, 2 layers, tokensmith.testing's 320-token tokenizer), warm-started "
            f"for {sft_steps} steps on seeded one-digit additions with 0-{self.max_filler} filler words "
            "before the answer, then RL on TRL's GRPOTrainer; SmolLM2-135M was too slow for a training "
            "curve on the shared 2-core CPU (one GRPO step of 32 x 64-token rollouts did not finish in 6 "
            "minutes)",
            f"both methods: truncation-penalty reward at L = {self.max_length} (x0.1 when cut off), "
            f"{self.num_generations} responses per prompt, {self.prompts_per_step} prompts per step, "
            f"{steps} steps, lr 1e-3, no KL; 'final' columns average the last quarter of the steps",
            "accuracy counts a right answer whatever its length (exact-match, weight 0 in training); "
            "truncated = share of responses cut off at L (TRL's completions/clipped_ratio)",
        )
        return Report(
            name="dler",
            metrics=metrics,
            tables=(
                Table(
                    "DLER vs naive GRPO, same truncation",
                    (
                        "method",
                        "accuracy (start)",
                        "accuracy (final)",
                        "length (start)",
                        "length (final)",
                        "truncation reward (final)",
                        "truncated (final)",
                    ),
                    tuple(rows),
                ),
            ),
            series=tuple(series),
            notes=notes,
            provenance=Provenance.collect(model="tiny-llama", seed=self.seed),
        )
