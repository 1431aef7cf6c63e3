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

from tokensmith import BuildContext, Demo, UnknownComponentError, bold

from .cover_set import ByteProbLM
from .decoding import generate_bytes

#: (prompt, the continuation a reader expects)
CASES = (("def fibon", "acci"), ("The capital of Fra", "nce"), ("import num", "py"))


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

    def run(self, pipeline: Any, out: Any) -> dict[str, Any]:
        lm = pipeline.lm
        blm = ByteProbLM(lm)
        print("Prompts cut mid-word. P(expected) is the probability each method gives the expected", file=out)
        print("continuation; byte-exact sums every tokenization that covers the prompt's bytes.\n", file=out)
        greedy, healing = self._greedy(out)
        results: dict[str, Any] = {}
        for prompt, expected in CASES:
            row: dict[str, Any] = {}
            start = time.perf_counter()
            calls = lm.counters["forward_calls"]
            exact, _ = generate_bytes(blm, prompt.encode(), 12)
            row["byte_exact"] = {"text": exact.decode("utf-8", "replace"),
                                 "p_expected": math.exp(blm.score_bytes(prompt.encode(), expected.encode())),
                                 "seconds": time.perf_counter() - start,
                                 "lm_calls": lm.counters["forward_calls"] - calls}
            naive = greedy.generate(lm, prompt, max_new_tokens=4).text if greedy else None
            healed = healing.generate(lm, prompt, max_new_tokens=4).text if healing else None
            row["token_level"] = {"text": naive, "p_expected": token_level_probability(lm, prompt, expected)}
            row["token_healing"] = {"text": healed, "p_expected": healed_probability(lm, prompt, expected)}
            print(f"  prompt {prompt!r}, expected {expected!r}", file=out)
            for label, key in (("token-level greedy", "token_level"), ("token healing", "token_healing"),
                               ("byte-exact greedy", "byte_exact")):
                text, p = row[key]["text"], row[key]["p_expected"]
                shown = "" if text is None else f"  continues {bold(repr(text), out)}"
                print(f"    {label:<19} P(expected)={p:.3g}{shown}", file=out)
            results[prompt] = row
        return results
