"""Benchmark ``dler``: DLER vs naive GRPO with the same truncation (DLER, Liu et al., 2025,
arXiv 2510.15110), both in TRL's GRPOTrainer, from the same warm-started policy.

The setup is small enough for a 2-core CPU: a tiny Llama (tokensmith.testing) is first taught a
verbose answer format on seeded one-digit additions through the core recipe runner — the
response is a random run of filler words ("so so so ...") and then the sum — so that many of its
responses run past the cap L. Then each method trains for the same steps on the same prompts:

- naive GRPO: TRL's ``loss_type="grpo"``, symmetric clip 0.2, per-group std (``scale_rewards="group"``);
- DLER: :class:`~tokensmith_dler.trainer.DLERTrainer` — batch whitening, correct-sample boost,
  clip-higher (0.2 / 0.28, dual clip 10), dynamic sampling that refills the batch;

both rewarded by ``truncation-penalty`` at the same L. Accuracy (the answer is right, whatever the
length) and mean response length are measured twice: on the training rollouts (TRL's logs at
every step, T = 1; ``exact-match`` is a second reward function with weight 0: logged, not trained
on) and on a fixed evaluation set, sampled at T = 1 with a fixed seed, every ``eval_every`` steps
(a Trainer callback).
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from tokensmith import Benchmark, Provenance, Report, Series, Table, non_negative_int, positive, positive_int


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
    steps: int = attrs.field(default=20, validator=positive_int, metadata={"doc": "RL steps per method"})
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
    max_extra_rounds: int = attrs.field(
        default=3,
        validator=non_negative_int,
        metadata={"doc": "DLER's dynamic sampling: refill rounds per step at most (0: mask only)"},
    )
    eval_prompts: int = attrs.field(
        default=128,
        validator=positive_int,
        metadata={"doc": "prompts of the evaluation set (one sampled response each)"},
    )
    eval_every: int = attrs.field(
        default=4, validator=positive_int, metadata={"doc": "evaluation every this many RL steps"}
    )
    learning_rate: float = attrs.field(
        default=1e-3, validator=positive, metadata={"doc": "RL learning rate of both methods"}
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

    def _evaluate(self, model: Any, hf_tokenizer: Any, problems: list[tuple[str, str]]) -> dict[str, float]:
        """Sampled responses (T = 1, at most L tokens, seeded and on a forked RNG so that training's
        sampling is untouched) to the evaluation prompts: accuracy (right answer, whatever the
        length), mean length in tokens (EOS included) and the share cut off at L. Sampled rather
        than greedy: the warm-started policy says "so" more likely than the answer at every step,
        so its greedy response is always cut off at L, and greedy decoding would measure nothing."""
        import torch

        from tokensmith import default_registry

        exact = default_registry().build("objective", "exact-match")
        eos = hf_tokenizer.eos_token_id
        was_training = model.training
        model.eval()
        texts, lengths, finished = [], [], []
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(self.seed + 3)
            for start in range(0, len(problems), 32):
                chunk = problems[start : start + 32]
                enc = hf_tokenizer([p for p, _ in chunk], return_tensors="pt", padding=True)
                out = model.generate(
                    **enc,
                    max_new_tokens=self.max_length,
                    do_sample=True,
                    temperature=1.0,
                    top_k=0,
                    top_p=1.0,
                    eos_token_id=eos,
                    pad_token_id=hf_tokenizer.pad_token_id,
                )
                for row in out[:, enc["input_ids"].size(1) :].tolist():
                    end = row.index(eos) + 1 if eos in row else len(row)
                    texts.append(hf_tokenizer.decode(row[:end], skip_special_tokens=True))
                    lengths.append(end)
                    finished.append(eos in row)
        model.train(was_training)
        correct = exact([p for p, _ in problems], texts, answer=[a for _, a in problems])
        n = len(problems)
        return {
            "accuracy": sum(correct) / n,
            "length": sum(lengths) / n,
            "truncated": 1 - sum(finished) / n,
        }

    def _rl(
        self, method: str, base: Any, hf_tokenizer: Any, steps: int, out_dir: str
    ) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, float]]]]:
        import copy

        import datasets
        import transformers
        import trl

        import tokensmith

        from .objectives import TruncationPenalty
        from .sampling import DynamicSampling
        from .trainer import DLERTrainer

        data = datasets.Dataset.from_list(
            [{"prompt": p, "answer": a} for p, a in arithmetic_problems(512, self.seed + 2)]
        )
        evaluation = arithmetic_problems(self.eval_prompts, self.seed + 3)
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
            learning_rate=self.learning_rate,
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
        curve: list[tuple[int, dict[str, float]]] = []
        bench = self

        class Evaluation(transformers.TrainerCallback):
            """The evaluation every ``eval_every`` steps and after the last (measurement only:
            it changes nothing in training)."""

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                step = state.global_step
                if step % bench.eval_every == 0 or step == state.max_steps:
                    curve.append((step, bench._evaluate(kwargs["model"], hf_tokenizer, evaluation)))

        curve.append((0, self._evaluate(model, hf_tokenizer, evaluation)))
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
                callbacks=[Evaluation()],
            )
        else:
            args = tokensmith.grpo_config(out_dir, loss_type="dapo", **common)
            trainer = DLERTrainer(
                model=model,
                reward_funcs=rewards,
                args=args,
                train_dataset=data,
                processing_class=hf_tokenizer,
                callbacks=[Evaluation()],
                dynamic_sampling=DynamicSampling(max_extra_rounds=self.max_extra_rounds),
            )
        trainer.train()
        return [e for e in trainer.state.log_history if "completions/mean_length" in e], curve

    def run(self, *, quick: bool = False) -> Report:
        import tempfile
        import time
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
        series, rows, eval_rows, metrics = [], [], [], {}
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base = self._warm_start(tokenizer, sft_steps, f"{tmp}/sft")
            for method in ("grpo", "dler"):
                started = time.perf_counter()
                logs, curve = self._rl(method, base, hf, steps, f"{tmp}/{method}")
                seconds = time.perf_counter() - started
                x = tuple(float(e["step"]) for e in logs)
                acc = tuple(float(e["rewards/exact-match/mean"]) for e in logs)
                length = tuple(float(e["completions/mean_length"]) for e in logs)
                reward = tuple(float(e["rewards/truncation-penalty/mean"]) for e in logs)
                clipped = tuple(float(e.get("completions/clipped_ratio", 0.0)) for e in logs)
                label = "naive GRPO" if method == "grpo" else "DLER"
                gx = tuple(float(step) for step, _ in curve)
                series += [
                    Series(
                        f"{label} eval accuracy",
                        gx,
                        tuple(m["accuracy"] for _, m in curve),
                        "step",
                        "accuracy (eval set, T=1)",
                        group="eval accuracy",
                    ),
                    Series(
                        f"{label} eval length",
                        gx,
                        tuple(m["length"] for _, m in curve),
                        "step",
                        "mean response tokens (eval set)",
                        group="eval length",
                    ),
                    Series(
                        f"{label} rollout accuracy",
                        x,
                        acc,
                        "step",
                        "accuracy (rollouts, T=1)",
                        group="rollout accuracy",
                    ),
                    Series(
                        f"{label} rollout length",
                        x,
                        length,
                        "step",
                        "mean response tokens (rollouts)",
                        group="rollout length",
                    ),
                ]
                tail = max(1, len(logs) // 4)
                last = slice(len(logs) - tail, len(logs))

                def mean(v: tuple[float, ...], last: slice = last) -> float:
                    return sum(v[last]) / len(v[last])

                first, final = curve[0][1], curve[-1][1]
                rows.append((label, acc[0], mean(acc), length[0], mean(length), mean(reward), mean(clipped)))
                eval_rows.append(
                    (
                        label,
                        first["accuracy"],
                        final["accuracy"],
                        first["length"],
                        final["length"],
                        first["truncated"],
                        final["truncated"],
                        seconds,
                    )
                )
                metrics[f"{method}_final_accuracy"] = final["accuracy"]
                metrics[f"{method}_final_length"] = final["length"]
                metrics[f"{method}_final_truncated"] = final["truncated"]
                metrics[f"{method}_rollout_final_accuracy"] = mean(acc)
                metrics[f"{method}_rollout_final_length"] = mean(length)
                metrics[f"{method}_rollout_truncated_share"] = mean(clipped)
                metrics[f"{method}_seconds"] = seconds
                if method == "dler":
                    rounds = [
                        float(e["dler/dynamic_sampling/rounds"])
                        for e in logs
                        if "dler/dynamic_sampling/rounds" in e
                    ]
                    capped = [
                        float(e["dler/dynamic_sampling/cap_reached"])
                        for e in logs
                        if "dler/dynamic_sampling/cap_reached" in e
                    ]
                    if rounds:
                        metrics["dler_sampling_rounds_mean"] = sum(rounds) / len(rounds)
                        metrics["dler_cap_reached_share"] = sum(capped) / len(capped)
            metrics["start_accuracy"] = curve[0][1]["accuracy"]
            metrics["start_length"] = curve[0][1]["length"]
        metrics["length_ratio_dler_over_grpo"] = metrics["dler_final_length"] / max(
            metrics["grpo_final_length"], 1e-9
        )
        notes = (
            f"tiny Llama (hidden 64, 2 layers, tokensmith.testing's 320-token tokenizer), warm-started "
            f"for {sft_steps} steps on seeded one-digit additions with 0-{self.max_filler} filler words "
            "before the answer (the core recipe runner), then RL on TRL's GRPOTrainer; SmolLM2-135M was "
            "too slow for a training curve on the shared 2-core CPU (see the plugin README)",
            f"both methods: truncation-penalty reward at L = {self.max_length} (x0.1 when cut off), "
            f"{self.num_generations} responses per prompt, {self.prompts_per_step} prompts per step, "
            f"{steps} steps, lr {self.learning_rate:g}, no KL; DLER's dynamic sampling refills with at "
            f"most {self.max_extra_rounds} extra rounds of {self.prompts_per_step} prompts per step",
            f"evaluation: {self.eval_prompts} fixed seeded additions, one response each sampled at T = 1 "
            f"with a fixed seed (same distribution as training: there are "
            "only 100 one-digit pairs), at most L tokens; accuracy counts a right answer whatever its "
            "length; truncated = no EOS within L",
            "rollout columns: TRL's logs of the training rollouts (T = 1; for DLER they include the refill "
            "rounds); 'final' averages the last quarter of the steps",
        )
        return Report(
            name="dler",
            metrics=metrics,
            tables=(
                Table(
                    "DLER vs naive GRPO, same truncation: evaluation set",
                    (
                        "method",
                        "accuracy (start)",
                        "accuracy (final)",
                        "length (start)",
                        "length (final)",
                        "truncated (start)",
                        "truncated (final)",
                        "RL seconds",
                    ),
                    tuple(eval_rows),
                ),
                Table(
                    "DLER vs naive GRPO, same truncation: training rollouts",
                    (
                        "method",
                        "accuracy (first step)",
                        "accuracy (final)",
                        "length (first step)",
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
