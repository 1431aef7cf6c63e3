"""`tokensmith demo` section: SmolLM2 writes schema-valid JSON; AWRS vs full-vocabulary masking."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from tokensmith import Demo, Report, Series, Table, TrustedText, to_terminal

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
AWRS_TOKENS = 48


class AWRSDemo(Demo):
    name = "awrs"

    def run(self, pipeline: Any, out: Any) -> Report:
        lm = pipeline.lm
        if lm is None:
            print("  (needs a causal LM; skipped)", file=out)
            return Report(name=self.name, notes=("skipped: the pipeline has no causal LM",))
        print("JSON Schema constraint; AWRS checks the constraint only on the tokens it visits,", file=out)
        print("masking checks every token of the vocabulary at every step.\n", file=out)
        rows, checks = [], {}
        for label, decoder, n in (("awrs", AWRSDecoder(), AWRS_TOKENS),
                                  ("masking", MaskingDecoder(), MASKING_TOKENS)):
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
            checks[label] = gen.counters["constraint_checks"] / tokens
            rows.append((label, gen.text, len(gen.ids), "complete, schema-valid" if valid else "unfinished",
                         checks[label], 1000 * seconds / tokens,
                         gen.log_weight if math.isfinite(gen.log_weight) else None))
        ratio = checks["masking"] / max(checks["awrs"], 1e-9)
        report = Report(
            name=self.name,
            metrics={"masking_checks_vs_awrs": ratio, "awrs_checks_per_token": checks["awrs"],
                     "masking_checks_per_token": checks["masking"],
                     "awrs_schema_valid": int(rows[0][3] == "complete, schema-valid")},
            tables=(Table("JSON Schema constraint on the same prompt",
                          ("decoder", "text", "tokens", "status", "checks/token", "ms/token", "log weight"),
                          tuple(rows)),),
            series=(Series("constraint checks per token", tuple(checks), tuple(checks.values()), plot="bar",
                           log_y=all(v > 0 for v in checks.values())),),
            notes=(f"masking runs only {MASKING_TOKENS} tokens (it checks the whole vocabulary at every "
                   f"step); AWRS up to {AWRS_TOKENS}, seed 0",
                   "an empty log weight is -inf: the sample reached a dead end (weight 0)"))
        to_terminal(report, out)
        print(f"\n  masking needs {ratio:.0f}x more constraint checks per token than AWRS", file=out)
        return report
