"""`tokensmith demo` section: SmolLM2 writes schema-valid JSON; AWRS vs full-vocabulary masking."""

from __future__ import annotations

import json
import time
from typing import Any

from tokensmith import Demo, TrustedText

from .decoders import AWRSDecoder, MaskingDecoder
from .json_schema import JSONSchemaConstraint

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                                           "city": {"type": "string"}},
          "required": ["name", "age", "city"], "additionalProperties": False}
# our own chat prompt: its markers are control tokens (user text would keep them as text)
PROMPT = TrustedText("<|im_start|>user\nDescribe a fictional person as a JSON object with name, age and city."
                     "<|im_end|>\n<|im_start|>assistant\n")
#: full masking costs ~0.5 s per token on SmolLM2 (49k checks), so it only runs a few
MASKING_TOKENS = 4


class AWRSDemo(Demo):
    name = "awrs"

    def run(self, pipeline: Any, out: Any) -> dict[str, Any]:
        lm = pipeline.lm
        if lm is None:
            print("  (needs a causal LM; skipped)", file=out)
            return {}
        print("JSON Schema constraint; AWRS checks the constraint only on the tokens it visits,", file=out)
        print("masking checks every token of the vocabulary at every step.\n", file=out)
        results: dict[str, Any] = {}
        for label, decoder, n in (("awrs", AWRSDecoder(), 48), ("masking", MaskingDecoder(), MASKING_TOKENS)):
            constraint = JSONSchemaConstraint(SCHEMA)
            start = time.perf_counter()
            gen = decoder.generate(lm, PROMPT, max_new_tokens=n, constraint=constraint, seed=0)
            seconds = time.perf_counter() - start
            tokens = max(len(gen.ids), 1)
            try:
                json.loads(gen.text)
                valid = constraint.accepts(gen.bytes)
            except json.JSONDecodeError:
                valid = False
            results[label] = {"text": gen.text, "tokens": len(gen.ids), "valid": valid,
                              "checks_per_token": gen.counters["constraint_checks"] / tokens,
                              "ms_per_token": 1000 * seconds / tokens, "log_weight": gen.log_weight}
            status = "complete, schema-valid" if valid else f"first {len(gen.ids)} tokens"
            print(f"  {label:<8} {gen.text!r} ({status})", file=out)
            print(f"           {results[label]['checks_per_token']:.1f} constraint checks/token, "
                  f"{results[label]['ms_per_token']:.0f} ms/token, log weight {gen.log_weight:.3f}", file=out)
        ratio = results["masking"]["checks_per_token"] / max(results["awrs"]["checks_per_token"], 1e-9)
        results["check_ratio"] = ratio
        print(f"\n  masking needs {ratio:.0f}x more constraint checks per token than AWRS", file=out)
        return results
