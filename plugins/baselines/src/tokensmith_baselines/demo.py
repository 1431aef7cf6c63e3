"""`tokensmith demo` section: naive greedy vs token healing vs sampling on prompts cut mid-word."""

from __future__ import annotations

import time
from typing import Any

from tokensmith import Demo, Report, Series, Table, to_terminal

from .decoding import GreedyDecoder, SamplingDecoder

PROMPTS = ("def fibon", "The capital of Fra", "import num")
NEW_TOKENS = 8


class BaselineDemo(Demo):
    name = "baselines"

    def run(self, pipeline: Any, out: Any) -> Report:
        lm = pipeline.lm
        decoders = {"greedy": GreedyDecoder(), "greedy+healing": GreedyDecoder(token_healing=True),
                    "sample T=0.7": SamplingDecoder(temperature=0.7, top_p=0.95)}
        print("Prompts cut mid-word: naive greedy continues from an unusual token split;", file=out)
        print("token healing backs up one token and regenerates its bytes.\n", file=out)
        rows = []
        rates: dict[str, list[float]] = {label: [] for label in decoders}
        for prompt in PROMPTS:
            for label, decoder in decoders.items():
                start = time.perf_counter()
                gen = decoder.generate(lm, prompt, max_new_tokens=NEW_TOKENS, seed=0)
                rate = len(gen.ids) / (time.perf_counter() - start)
                rates[label].append(rate)
                rows.append((prompt, label, gen.text, len(gen.ids), rate))
        report = Report(
            name=self.name,
            metrics={f"tokens_per_s[{label}]": sum(r) / len(r) for label, r in rates.items()},
            tables=(Table("continuations", ("prompt", "decoder", "continuation", "tokens", "tokens/s"),
                          tuple(rows)),),
            series=(Series("tokens/s", tuple(rates), tuple(sum(r) / len(r) for r in rates.values()),
                           y_label="tokens/s (mean over prompts)", plot="bar"),),
            notes=(f"{NEW_TOKENS} new tokens per prompt, seed 0",))
        to_terminal(report, out)
        return report
