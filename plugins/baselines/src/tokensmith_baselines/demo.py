"""`tokensmith demo` section: naive greedy vs token healing vs sampling on prompts cut mid-word."""

from __future__ import annotations

import time
from typing import Any

from tokensmith import Demo, bold

from .decoding import GreedyDecoder, SamplingDecoder

PROMPTS = ("def fibon", "The capital of Fra", "import num")


class BaselineDemo(Demo):
    name = "baselines"

    def run(self, pipeline: Any, out: Any) -> dict[str, Any]:
        lm = pipeline.lm
        decoders = {"greedy": GreedyDecoder(), "greedy+healing": GreedyDecoder(token_healing=True),
                    "sample T=0.7": SamplingDecoder(temperature=0.7, top_p=0.95)}
        results: dict[str, Any] = {}
        print("Prompts cut mid-word: naive greedy continues from an unusual token split;", file=out)
        print("token healing backs up one token and regenerates its bytes.\n", file=out)
        for prompt in PROMPTS:
            print(f"  prompt {prompt!r}", file=out)
            for label, decoder in decoders.items():
                start = time.perf_counter()
                gen = decoder.generate(lm, prompt, max_new_tokens=8, seed=0)
                seconds = time.perf_counter() - start
                results[f"{prompt}|{label}"] = {"text": gen.text, "tokens": len(gen.ids),
                                                "tokens_per_s": len(gen.ids) / seconds}
                print(f"    {label:<15} {prompt}{bold(repr(gen.text), out)}"
                      f"  ({len(gen.ids)} tokens, {len(gen.ids) / seconds:.1f} tok/s)", file=out)
        return results
