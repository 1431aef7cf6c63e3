"""Issue 13: the certified bound of deferred forwards, both canonical meanings and the UTF-8
option against brute force, contexts and special-token text, the memory bound, log P(x)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tokensmith_byteprob import ByteProbLM, CoverSetTooLargeError, SpecialTokenTextError
from tokensmith_byteprob.brute_force import BruteForce, max_abs_error
from tokensmith_byteprob.cover_set import ZeroProbabilityError
from tokensmith_byteprob.decoding import ByteDecoder, generate_bytes

from tokensmith import ResourceLimitError, TrustedText

THREE = ("canonical-local", "canonical-global", "marginal")
toy_text = st.lists(st.sampled_from([b"a", b"b", b" ", b"\xc3\xa9", b"ab"]), min_size=1,
                    max_size=4).map(b"".join)


def _walk(blm, prompt, more, check=True):
    """States after prompt and each byte of more (up to a byte of probability 0 when checked: with
    a tolerance, a byte of approximate probability 0 may still be possible, and advance finds out)."""
    state = blm.start(prompt)
    states = [state]
    for b in more:
        if check and float(state.logprobs[b]) == -math.inf:
            break
        state = blm.advance(state, b)
        states.append(state)
    return states


@settings(max_examples=15, deadline=None)
@given(lm_name=st.sampled_from(["toy_lm", "tiny_byte_level_lm"]), meaning=st.sampled_from(THREE),
       tolerance=st.sampled_from([0.3, 0.05, 1e-2, 1e-3, 1e-5]), prompt=toy_text, more=toy_text)
@example(lm_name="tiny_byte_level_lm", meaning="canonical-local", tolerance=0.3, prompt=b"  \xc3\xa9",
         more=b"a")
def test_the_certified_bound_holds_and_meets_the_tolerance(request, lm_name, meaning, tolerance, prompt,
                                                           more):
    """Against the tolerance-0 computation: every probability of every state along a walk is
    within the state's bound, and the bound is at most the tolerance."""
    lm = request.getfixturevalue(lm_name)
    blm = ByteProbLM(lm, meaning=meaning, tolerance=tolerance)
    try:
        exact = _walk(ByteProbLM(lm, meaning=meaning, tolerance=0), prompt, more)
    except ZeroProbabilityError:
        # a prompt this meaning gives probability 0 (a canonical dead end, e.g. b"  \xc3\xa9" on the tiny
        # byte-level tokenizer, where brute force agrees): the deferring run must refuse it too
        with pytest.raises(ZeroProbabilityError):
            blm.start(prompt)
        return
    approx = _walk(blm, prompt, b"".join(bytes([s.prefix[-1]]) for s in exact[1:]), check=False)
    assert len(approx) == len(exact)
    for a, e in zip(approx, exact):
        assert exact[0].data.bound == 0.0
        err = float((a.logprobs.exp() - e.logprobs.exp()).abs().max())
        assert err <= blm.bound(a) + 1e-12 and blm.bound(a) <= tolerance
        lo, hi = blm.log_prefix_bounds(a)
        true = ByteProbLM(lm, meaning=meaning, tolerance=0).log_prefix(e)
        assert lo - 1e-9 <= true <= hi + 1e-9


def test_deferral_saves_forwards_on_a_peaked_model(toy_lm):
    """The toy LM with sharp next-token tables, marginal meaning: most boundary covers hold a small
    share, and a loose tolerance skips their forwards while the result stays within the bound."""
    from tokensmith_byteprob.toy import MarkovLM, ToyTokenizer

    lm = MarkovLM(ToyTokenizer(), seed=4, spread=6.0)
    text = b"ab ab aba ab"
    runs = {}
    for tol in (0.0, 1e-3):
        blm = ByteProbLM(lm, meaning="marginal", tolerance=tol)
        before = blm.counters["expanded"]
        states = _walk(blm, b"", text)
        runs[tol] = (blm.counters["expanded"] - before, states, blm)
    assert runs[1e-3][0] < runs[0.0][0] / 2
    for a, e in zip(runs[1e-3][1], runs[0.0][1]):
        assert float((a.logprobs.exp() - e.logprobs.exp()).abs().max()) <= runs[1e-3][2].bound(a) + 1e-12


@pytest.mark.parametrize("invalid_utf8", ["unjudged", "invalid"])
@pytest.mark.parametrize("meaning", ["canonical-local", "canonical-global"])
@pytest.mark.parametrize("text", [b"", b"a\xc3", b"\xa9", b"ab \xc3\xa9"])
def test_both_canonical_meanings_and_the_utf8_option_match_brute_force(toy_lm, meaning, invalid_utf8, text):
    brute = BruteForce(toy_lm, meaning, invalid_utf8=invalid_utf8)
    want = brute.next_byte_probs(text) if brute.prefix_logprob(text) > -math.inf else None
    blm = ByteProbLM(toy_lm, meaning=meaning, invalid_utf8=invalid_utf8, tolerance=0)
    if want is None:  # "\xa9" alone is not UTF-8: impossible when such bytes are invalid
        assert invalid_utf8 == "invalid"
        with pytest.raises(Exception, match="probability 0"):
            blm.start(text)
        return
    state = blm.start(text)
    assert max_abs_error(state.logprobs, want) <= 1e-12
    assert blm.log_prefix(state) == pytest.approx(brute.prefix_logprob(text), abs=1e-12)


def test_the_utf8_option_changes_what_can_follow(toy_lm):
    unjudged = ByteProbLM(toy_lm, tolerance=0).start(b"a\xc3").logprobs
    strict = ByteProbLM(toy_lm, tolerance=0, invalid_utf8="invalid").start(b"a\xc3").logprobs
    assert unjudged[ord("a")] > -math.inf and strict[ord("a")] == -math.inf  # "\xc3a" is not UTF-8
    assert strict[0xA9] > -math.inf and strict[256] == -math.inf  # nor is ending mid-character
    with pytest.raises(Exception, match="invalid_utf8"):
        ByteProbLM(toy_lm, meaning="marginal", invalid_utf8="invalid")


def test_canonical_global_on_byte_level_bpe_matches_brute_force(tiny_byte_level_lm):
    differ = 0.0
    for text in (b"The", b"a b"):
        brute = BruteForce(tiny_byte_level_lm, "canonical-global")
        blm = ByteProbLM(tiny_byte_level_lm, meaning="canonical-global", tolerance=0)
        state = blm.start(text)
        assert max_abs_error(state.logprobs, brute.next_byte_probs(text)) <= 1e-9
        assert blm.log_prefix(state) == pytest.approx(brute.prefix_logprob(text), abs=1e-9)
        local = ByteProbLM(tiny_byte_level_lm, tolerance=0).start(text)
        differ = max(differ, float((local.logprobs.exp() - state.logprobs.exp()).abs().max()))
    assert differ > 1e-6  # the two canonical meanings are different distributions
    assert ByteProbLM(tiny_byte_level_lm, meaning="canonical").meaning == "canonical-local"


def test_log_prefix_and_incremental_scoring(tiny_byte_level_lm):
    """log P(x) of a state equals brute force (head included), and scoring a continuation from a
    state equals scoring from scratch."""
    blm = ByteProbLM(tiny_byte_level_lm, tolerance=0)
    state = blm.start(b"a b")
    want = BruteForce(tiny_byte_level_lm).prefix_logprob(b"a b")
    assert blm.log_prefix(state) == pytest.approx(want, abs=1e-9)
    got, after = blm.score_continuation(state, b"ee")
    assert got == pytest.approx(blm.score_bytes(b"a b", b"ee"), abs=1e-12)
    assert blm.log_prefix(after) == pytest.approx(blm.log_prefix(state) + got, abs=1e-9)


def test_special_token_text_is_a_typed_error_or_parsed(tiny_byte_level_lm):
    lm = tiny_byte_level_lm
    for meaning in THREE:
        with pytest.raises(SpecialTokenTextError, match="<\\|endoftext\\|>"):
            ByteProbLM(lm, meaning=meaning).start(b"hi<|endoftext|>the")
    parsed = ByteProbLM(lm, specials="parse").start(b"hi<|endoftext|>the")
    context = list(lm.start_ids) + list(lm.tokenizer.encode("hi<|endoftext|>", allow_special=True).ids)
    given_ids = ByteProbLM(lm, context=context).start(b"the")
    given_text = ByteProbLM(lm, context="hi<|endoftext|>").start(b"the")
    assert torch.equal(parsed.logprobs, given_ids.logprobs)
    assert torch.equal(parsed.logprobs, given_text.logprobs)
    assert not torch.equal(parsed.logprobs, ByteProbLM(lm).start(b"the").logprobs)
    decoder = ByteDecoder(max_new_bytes=3)
    with pytest.raises(SpecialTokenTextError):
        decoder.generate(lm, "hi<|endoftext|>the")
    # a trusted prompt (a chat template's output) is parsed: its specials are the context
    want, _ = generate_bytes(ByteProbLM(lm, context="hi<|endoftext|>"), b"the", 3)
    assert decoder.generate(lm, TrustedText("hi<|endoftext|>the")).bytes == want


def test_marginal_memory_is_bounded_with_a_typed_error(tiny_byte_level_lm):
    """The marginal cover set of ordinary text outgrows a small memory bound: a
    ResourceLimitError before the forward, naming the bound."""
    blm = ByteProbLM(tiny_byte_level_lm, meaning="marginal", tolerance=0, max_memory=200_000)
    calls = tiny_byte_level_lm.counters["forward_calls"]
    with pytest.raises(CoverSetTooLargeError, match="max_memory=200,000") as err:
        blm.start(b"hello world and the")
    assert isinstance(err.value, ResourceLimitError) and tiny_byte_level_lm.counters["forward_calls"] >= calls
