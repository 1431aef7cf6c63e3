"""The paper's invariants: normalisation, chain rule, prompt-boundary invariance, valid covers."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_byteprob import ByteProbLM
from tokensmith_byteprob.brute_force import BruteForce

from tokensmith import BYTE_EOS

MEANINGS = ("canonical", "marginal")
toy_text = st.lists(st.sampled_from([b"a", b"b", b" ", b"\xc3\xa9", b"\xc3"]), max_size=6).map(b"".join)


@pytest.mark.parametrize("meaning", MEANINGS)
@settings(max_examples=30, deadline=None)
@given(text=toy_text)
def test_distribution_sums_to_one(toy_lm, meaning, text):
    probs = torch.exp(ByteProbLM(toy_lm, meaning=meaning).start(text).logprobs)
    assert probs.shape == (BYTE_EOS + 1,)
    assert (probs >= 0).all() and abs(float(probs.sum()) - 1.0) <= 1e-12


@pytest.mark.parametrize("meaning", MEANINGS)
@settings(max_examples=20, deadline=None)
@given(text=toy_text)
def test_chain_rule_equals_prefix_probability(toy_lm_prefixed, meaning, text):
    """prod_i P(x_i | x_<i) = P(x is a prefix) = sum over cover(x) (the lemma), by brute force.
    Texts are conditioned on the tokenizer's prefix bytes (the SentencePiece leading space)."""
    chain = ByteProbLM(toy_lm_prefixed, meaning=meaning).score_bytes(b"", text)
    brute = BruteForce(toy_lm_prefixed, meaning)
    assert chain == pytest.approx(brute.prefix_logprob(text) - brute.prefix_logprob(b""), abs=1e-9)


def _assert_boundary_invariant(blm, text, tol):
    whole = blm.start(text)
    for cut in range(len(text)):
        state = blm.start(text[:cut])
        for b in text[cut:]:
            state = blm.advance(state, b)
        assert float((torch.exp(state.logprobs) - torch.exp(whole.logprobs)).abs().max()) <= tol
        split = blm.score_bytes(b"", text[:cut]) + blm.score_bytes(text[:cut], text[cut:])
        assert split == pytest.approx(blm.score_bytes(b"", text), abs=tol)


@pytest.mark.parametrize("meaning", MEANINGS)
def test_prompt_boundary_invariance_toy(toy_lm, meaning):
    _assert_boundary_invariant(ByteProbLM(toy_lm, meaning=meaning), b"ab a\xc3\xa9b", 1e-12)


def test_prompt_boundary_invariance_across_pretokens(tiny_byte_level_lm):
    """The canonical meaning fixes the tokens before the prompt's last whitespace: a continuation
    whose space merges with the next word (" " + "fox" -> " fox") must not notice the cut."""
    _assert_boundary_invariant(ByteProbLM(tiny_byte_level_lm), b"def fibonacci(n", 1e-9)


def test_naive_token_prompting_is_not_boundary_invariant(tiny_byte_level_lm):
    """Contrast (invariant iv): conditioning on the prompt's tokens depends on where it was cut."""
    lm, tok = tiny_byte_level_lm, tiny_byte_level_lm.tokenizer
    full = list(tok.encode("def fibonacci").ids)
    cut = list(tok.encode("def fibon").ids) + list(tok.encode("acci").ids)
    assert full != cut
    assert lm.score_ids(full) != pytest.approx(lm.score_ids(cut), abs=1e-6)


@pytest.mark.parametrize("text", [b"ab a", b"aba\xc3", b" b", b"bab \xc3\xa9"])
def test_canonical_covers_round_trip(toy_lm, text):
    brute = BruteForce(toy_lm, "canonical")
    covers = ByteProbLM(toy_lm).start(text).data.sequences()
    assert covers and all(brute.is_valid(c) for c in covers)


@pytest.mark.parametrize("lm_name", ["tiny_byte_level_lm", "tiny_byte_fallback_lm"])
def test_canonical_covers_round_trip_hf(request, lm_name):
    lm = request.getfixturevalue(lm_name)
    brute = BruteForce(lm, "canonical")
    covers = ByteProbLM(lm).start(b"The quick bro").data.sequences()
    assert covers and all(brute.is_valid(c) for c in covers)


@pytest.mark.parametrize("lm_name", ["tiny_byte_level_lm", "tiny_byte_fallback_lm"])
def test_every_encodable_text_is_reachable(request, lm_name):
    """The canonical process can produce any text the tokenizer encodes (its encoding survives
    the mask at every step), including a multi-byte character and a double space."""
    blm = ByteProbLM(request.getfixturevalue(lm_name))
    assert blm.score_bytes(b"", "Naïve  fox".encode()) > -math.inf


def test_eos_is_the_mass_of_ids_without_text(toy_lm):
    state = ByteProbLM(toy_lm, meaning="marginal").start(b"")
    no_text = [toy_lm.tokenizer.bos_id, toy_lm.tokenizer.eos_id]
    assert float(torch.exp(state.logprobs[BYTE_EOS])) == pytest.approx(
        float(torch.exp(toy_lm.table[toy_lm.tokenizer.bos_id, no_text]).sum()), abs=1e-12)
