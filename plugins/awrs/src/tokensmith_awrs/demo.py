"""`tokensmith demo` section: SmolLM2 writes schema-valid JSON (AWRS vs full-vocabulary masking),
then answers under a Lark grammar (llguidance, when installed): the SMC posterior with AWRS
weights next to the string frequencies of locally constrained decoding (masking without weights).

AWRS: Lipkin et al., arXiv 2504.05410."""

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
#: the grammar section: a number answer, where the LM would rather write words (so the local
#: renormalisation of masking and the global posterior disagree)
LARK = "start: NUMBER\nNUMBER: /[1-9][0-9]?/"
LARK_PROMPT = TrustedText("<|im_start|>user\nHow many legs does a spider have?<|im_end|>\n"
                          "<|im_start|>assistant\n")
LARK_SAMPLES = 16
LARK_TOKENS = 4


def grammar_section(lm: Any, out: Any) -> tuple[dict[str, float], Table | None, str | None]:
    """SMC (AWRS weights) vs LCD over the Lark grammar; ``None`` table and a reason without
    llguidance."""
    from .grammars import LarkConstraint, available

    if not available():
        return {}, None, "llguidance is not installed: the Lark section is skipped " \
                         "(pip install 'tokensmith-awrs[llguidance]')"
    constraint = LarkConstraint(grammar=LARK)
    smc = AWRSDecoder(n_particles=LARK_SAMPLES).generate(lm, LARK_PROMPT, max_new_tokens=LARK_TOKENS,
                                                         constraint=constraint, seed=0)
    posterior = dict(smc.details["posterior"])
    lcd: dict[str, float] = {}
    for seed in range(LARK_SAMPLES):
        gen = MaskingDecoder().generate(lm, LARK_PROMPT, max_new_tokens=LARK_TOKENS, constraint=constraint,
                                        seed=seed)
        if gen.finish_reason == "stop":
            lcd[gen.text] = lcd.get(gen.text, 0.0) + 1.0
    finished = sum(lcd.values())
    lcd = {k: v / finished for k, v in lcd.items()} if finished else {}
    texts = sorted(set(posterior) | set(lcd), key=lambda t: -(posterior.get(t, 0.0) + lcd.get(t, 0.0)))
    tv = 0.5 * sum(abs(posterior.get(t, 0.0) - lcd.get(t, 0.0)) for t in texts) if posterior and lcd else None
    table = Table(f"Lark grammar {LARK!r}: SMC posterior ({LARK_SAMPLES} particles, AWRS weights) vs "
                  f"masking without weights ({LARK_SAMPLES} samples)",
                  ("string", "SMC posterior", "masking (LCD) frequency"),
                  tuple((t, posterior.get(t, 0.0), lcd.get(t, 0.0)) for t in texts))
    metrics = {"lark_smc_log_evidence": smc.log_weight} if math.isfinite(smc.log_weight) else {}
    if tv is not None:
        metrics["lark_tv_smc_vs_lcd"] = tv
    return metrics, table, None


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
        lark_metrics, lark_table, skipped = grammar_section(lm, out)
        report = Report(
            name=self.name,
            metrics={"masking_checks_vs_awrs": ratio, "awrs_checks_per_token": checks["awrs"],
                     "masking_checks_per_token": checks["masking"],
                     "awrs_schema_valid": int(rows[0][3] == "complete, schema-valid"), **lark_metrics},
            tables=(Table("JSON Schema constraint on the same prompt",
                          ("decoder", "text", "tokens", "status", "checks/token", "ms/token", "log weight"),
                          tuple(rows)),) + ((lark_table,) if lark_table is not None else ()),
            series=(Series("constraint checks per token", tuple(checks), tuple(checks.values()), plot="bar",
                           log_y=all(v > 0 for v in checks.values())),),
            notes=(f"masking runs only {MASKING_TOKENS} tokens (it checks the whole vocabulary at every "
                   f"step); AWRS up to {AWRS_TOKENS}, seed 0",
                   "an empty log weight is -inf: the sample reached a dead end (weight 0) or stopped at "
                   "the length limit before an accepted end",
                   "Lark section: the SMC posterior targets p(string | grammar); masking renormalises "
                   "every step and, without weights, samples a different distribution"
                   + (f" (total variation {lark_metrics['lark_tv_smc_vs_lcd']:.2f} here)"
                      if "lark_tv_smc_vs_lcd" in lark_metrics else ""))
            + ((skipped,) if skipped else ()))
        to_terminal(report, out)
        print(f"\n  masking needs {ratio:.0f}x more constraint checks per token than AWRS", file=out)
        return report
