"""Issue 13, item 1: certified-exact prefetching. Rows read ahead in the batch of a needed forward
are the same rows a later forward would compute, so prefetch on and off give the same distributions
(float64 models: to rounding) while the prefetching run needs fewer LM forward calls."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_byteprob import ByteProbLM
from tokensmith_byteprob import cover_set as cover_set_module
from tokensmith_byteprob.cover_set import ZeroProbabilityError
from tokensmith_byteprob.decoding import ByteDecoder

from tokensmith import InputError

#: byte strings over the tiny tokenizers' common text (words, spaces, a 2-byte character)
text = st.lists(st.sampled_from([b"the", b" ", b"a", b"er", b"s", b"\xc3\xa9", b"in", b"o"]), min_size=1,
                max_size=5).map(b"".join)


@pytest.fixture(autouse=True, scope="module")
def _prefetch_every_branch():
    """The random tiny models spread their mass, so their top straddling covers rarely reach the
    share below which a trained model's prefetch is skipped: every branch is prefetched here (the
    skip has its own test)."""
    share = cover_set_module.PREFETCH_SHARE
    cover_set_module.PREFETCH_SHARE = 0.0
    yield
    cover_set_module.PREFETCH_SHARE = share


def _greedy_walk(blm, prompt, n):
    state = blm.start(prompt)
    states = [state]
    for _ in range(n):
        b = int(state.logprobs.argmax())
        if b == 256:
            break
        state = blm.advance(state, b)
        states.append(state)
    return states


def _calls(lm, blm, prompt, n):
    before = lm.counters["forward_calls"]
    states = _greedy_walk(blm, prompt, n)
    return lm.counters["forward_calls"] - before, states


@settings(max_examples=5, deadline=None)  # two 10-byte walks each, marginal among them
@given(meaning=st.sampled_from(["canonical-local", "canonical-global", "marginal"]),
       prefetch=st.sampled_from([1, 2, 5]), tolerance=st.sampled_from([0.0, 1e-3]), prompt=text)
def test_prefetch_on_and_off_agree_exactly(tiny_byte_level_lm, meaning, prefetch, tolerance, prompt):
    """Same bytes, same distributions (float64: 1e-12), same certified bounds at tolerance 0, on greedy
    walks of the tiny float64 model; the prefetching run never needs more forward calls."""
    lm = tiny_byte_level_lm
    # prefetched covers are expanded for free, so near a resource limit the two runs may meet it at
    # different bytes: the limits (tested on their own) are set out of the way here
    blm = ByteProbLM(lm, meaning=meaning, tolerance=tolerance, prefetch=prefetch, max_exact_covers=100_000)
    plain = ByteProbLM(lm, meaning=meaning, tolerance=tolerance, prefetch=0, max_exact_covers=100_000)
    try:
        off_calls, off = _calls(lm, plain, prompt, 10)
    except ZeroProbabilityError:
        # a prompt the meaning gives probability 0 (the canonical meanings' dead ends, e.g. b"  e" on this
        # tokenizer, which brute force agrees with): prefetching must refuse it the same way
        with pytest.raises(ZeroProbabilityError):
            blm.start(prompt)
        return
    on_calls, on = _calls(lm, blm, prompt, 10)
    assert [s.prefix for s in on] == [s.prefix for s in off]
    for a, e in zip(on, off):
        if tolerance == 0:
            assert a.data.bound == e.data.bound == 0.0
            assert float((a.logprobs.exp() - e.logprobs.exp()).abs().max()) <= 1e-12
        else:  # prefetched states are expanded for free: the result is at least as close to the exact one
            assert a.data.bound <= tolerance
    if tolerance == 0:
        assert on_calls <= off_calls


def test_prefetch_cuts_forward_calls_along_a_word(tiny_byte_level_lm):
    """On a walk of greedy bytes the prefetched states are used (hits) and calls drop well below one
    per byte, while prefetch 0 needs about one per byte."""
    lm = tiny_byte_level_lm
    off_calls, off = _calls(lm, ByteProbLM(lm, tolerance=0, prefetch=0), b"the", 24)
    blm = ByteProbLM(lm, tolerance=0, prefetch=2)
    on_calls, on = _calls(lm, blm, b"the", 24)
    assert len(on) == len(off) > 10
    assert blm.counters["prefetch_hits"] > 0 and blm.counters["prefetched"] >= blm.counters["prefetch_hits"]
    assert on_calls < off_calls
    for a, e in zip(on, off):
        assert float((a.logprobs.exp() - e.logprobs.exp()).abs().max()) <= 1e-12


def test_prefetch_agrees_on_the_toy_lm(toy_lm):
    """The toy Markov LM (no batched forward: extend_batch forks per row) gives identical results."""
    walks = [_greedy_walk(ByteProbLM(toy_lm, tolerance=0, prefetch=p), b"ab a", 8) for p in (0, 3)]
    for a, e in zip(*walks):
        assert a.prefix == e.prefix
        assert float((a.logprobs.exp() - e.logprobs.exp()).abs().max()) <= 1e-15


def test_prefetch_is_skipped_rather_than_exceeding_max_memory(tiny_byte_level_lm):
    """Prefetched rows are optional: under a memory bound that the needed forwards fit but the
    prefetched rows would not, nothing is prefetched and the result is unchanged."""
    lm = tiny_byte_level_lm
    exact = _greedy_walk(ByteProbLM(lm, tolerance=0, prefetch=0), b"the", 6)
    free = ByteProbLM(lm, tolerance=0, prefetch=50)
    _greedy_walk(free, b"the", 6)
    blm = ByteProbLM(lm, tolerance=0, prefetch=50, max_memory=40 * lm.vocab_size * 4)
    got = _greedy_walk(blm, b"the", 6)
    assert len(got) == len(exact)
    for a, e in zip(got, exact):
        assert float((a.logprobs.exp() - e.logprobs.exp()).abs().max()) <= 1e-12
    assert blm.counters["prefetched"] < free.counters["prefetched"]  # some prefetches were skipped
    assert not math.isnan(float(got[-1].logprobs.exp().sum()))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_prefetch_must_be_a_non_negative_int(toy_lm, bad):
    with pytest.raises(InputError, match="prefetch"):
        ByteProbLM(toy_lm, prefetch=bad)
    if not isinstance(bad, bool):
        with pytest.raises((ValueError, TypeError)):
            ByteDecoder(prefetch=bad)


def test_unlikely_branches_are_not_prefetched_and_nothing_changes(tiny_byte_level_lm, monkeypatch):
    """With a share threshold, branches whose top straddling cover holds less than it are not read
    ahead (fewer rows), and the distributions stay those of prefetching everything and of none."""
    lm = tiny_byte_level_lm
    every = ByteProbLM(lm, tolerance=0, prefetch=2)
    walk_every = _greedy_walk(every, b"the", 12)
    monkeypatch.setattr(cover_set_module, "PREFETCH_SHARE", 0.05)
    some = ByteProbLM(lm, tolerance=0, prefetch=2)
    walk_some = _greedy_walk(some, b"the", 12)
    monkeypatch.setattr(cover_set_module, "PREFETCH_SHARE", 1.0)  # no cover holds more than all the mass
    none = ByteProbLM(lm, tolerance=0, prefetch=2)
    walk_none = _greedy_walk(none, b"the", 12)
    assert none.counters["prefetched"] == 0 < some.counters["prefetched"] < every.counters["prefetched"]
    plain = _greedy_walk(ByteProbLM(lm, tolerance=0, prefetch=0), b"the", 12)
    for walk in (walk_every, walk_some, walk_none):
        assert [s.prefix for s in walk] == [s.prefix for s in plain]
        for a, e in zip(walk, plain):
            assert float((a.logprobs.exp() - e.logprobs.exp()).abs().max()) <= 1e-12


@pytest.mark.parametrize("eager", [0, 1, 3])
def test_eager_prefetched_rows_change_nothing_but_the_head_passes(tiny_byte_level_lm, monkeypatch, eager):
    """The shortest EAGER_PREFETCH prefetched tokens get their next-token rows in their batch (the
    others are deferred until reached): the same distributions as prefetching with every row
    deferred, and one later output-layer pass fewer for each eager row that is reached."""
    lm = tiny_byte_level_lm
    monkeypatch.setattr(cover_set_module, "EAGER_PREFETCH", 0)
    lazy = ByteProbLM(lm, tolerance=0, prefetch=2)
    before = lm.counters.get("head_rows", 0)
    walk_lazy = _greedy_walk(lazy, b"the", 12)
    lazy_heads = lm.counters.get("head_rows", 0) - before
    monkeypatch.setattr(cover_set_module, "EAGER_PREFETCH", eager)
    seen: list[list[bool]] = []
    extend_batch = lm.extend_batch

    def spy(state, conts, defer=None):
        seen.append(list(defer or []))
        return extend_batch(state, conts, defer=defer)

    monkeypatch.setattr(lm, "extend_batch", spy)
    some = ByteProbLM(lm, tolerance=0, prefetch=2)
    before = lm.counters.get("head_rows", 0)
    walk = _greedy_walk(some, b"the", 12)
    heads = lm.counters.get("head_rows", 0) - before
    assert some.counters["prefetch_hits"] == lazy.counters["prefetch_hits"] > 0
    assert [s.prefix for s in walk] == [s.prefix for s in walk_lazy]
    for a, e in zip(walk, walk_lazy):
        assert float((a.logprobs.exp() - e.logprobs.exp()).abs().max()) <= 1e-12
    # a prefetching batch: its needed rows, then its prefetched ones, the eager ones not deferred
    computed = [sum(not d for d in defer) for defer in seen if any(defer)]
    assert computed and all(n >= 1 for n in computed)
    if eager == 0:
        assert heads == lazy_heads == some.counters["prefetch_hits"]
    else:
        assert heads < lazy_heads
