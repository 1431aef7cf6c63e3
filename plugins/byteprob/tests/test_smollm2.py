"""SmolLM2 (byte-level BPE, 49,152 tokens): exactness for short prompts and mid-word prompts."""

from __future__ import annotations

import pytest
import torch
from tokensmith_byteprob import ByteProbLM
from tokensmith_byteprob.brute_force import BruteForce, max_abs_error


@pytest.mark.parametrize(("meaning", "text"), [("canonical", b"def fibon"), ("marginal", b"Fra")])
def test_matches_brute_force(smollm2_lm, meaning, text):
    got = ByteProbLM(smollm2_lm, meaning=meaning).start(text).logprobs
    assert max_abs_error(got, BruteForce(smollm2_lm, meaning).next_byte_probs(text)) <= 1e-6


def test_mid_word_prompt(smollm2_lm):
    """Cut mid-word, the byte-exact model continues the word and is boundary invariant."""
    blm = ByteProbLM(smollm2_lm)
    state = blm.start(b"The capital of Fra")
    out = b""
    for _ in range(3):
        b = int(state.logprobs.argmax())
        out += bytes([b])
        state = blm.advance(state, b)
    assert out == b"nce"
    whole = blm.start(b"The capital of France")
    assert float((torch.exp(state.logprobs) - torch.exp(whole.logprobs)).abs().max()) <= 1e-5
