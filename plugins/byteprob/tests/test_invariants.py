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


@pytest.mark.parametrize("meaning", MEANINGS + ("canonical-global",))
@settings(max_examples=30, deadline=None)
@given(text=toy_text)
def test_cover_mass_is_the_prefix_probability(toy_lm, meaning, text):
    """The lemma: P(x is a prefix) = sum of P(t) over cover(x) (canonical-global: the raw mass
    of the canonical covers), by enumeration; ``log_prefix`` adds the head's probability."""
    blm = ByteProbLM(toy_lm, meaning=meaning, tolerance=0)
    state = blm.start(text)
    assert blm.log_prefix(state) == pytest.approx(BruteForce(toy_lm, meaning).prefix_logprob(text), abs=1e-9)
    assert blm.log_prefix_bounds(state)[0] == blm.log_prefix_bounds(state)[1]
    assert state.logprobs.shape == (BYTE_EOS + 1,)


@pytest.mark.parametrize("meaning", MEANINGS)
@settings(max_examples=20, deadline=None)
@given(text=toy_text)
def test_chain_rule_equals_prefix_probability(toy_lm_prefixed, meaning, text):
    """prod_i P(x_i | x_<i) = P(x is a prefix) = sum over cover(x) (the lemma), by brute force.
    Texts are conditioned on the tokenizer's prefix bytes (the SentencePiece leading space)."""
    chain = ByteProbLM(toy_lm_prefixed, meaning=meaning, tolerance=0).score_bytes(b"", text)
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
    _assert_boundary_invariant(ByteProbLM(toy_lm, meaning=meaning, tolerance=0), b"ab a\xc3\xa9b", 1e-12)


def test_prompt_boundary_invariance_across_pretokens(tiny_byte_level_lm):
    """The canonical meaning fixes the tokens before the prompt's last whitespace: a continuation
    whose space merges with the next word (" " + "fox" -> " fox") must not notice the cut."""
    _assert_boundary_invariant(ByteProbLM(tiny_byte_level_lm, tolerance=0), b"def fibonacci(n", 1e-9)


def test_continuation_probability_ignores_how_the_prompt_was_split(tiny_byte_level_lm):
    """Invariant (iv): P(continuation | prompt) is a property of the prompt's bytes. Byte-exact,
    it is the same whether the prompt is given whole or cut anywhere (the rest fed byte by
    byte); conditioning on the prompt's tokens (the cut prompt encoded piecewise, then the
    continuation's tokens) changes with the cut, and never equals the byte-exact value."""
    lm, tok = tiny_byte_level_lm, tiny_byte_level_lm.tokenizer
    blm = ByteProbLM(lm, tolerance=0)
    prompt, continuation = b"def fibon", b"acci(n)"
    whole = blm.score_bytes(prompt, continuation)
    assert whole > -math.inf
    naive = set()
    for cut in range(1, len(prompt)):
        state = blm.start(prompt[:cut])
        for b in prompt[cut:]:
            state = blm.advance(state, b)
        exact = 0.0
        for b in continuation:
            exact += float(state.logprobs[b])
            state = blm.advance(state, b)
        assert exact == pytest.approx(whole, abs=1e-9)
        context = list(lm.start_ids) + list(tok.encode(prompt[:cut].decode()).ids) + list(
            tok.encode(prompt[cut:].decode()).ids)
        naive.add(round(lm.score_ids(tok.encode(continuation.decode()).ids, context=context), 6))
    assert len(naive) > 1 and all(abs(v - whole) > 1e-3 for v in naive)


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
