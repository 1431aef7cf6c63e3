"""`tokensmith demo` section: prompts cut mid-word, token-level vs token healing vs byte-exact.

Phan et al., arXiv 2410.09303, Sec. 4: a prompt that ends inside a token puts
a token-level model off its training distribution; exact byte probabilities
condition on the bytes instead.
"""

from __future__ import annotations

import math
import time
from typing import Any

from tokensmith import BuildContext, Demo

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


class ByteProbDemo(Demo):
    name = "byteprob"

    def __init__(self, config: None = None, ctx: BuildContext | None = None) -> None:
        pass

    def run(self, pipeline: Any, out: Any) -> dict[str, Any]:
        lm = pipeline.lm
        blm = ByteProbLM(lm)
        try:
            from tokensmith_baselines.decoding import GreedyDecoder
        except ImportError:
            GreedyDecoder = None
        print("Prompts cut mid-word. P(expected) is the probability each method gives the expected", file=out)
        print("continuation; byte-exact sums every tokenization that covers the prompt's bytes.\n", file=out)
        results: dict[str, Any] = {}
        for prompt, expected in CASES:
            row: dict[str, Any] = {}
            naive = GreedyDecoder().generate(lm, prompt, max_new_tokens=4) if GreedyDecoder else None
            healed = GreedyDecoder(token_healing=True).generate(lm, prompt, max_new_tokens=4) \
                if GreedyDecoder else None
            start = time.perf_counter()
            calls = lm.counters["forward_calls"]
            exact, _ = generate_bytes(blm, prompt.encode(), 12)
            row["byte_exact"] = {"text": exact.decode("utf-8", "replace"),
                                 "p_expected": math.exp(blm.score_bytes(prompt.encode(), expected.encode())),
                                 "seconds": time.perf_counter() - start,
                                 "lm_calls": lm.counters["forward_calls"] - calls}
            row["token_level"] = {"text": naive.text if naive else None,
                                  "p_expected": token_level_probability(lm, prompt, expected)}
            row["token_healing"] = {"text": healed.text if healed else None,
                                    "p_expected": healed_probability(lm, prompt, expected)}
            print(f"  prompt {prompt!r}, expected {expected!r}", file=out)
            for label, key in (("token-level greedy", "token_level"), ("token healing", "token_healing"),
                               ("byte-exact greedy", "byte_exact")):
                text = row[key]["text"]
                shown = "(tokensmith-baselines not installed)" if text is None else repr(text)
                p = row[key]["p_expected"]
                print(f"    {label:<19} P(expected)={p:.3g}  continues {shown}", file=out)
            results[prompt] = row
        return results
