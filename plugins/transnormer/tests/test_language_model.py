"""The LanguageModel over the recurrent form: cached reads equal uncached scoring, states
are immutable (fork is free, extending twice is safe), and the cache has constant size."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokensmith_transnormer.language_model import TransNormerLanguageModel

from tokensmith import InputError, Runtime

_settings = settings(max_examples=20, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@_settings
@given(data=st.data())
def test_cached_reads_equal_batched_scoring(tnl_lm, data):
    """Reading a sequence in pieces (several tokens: blockwise; one: recurrent) gives the
    rows of one uncached forward."""
    vocab = tnl_lm.tokenizer.vocab_size
    seq = data.draw(st.lists(st.integers(0, vocab - 1), min_size=2, max_size=30))
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(seq) - 1), min_size=1, max_size=5))))
    rows = tnl_lm.logprobs_batch([seq])[0]
    state = tnl_lm.start(seq[: cuts[0]])
    assert torch.allclose(state.logprobs, rows[cuts[0] - 1], atol=1e-8)
    for lo, hi in zip(cuts, cuts[1:] + [len(seq)], strict=True):
        state = tnl_lm.extend(state, seq[lo:hi])
        assert torch.allclose(state.logprobs, rows[hi - 1], atol=1e-8)
    assert state.ids == tuple(seq) and state.cache.offset == len(seq)


def test_batch_rows_do_not_see_padding(tnl_lm):
    a, b = [5, 6, 7], [5, 6, 7, 8, 9, 10]
    rows = tnl_lm.logprobs_batch([a, b])
    assert torch.allclose(rows[0], tnl_lm.logprobs_batch([a])[0], atol=1e-10)
    assert torch.allclose(rows[0], rows[1][:3], atol=1e-10)
    assert tnl_lm.logprobs_batch([]) == []


def test_fork_and_extending_one_state_twice(tnl_lm):
    state = tnl_lm.start([1, 2, 3])
    fork = tnl_lm.fork(state)
    a = tnl_lm.extend(state, [4])
    b = tnl_lm.extend(state, [5])
    c = tnl_lm.extend(fork, [4])
    assert torch.equal(a.logprobs, c.logprobs) and not torch.equal(a.logprobs, b.logprobs)
    assert torch.allclose(b.logprobs, tnl_lm.start([1, 2, 3, 5]).logprobs, atol=1e-10)


def test_cache_size_is_constant_while_decoding(tnl_lm):
    state = tnl_lm.start([1])
    size = state.cache.nbytes
    for step in range(200):
        state = tnl_lm.extend(state, [int(state.logprobs.argmax())])
        assert state.cache.nbytes == size and state.cache.offset == step + 2
    assert tnl_lm.counters["forward_calls"] == 201 and tnl_lm.counters["forward_tokens"] == 201


def test_logprobs_are_normalised(tnl_lm):
    lp = tnl_lm.start([3, 4]).logprobs
    assert lp.shape == (tnl_lm.vocab_size,) and float(lp.exp().sum()) == pytest.approx(1.0)


def test_bad_input(tnl_lm, tnl_model, tiny_tokenizer):
    with pytest.raises(InputError):
        tnl_lm.start([])
    with pytest.raises(InputError):
        tnl_lm.start([tnl_lm.vocab_size])
    with pytest.raises(InputError):
        tnl_lm.start("text")
    with pytest.raises(InputError, match="output rows"):
        TransNormerLanguageModel(tnl_model(vocab_size=10), tiny_tokenizer, Runtime())


def test_score_text(tnl_lm):
    text = "The quick brown fox"
    ids = tnl_lm.tokenizer.encode(text).ids
    state = tnl_lm.start(list(tnl_lm.start_ids))
    total = 0.0
    for tok in ids:
        total += float(state.logprobs[tok])
        state = tnl_lm.extend(state, [tok])
    assert tnl_lm.score(text) == pytest.approx(total, abs=1e-8)
