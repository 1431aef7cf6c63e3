"""LanguageModel.extend_batch: several continuations on one shared state (issue 13, item 2).

The HF adapter reads them in one right-padded forward over the shared KV cache and the new
states share that cache (a KVSegment chain) instead of copying it; the base class's default
(fork + extend per row) is what every other LanguageModel gets."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import ContextLengthError, InputError, LanguageModel, StaleStateError, tensor_bytes
from tokensmith.adapters.hf_lm import HFCausalLM, KVSegment

ATOL = 1e-4


def sequential(lm, state, cont):
    return lm.extend(lm.fork(state), cont) if cont else state


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.lists(st.integers(0, 300), min_size=1, max_size=8),
       conts=st.lists(st.lists(st.integers(0, 300), max_size=5), min_size=1, max_size=4))
def test_batched_extend_equals_one_fork_and_extend_per_row(tiny_lm, prefix, conts):
    state = tiny_lm.start(prefix)
    got = tiny_lm.extend_batch(state, conts)
    assert [g.ids for g in got] == [tuple(prefix) + tuple(c) for c in conts]
    for g, c in zip(got, conts):
        torch.testing.assert_close(g.logprobs, sequential(tiny_lm, state, c).logprobs, atol=ATOL, rtol=0)
    # the shared state is untouched: it can still be extended, and so can every result, twice
    tiny_lm.extend(state, [5])
    for g in got:
        a, b = tiny_lm.extend(g, [7]), tiny_lm.extend(g, [7, 8])
        full = tiny_lm.logprobs_batch([list(g.ids) + [7, 8]])[0]
        torch.testing.assert_close(a.logprobs, full[-2], atol=ATOL, rtol=0)
        torch.testing.assert_close(b.logprobs, full[-1], atol=ATOL, rtol=0)


def test_results_share_the_prefix_cache_instead_of_copying_it(tiny_lm):
    state = tiny_lm.start(list(range(1, 30)))
    one = tensor_bytes(state)
    branches = tiny_lm.extend_batch(state, [[40], [41], [42, 43]])
    assert all(isinstance(b.cache, KVSegment) for b in branches)
    together = tensor_bytes(branches)
    # three branches of 1-2 tokens on a 29-token prefix: far less than three copies of it
    assert together < 1.5 * one
    deeper = tiny_lm.extend(branches[0], [50])
    assert deeper.cache.parent is branches[0].cache
    assert tiny_lm.fork(deeper).cache is deeper.cache


def test_fork_shares_tensors_until_a_branch_grows(tiny_lm):
    state = tiny_lm.start([1, 2, 3])
    fork = tiny_lm.fork(state)
    assert fork.cache.layers[0].keys.data_ptr() == state.cache.layers[0].keys.data_ptr()
    a = tiny_lm.extend(state, [4])
    b = tiny_lm.extend(fork, [9])
    full_a, full_b = (tiny_lm.logprobs_batch([ids])[0][-1] for ids in ([1, 2, 3, 4], [1, 2, 3, 9]))
    torch.testing.assert_close(a.logprobs, full_a, atol=ATOL, rtol=0)
    torch.testing.assert_close(b.logprobs, full_b, atol=ATOL, rtol=0)
    with pytest.raises(StaleStateError):
        tiny_lm.extend_batch(state, [[1]])


def test_bad_continuations_are_typed_errors(tiny_lm):
    state = tiny_lm.start([1, 2])
    with pytest.raises(InputError):
        tiny_lm.extend_batch(state, "abc")
    with pytest.raises(InputError):
        tiny_lm.extend_batch(state, [[1, 10 ** 9]])
    with pytest.raises(ContextLengthError):
        tiny_lm.extend_batch(state, [[1] * tiny_lm.context_length])
    assert tiny_lm.extend_batch(state, []) == []


def test_the_base_class_default_is_fork_and_extend(tiny_lm):
    """A LanguageModel that does not override extend_batch (transnormer's, the toy LMs) gets the
    same states through fork + extend."""
    state = tiny_lm.start([3, 4])
    got = LanguageModel.extend_batch(tiny_lm, state, [[5], [6, 7], []])
    want = tiny_lm.extend_batch(state, [[5], [6, 7], []])
    for g, w in zip(got, want):
        assert g.ids == w.ids
        torch.testing.assert_close(g.logprobs, w.logprobs, atol=ATOL, rtol=0)
    assert isinstance(tiny_lm, HFCausalLM)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.lists(st.integers(0, 300), min_size=1, max_size=6),
       conts=st.lists(st.lists(st.integers(0, 300), min_size=1, max_size=3), min_size=1, max_size=4),
       data=st.data())
def test_deferred_rows_get_the_same_distribution_later(tiny_lm, prefix, conts, data):
    """``defer``: those rows skip the output layer and keep their hidden state; ``with_logprobs``
    gives what the eager batch gives, and the rows not deferred are unchanged."""
    defer = data.draw(st.lists(st.booleans(), min_size=len(conts), max_size=len(conts)))
    state = tiny_lm.start(prefix)
    eager = tiny_lm.extend_batch(state, conts)
    lazy = tiny_lm.extend_batch(state, conts, defer=defer)
    for e, g, d in zip(eager, lazy, defer):
        assert (g.logprobs is None) == d and g.ids == e.ids
        if d:
            assert g.cache.hidden is not None and g.cache.hidden.numel() < e.logprobs.numel()
        torch.testing.assert_close(tiny_lm.with_logprobs(g).logprobs, e.logprobs, atol=1e-5, rtol=0)
        # a deferred state extends like any other
        torch.testing.assert_close(tiny_lm.extend(g, [7]).logprobs, tiny_lm.extend(e, [7]).logprobs,
                                   atol=ATOL, rtol=0)


def test_defer_is_checked_and_ignored_where_it_cannot_apply(tiny_lm):
    state = tiny_lm.start([1, 2])
    for bad in ([True], "yes", [1, 0]):
        with pytest.raises(InputError, match="defer"):
            tiny_lm.extend_batch(state, [[3], [4]], defer=bad)
    # the base class computes every row now: with_logprobs returns the state itself
    got = LanguageModel.extend_batch(tiny_lm, state, [[3], [4]], defer=[True, True])
    assert all(g.logprobs is not None and tiny_lm.with_logprobs(g) is g for g in got)
    with pytest.raises(InputError, match="no next-token distribution"):
        LanguageModel.with_logprobs(tiny_lm, type(state)(state.ids, None, None, 0))
