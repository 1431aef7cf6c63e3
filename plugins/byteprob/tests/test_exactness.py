"""Next-byte distributions equal brute-force enumeration of token sequences (float64, 1e-9)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_byteprob import ByteProbLM, ZeroProbabilityError
from tokensmith_byteprob.brute_force import BruteForce, max_abs_error

MEANINGS = ("canonical", "marginal")
TOY_ALPHABET = [b"a", b"b", b" ", b"\xc3", b"\xa9"]


@pytest.mark.parametrize("meaning", MEANINGS)
@pytest.mark.parametrize("lm_name", ["toy_lm", "toy_lm_prefixed"])
@settings(max_examples=25, deadline=None)
@given(parts=st.lists(st.sampled_from(TOY_ALPHABET), max_size=5))
def test_toy_matches_brute_force(request, lm_name, meaning, parts):
    lm = request.getfixturevalue(lm_name)
    text = b"".join(parts)
    got = ByteProbLM(lm, meaning=meaning, tolerance=0).start(text).logprobs
    assert max_abs_error(got, BruteForce(lm, meaning).next_byte_probs(text)) <= 1e-9


@pytest.mark.parametrize("meaning", MEANINGS)
def test_meanings_differ_on_a_non_canonical_token(toy_lm, meaning):
    """The toy has the token "bb" that no merge produces: only the marginal meaning uses it."""
    covers = ByteProbLM(toy_lm, meaning=meaning).start(b"bb").data.sequences()
    bb = toy_lm.tokenizer.pieces.index(b"bb")
    assert any(bb in c for c in covers) == (meaning == "marginal")


@pytest.mark.parametrize("meaning", MEANINGS)
@pytest.mark.parametrize("text", [b"The", b"a b", b"x  ", b"caf\xc3"])
def test_tiny_byte_level_bpe_matches_brute_force(tiny_byte_level_lm, meaning, text):
    got = ByteProbLM(tiny_byte_level_lm, meaning=meaning, tolerance=0).start(text).logprobs
    assert max_abs_error(got, BruteForce(tiny_byte_level_lm, meaning).next_byte_probs(text)) <= 1e-9


@pytest.mark.parametrize(("meaning", "text"), [("canonical", b"The q"), ("canonical", b"caf\xc3"),
                                               ("marginal", b"Th")])
def test_tiny_byte_fallback_matches_brute_force(tiny_byte_fallback_lm, meaning, text):
    got = ByteProbLM(tiny_byte_fallback_lm, meaning=meaning, tolerance=0).start(text).logprobs
    assert max_abs_error(got, BruteForce(tiny_byte_fallback_lm, meaning).next_byte_probs(text)) <= 1e-9


@pytest.mark.parametrize("meaning", MEANINGS)
def test_unrepresentable_bytes_have_probability_zero(toy_lm, meaning):
    blm = ByteProbLM(toy_lm, meaning=meaning)
    state = blm.start(b"ab")
    assert float(state.logprobs[ord("c")]) == -math.inf
    assert blm.score_bytes(b"ab", b"c") == -math.inf
    with pytest.raises(ZeroProbabilityError):
        blm.advance(state, ord("c"))
    with pytest.raises(ZeroProbabilityError):
        blm.start(b"abc")


def test_smollm2_missing_bytes_have_probability_zero(smollm2_lm):
    state = ByteProbLM(smollm2_lm).start(b"x = ")
    missing = sorted(smollm2_lm.tokenizer.unrepresentable_bytes)
    assert missing and torch.isinf(state.logprobs[missing]).all()
