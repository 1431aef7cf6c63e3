"""`tokensmith demo` section: prompts cut mid-word, token-level vs token healing vs byte-exact.

Phan et al., arXiv 2410.09303, Sec. 4: a prompt that ends inside a token puts
a token-level model off its training distribution; exact byte probabilities
condition on the bytes instead.
"""

from __future__ import annotations

import math
import time
from typing import Any

import attrs

from tokensmith import BuildContext, Demo, Report, Series, Table, UnknownComponentError, to_terminal

from .cover_set import ByteProbLM
from .decoding import generate_bytes

#: (prompt, the continuation a reader expects)
CASES = (("def fibon", "acci"), ("The capital of Fra", "nce"), ("import num", "py"))
METHODS = ("token-level greedy", "token healing", "byte-exact greedy")


def token_level_probability(lm: Any, prompt: str, continuation: str) -> float:
    """p(canonical tokens of the continuation | tokens of the prompt): naive prompting."""
    ids = list(lm.start_ids) + list(lm.tokenizer.encode(prompt).ids)
    return math.exp(lm.score_ids(lm.tokenizer.encode(continuation).ids, context=ids))


def healed_probability(lm: Any, prompt: str, continuation: str) -> float:
    """Token healing's probability of the continuation along the canonical tokens of (removed
    bytes + continuation): the prompt's last token is removed and the first new token must start
    with (or fit inside) its bytes, so the first step is renormalized over those tokens."""
    import torch

    tok = lm.tokenizer
    ids = list(lm.start_ids) + list(tok.encode(prompt).ids)
    removed = tok.token_bytes(ids[-1]) or b""
    kept = ids[:-1]
    target = list(tok.encode(removed.decode("utf-8") + continuation).ids)
    first = lm.logprobs_batch([kept])[0][-1]
    allowed = [v for v, b in enumerate(tok.byte_table)
               if b and (b.startswith(removed) or removed.startswith(b)) and v not in tok.special_ids]
    norm = float(torch.logsumexp(first[allowed], 0))
    return math.exp(lm.score_ids(target, context=kept) - norm)


@attrs.define
class ByteProbDemo(Demo):
    """Builds the baselines' ``greedy`` decoder by name, with and without token healing; without
    tokensmith-baselines those continuations are skipped (their probabilities need no decoder)."""

    name = "byteprob"

    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def _greedy(self, out: Any) -> tuple[Any, Any]:
        if self.ctx is None or self.ctx.registry is None:
            print("  (no registry to build the greedy decoder from: token-level continuations skipped)\n",
                  file=out)
            return None, None
        try:
            return (self.ctx.registry.build("decoder", "greedy", self.ctx),
                    self.ctx.registry.build("decoder", {"type": "greedy", "token_healing": True}, self.ctx))
        except UnknownComponentError:
            print("  (decoder 'greedy' is not installed: pip install tokensmith-baselines; token-level "
                  "continuations skipped)\n", file=out)
            return None, None

    def run(self, pipeline: Any, out: Any) -> Report:
        lm = pipeline.lm
        blm = ByteProbLM(lm)
        print("Prompts cut mid-word. P(expected) is the probability each method gives the expected", file=out)
        print("continuation; byte-exact sums every tokenization that covers the prompt's bytes.\n", file=out)
        greedy, healing = self._greedy(out)
        rows = []
        p_expected: dict[str, list[float]] = {label: [] for label in METHODS}
        for prompt, expected in CASES:
            start = time.perf_counter()
            calls = lm.counters["forward_calls"]
            exact, _ = generate_bytes(blm, prompt.encode(), 12)
            seconds = time.perf_counter() - start
            forwards = lm.counters["forward_calls"] - calls
            found = {
                "token-level greedy": (greedy.generate(lm, prompt, max_new_tokens=4).text if greedy else None,
                                       token_level_probability(lm, prompt, expected)),
                "token healing": (healing.generate(lm, prompt, max_new_tokens=4).text if healing else None,
                                  healed_probability(lm, prompt, expected)),
                "byte-exact greedy": (exact.decode("utf-8", "replace"),
                                      math.exp(blm.score_bytes(prompt.encode(), expected.encode()))),
            }
            for label, (text, p) in found.items():
                p_expected[label].append(p)
                exact_row = label == "byte-exact greedy"
                rows.append((prompt, expected, label, text, p, forwards if exact_row else None,
                             seconds if exact_row else None))
        notes = ["byte-exact continues 12 bytes, the token-level decoders 4 tokens; LM forwards and "
                 "seconds are the byte-exact generation's"]
        if greedy is None:
            notes.append("no greedy decoder (tokensmith-baselines): token-level continuations left empty, "
                         "their probabilities need no decoder")
        report = Report(
            name=self.name,
            metrics={f"mean_p_expected[{label}]": sum(ps) / len(ps) for label, ps in p_expected.items()},
            tables=(Table("prompts cut mid-word", ("prompt", "expected", "method", "continuation",
                                                   "P(expected)", "LM forwards", "seconds"), tuple(rows)),),
            series=tuple(Series(label, tuple(p for p, _ in CASES), tuple(ps), y_label="P(expected)",
                                plot="bar", group="P(expected continuation)")
                         for label, ps in p_expected.items()),
            notes=tuple(notes))
        to_terminal(report, out)
        return report
