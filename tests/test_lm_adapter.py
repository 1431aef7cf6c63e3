import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import ContextLengthError, InputError, StaleStateError
from tokensmith.adapters.hf_lm import HFCausalLM, is_causal_lm

# Cached and uncached forwards run different kernels (attention over a cache vs a
# full causal mask); in float32 they agree to ~1e-5, which we allow as 1e-4.
ATOL = 1e-4


def full_rows(lm, ids):
    return lm.logprobs_batch([ids])[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(0, 300), min_size=2, max_size=24), cut=st.integers(1, 23))
def test_cached_steps_equal_a_full_forward(tiny_lm, ids, cut):
    cut = min(cut, len(ids) - 1)
    state = tiny_lm.start(ids[:cut])
    rows = [state.logprobs]
    for token in ids[cut:]:
        state = tiny_lm.extend(state, [token])
        rows.append(state.logprobs)
    full = full_rows(tiny_lm, ids)
    torch.testing.assert_close(torch.stack(rows), full[cut - 1:], atol=ATOL, rtol=0)


def test_multi_token_extend_equals_single_steps(tiny_lm):
    a = tiny_lm.extend(tiny_lm.start([1, 2]), [3, 4, 5])
    b = tiny_lm.start([1, 2])
    for t in (3, 4, 5):
        b = tiny_lm.extend(b, [t])
    torch.testing.assert_close(a.logprobs, b.logprobs, atol=ATOL, rtol=0)
    assert a.ids == b.ids == (1, 2, 3, 4, 5)


def test_batched_scoring_ignores_padding(tiny_lm):
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13]
    batch = tiny_lm.logprobs_batch([short, long])
    torch.testing.assert_close(batch[0], full_rows(tiny_lm, short), atol=ATOL, rtol=0)
    torch.testing.assert_close(batch[1], full_rows(tiny_lm, long), atol=ATOL, rtol=0)


def test_score_is_the_sum_of_token_logprobs(tiny_lm):
    text = "The quick brown fox"
    ids = list(tiny_lm.tokenizer.encode(text).ids)
    state = tiny_lm.start(list(tiny_lm.start_ids))
    total = 0.0
    for t in ids:
        total += float(state.logprobs[t])
        state = tiny_lm.extend(state, [t])
    assert tiny_lm.score(text) == pytest.approx(total, abs=1e-4)
    rows = full_rows(tiny_lm, list(tiny_lm.start_ids) + ids)
    exact = sum(float(rows[i, t]) for i, t in enumerate(ids))
    assert tiny_lm.score(text) == pytest.approx(exact, abs=1e-9)


def test_logprobs_are_normalised(tiny_lm):
    state = tiny_lm.start([1, 2, 3])
    assert float(state.logprobs.exp().sum()) == pytest.approx(1.0, abs=1e-5)


def test_extending_a_state_twice_needs_a_fork(tiny_lm):
    root = tiny_lm.start([1, 2])
    branch = tiny_lm.fork(root)
    a = tiny_lm.extend(root, [3])
    with pytest.raises(StaleStateError, match="fork"):
        tiny_lm.extend(root, [4])
    b = tiny_lm.extend(branch, [4])
    torch.testing.assert_close(b.logprobs, full_rows(tiny_lm, [1, 2, 4])[-1], atol=ATOL, rtol=0)
    torch.testing.assert_close(a.logprobs, full_rows(tiny_lm, [1, 2, 3])[-1], atol=ATOL, rtol=0)


def test_context_length_is_enforced(tiny_lm):
    with pytest.raises(ContextLengthError, match="context length 256"):
        tiny_lm.start([1] * 257)
    state = tiny_lm.start([1] * 250)
    with pytest.raises(ContextLengthError):
        tiny_lm.extend(state, [1] * 7)


def test_bad_ids_are_typed_errors(tiny_lm):
    with pytest.raises(InputError, match="token ids"):
        tiny_lm.start("hello")
    with pytest.raises(InputError, match="outside the vocabulary"):
        tiny_lm.start([10**6])
    with pytest.raises(InputError, match="scoring needs a non-empty context"):
        tiny_lm.score_ids([1], context=[])


def test_counters_count_forwards(tiny_lm):
    before = dict(tiny_lm.counters)
    tiny_lm.extend(tiny_lm.start([1, 2]), [3])
    assert tiny_lm.counters["forward_calls"] - before["forward_calls"] == 2
    assert tiny_lm.counters["forward_tokens"] - before["forward_tokens"] == 3


def test_gpt2_and_encoders(tiny_gpt2, runtime, minilm):
    model, tok = tiny_gpt2
    lm = HFCausalLM(model, tok, runtime)
    state = lm.extend(lm.start([1, 2]), [3])
    torch.testing.assert_close(state.logprobs, lm.logprobs_batch([[1, 2, 3]])[0][-1], atol=ATOL, rtol=0)
    assert not is_causal_lm(minilm[0])


@pytest.mark.smollm2
def test_smollm2_cached_equals_full_and_score(smollm2_lm):
    lm = smollm2_lm
    ids = list(lm.start_ids) + list(lm.tokenizer.encode("def fibonacci(n): return n").ids)
    state = lm.start(ids[:4])
    rows = [state.logprobs]
    for t in ids[4:]:
        state = lm.extend(state, [t])
        rows.append(state.logprobs)
    full = full_rows(lm, ids)
    torch.testing.assert_close(torch.stack(rows), full[3:], atol=ATOL, rtol=0)
    text = "The capital of France is Paris."
    body = list(lm.tokenizer.encode(text).ids)
    rows = full_rows(lm, list(lm.start_ids) + body)
    assert lm.score(text) == pytest.approx(sum(float(rows[i, t]) for i, t in enumerate(body)), abs=1e-6)
    assert lm.score(text) > lm.score("The capital of France is Berlin.")
