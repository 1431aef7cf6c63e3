"""Bounded resources (issue 8, items 15 and 16): the context limit ends generation like the other
decoders do, and cover sets and batched forwards have stated bounds with a typed error."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_byteprob import ByteProbLM
from tokensmith_byteprob import cover_set as cover_set_module
from tokensmith_byteprob.cover_set import MAX_COVERS, MAX_EXACT_COVERS, CoverSetTooLargeError
from tokensmith_byteprob.decoding import ByteDecoder, generate_bytes
from tokensmith_byteprob.ensemble import ByteEnsemble

from tokensmith import ConfigError, ContextLengthError, HFCausalLM, InputError, ResourceLimitError, Runtime
from tokensmith.testing import tiny_llama, tiny_tokenizer

TEXT = b"hello world and the the the"


@functools.cache
def tiny_lm(context: int, kind: str = "byte_level") -> HFCausalLM:
    """The same random float64 Llama (same seed: rotary positions add no weights) with a given
    context window, so a short-context model agrees with a long one while the text fits."""
    tok = tiny_tokenizer(kind)
    model, _ = tiny_llama(tok, context=context, dtype="float64", seed=3)
    return HFCausalLM(model, tok, Runtime(device="cpu", dtype="float64"), name=f"tiny-{context}")


@pytest.fixture(scope="module")
def long_lm():
    return tiny_lm(256)


@pytest.fixture(scope="module")
def short_lm():
    return tiny_lm(32)


@pytest.fixture(scope="module")
def shorter_lm():
    """The marginal meaning's covers of 16 tokens stay far below its bounds."""
    return tiny_lm(16)


# -- item 15: the context limit ends generation with finish_reason "length" ---------------

@pytest.mark.parametrize("meaning", ["canonical", "marginal"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_generation_stops_at_the_context_and_keeps_what_it_generated(short_lm, shorter_lm, long_lm, meaning,
                                                                     temperature):
    # tolerance 0: the marginal covers of single-byte tokens (tiny on this random model) are what runs out
    # of context first; deferred, they would let the exponential marginal cover set keep growing
    decoder = ByteDecoder(meaning=meaning, temperature=temperature, max_new_bytes=200, tolerance=0)
    short = decoder.generate(short_lm if meaning == "canonical" else shorter_lm, "hello", seed=0)
    assert short.finish_reason == "length" and 0 < len(short.bytes) < 200
    assert short.counters["bytes"] == len(short.bytes)
    # the same draws as with a context that does not run out, up to where it ran out
    long = ByteDecoder(meaning=meaning, temperature=temperature, max_new_bytes=len(short.bytes), tolerance=0)
    assert long.generate(long_lm, "hello", seed=0).bytes == short.bytes


@settings(max_examples=8, deadline=None)  # each generates up to 120 bytes at tolerance 0
@given(context=st.integers(6, 16), meaning=st.sampled_from(["canonical", "marginal"]),
       prompt=st.sampled_from(["a", "the", "x y"]))
def test_any_context_gives_a_prefix_or_the_prompt_error(long_lm, context, meaning, prompt):
    lm = tiny_lm(context)
    decoder = ByteDecoder(meaning=meaning, max_new_bytes=120, tolerance=0)
    try:
        gen = decoder.generate(lm, prompt, seed=0)
    except ContextLengthError:  # only when the prompt itself does not fit
        ids = list(lm.start_ids) + list(lm.tokenizer.encode(prompt).ids)
        assert len(ids) >= context - 1
        return
    assert gen.finish_reason in ("length", "stop")
    reference = ByteDecoder(meaning=meaning, max_new_bytes=len(gen.bytes) + 1, tolerance=0)
    assert reference.generate(long_lm, prompt, seed=0).bytes.startswith(gen.bytes)


def test_a_prompt_longer_than_the_context_is_still_an_error(short_lm):
    with pytest.raises(ContextLengthError, match="context length 32"):
        ByteDecoder().generate(short_lm, "word " * 40)


def test_an_ensemble_stops_at_its_members_context(short_lm, long_lm):
    mix = ByteEnsemble([ByteProbLM(short_lm), ByteProbLM(long_lm)])
    out, finish = generate_bytes(mix, b"hello", 300)
    assert finish == "length" and 0 < len(out) < 300


# -- item 16: cover sets and batched forwards are bounded -----------------------------

def test_cover_set_errors_are_resource_limit_errors():
    assert issubclass(CoverSetTooLargeError, ResourceLimitError)
    assert (MAX_COVERS, MAX_EXACT_COVERS) == (ByteDecoder().max_covers, ByteDecoder().max_exact_covers)


@pytest.mark.parametrize(("meaning", "bounds"), [("marginal", {"max_exact_covers": 8}),
                                                 ("marginal", {"max_covers": 100}),
                                                 ("canonical", {"max_covers": 10})])
def test_a_cover_set_past_its_bound_is_refused_before_the_forward(long_lm, meaning, bounds):
    blm = ByteProbLM(long_lm, meaning=meaning, tolerance=0, **bounds)
    state = blm.start(b"")
    for read, b in enumerate(TEXT):  # noqa: B007 - read after the loop
        calls = long_lm.counters["forward_calls"]
        try:
            state = blm.advance(state, b)
        except CoverSetTooLargeError as exc:
            (name, bound), = bounds.items()
            assert f"{name}={bound:,}" in exc.message and exc.component == f"byte LM '{blm.name}'"
            assert long_lm.counters["forward_calls"] == calls  # nothing was run for it
            break
    else:
        pytest.fail(f"{bounds} was never reached over {len(TEXT)} bytes")
    assert read > 0


@settings(max_examples=20, deadline=None)
@given(text=st.text(alphabet="ab th", min_size=3, max_size=10), max_covers=st.integers(1, 60),
       max_exact=st.integers(1, 6), meaning=st.sampled_from(["canonical", "marginal"]))
def test_the_bounds_change_nothing_but_raise_exactly_past_them(long_lm, text, max_covers, max_exact,
                                                               meaning):
    """Within the bounds the distribution is the unbounded one; the error comes exactly at the
    first byte whose cover set (measured without bounds) is past one of them."""
    free = ByteProbLM(long_lm, meaning=meaning, tolerance=0)
    bounded = ByteProbLM(long_lm, meaning=meaning, max_covers=max_covers, max_exact_covers=max_exact,
                         tolerance=0)
    data = text.encode()
    state, ref = bounded.start(b""), free.start(b"")
    for b in data:
        if float(ref.logprobs[b]) == -math.inf:
            return
        ref = free.advance(ref, b)
        over = len(ref.data) > max_covers or len(ref.data.exact) > max_exact
        try:
            state = bounded.advance(state, b)
        except CoverSetTooLargeError:
            assert over
            return
        assert not over
        assert torch.allclose(state.logprobs.exp(), ref.logprobs.exp(), atol=1e-12)


def test_the_decoder_takes_the_bounds(installed_registry, long_lm):
    for bad in ({"max_covers": 0}, {"max_exact_covers": -1}, {"max_covers": 2.5}, {"max_exact_covers": True}):
        with pytest.raises(ConfigError, match=f"parameter '{next(iter(bad))}'"):
            installed_registry.build("decoder", {"type": "byteprob", **bad})
    decoder = installed_registry.build("decoder", {"type": "byteprob", "meaning": "marginal",
                                                   "max_exact_covers": 4, "tolerance": 0})
    with pytest.raises(ResourceLimitError, match="max_exact_covers=4"):
        decoder.generate(long_lm, "the the the the the the", max_new_tokens=2)
    with pytest.raises(InputError, match="max_covers"):
        ByteProbLM(long_lm, max_covers=0)


def test_batched_forwards_are_split_without_changing_the_result(long_lm, monkeypatch):
    """Many covers ending on one byte are expanded by extend_batch in chunks whose logits (and
    copies of the shared past) stay under BATCH_LOGITS floats, and each kept row owns only its
    own vocabulary's worth of memory."""
    whole = ByteProbLM(long_lm, meaning="marginal", tolerance=0).start(TEXT[:20])
    sizes: list[int] = []
    batch = long_lm.extend_batch

    def spy(state, conts):
        sizes.append(len(conts))
        return batch(state, conts)

    monkeypatch.setattr(long_lm, "extend_batch", spy)
    monkeypatch.setattr(cover_set_module, "BATCH_LOGITS", 3 * long_lm.vocab_size)
    split = ByteProbLM(long_lm, meaning="marginal", tolerance=0).start(TEXT[:20])
    assert sizes and max(sizes) <= 3
    assert torch.allclose(whole.logprobs.exp(), split.logprobs.exp(), atol=1e-12)
    for node in split.data.exact:
        assert node.row.untyped_storage().nbytes() == long_lm.vocab_size * 8
