import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokensmith_baselines.decoding import (
    GreedyDecoder,
    SamplingDecoder,
    TokenHealer,
)

from tokensmith import ConfigError, FunctionConstraint, IncompatibleComponentsError, filtered_probs
from tokensmith.testing import DecoderContract


class TestGreedy(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return GreedyDecoder()


class TestGreedyHealing(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return GreedyDecoder(token_healing=True)


class TestSampling(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return SamplingDecoder(temperature=0.8, top_k=50, top_p=0.9)


def test_greedy_is_the_argmax_chain(tiny_lm):
    gen = GreedyDecoder().generate(tiny_lm, "The quick", max_new_tokens=6)
    ids = list(tiny_lm.start_ids) + list(tiny_lm.tokenizer.encode("The quick").ids)
    for token in gen.ids:
        rows = tiny_lm.logprobs_batch([ids])[0]
        assert int(rows[-1].argmax()) == token
        ids.append(token)
    assert gen.bytes == tiny_lm.tokenizer.decode_bytes(gen.ids)


def test_decoders_refuse_constraints(tiny_lm):
    with pytest.raises(IncompatibleComponentsError, match="cannot honour a constraint"):
        GreedyDecoder().generate(tiny_lm, "a", constraint=FunctionConstraint(lambda b: True))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_healer_allows_exactly_the_fitting_tokens(tiny_tokenizer, data):
    table = tiny_tokenizer.byte_table
    token = data.draw(st.sampled_from([i for i, b in enumerate(table) if b]))
    cut = data.draw(st.integers(1, len(table[token])))
    remaining = table[token][:cut]
    got = set(TokenHealer(tiny_tokenizer).allowed(remaining))
    brute = {i for i, b in enumerate(table) if b and i not in tiny_tokenizer.special_ids
             and (b.startswith(remaining) or (remaining.startswith(b) and b != remaining))}
    assert got == brute and token in got


def test_healing_never_removes_special_tokens(tiny_tokenizer):
    ids = tiny_tokenizer.encode("abc<|endoftext|>", allow_special=True).ids
    kept, removed = TokenHealer.split_prompt(tiny_tokenizer, list(ids), 1)
    assert kept == list(ids) and removed == b""


def test_healed_generation_reproduces_the_prompt_bytes(tiny_lm):
    gen = GreedyDecoder(token_healing=True).generate(tiny_lm, "The capital of Fra", max_new_tokens=5)
    healed = gen.counters["healed_bytes"]
    assert healed > 0
    full = tiny_lm.tokenizer.decode_bytes(gen.ids)
    assert full.startswith(b"Fra"[-healed:]) and gen.bytes == full[healed:]


def test_sampling_frequencies_match_the_distribution(tiny_lm):
    dec = SamplingDecoder(temperature=1.0, top_k=4)
    ids = list(tiny_lm.start_ids) + list(tiny_lm.tokenizer.encode("The").ids)
    probs = filtered_probs(tiny_lm.logprobs_batch([ids])[0][-1], 1.0, 4, 1.0)
    support = torch.nonzero(probs).flatten().tolist()
    n = 400
    counts = dict.fromkeys(support, 0)
    state = tiny_lm.start(ids)
    gen = torch.Generator().manual_seed(0)
    for _ in range(n):
        counts[dec.pick(state.logprobs, gen)] += 1
    chi2 = sum((counts[i] - n * float(probs[i])) ** 2 / (n * float(probs[i])) for i in support)
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001


@pytest.mark.parametrize("params,word", [
    ({"temperature": 0}, "temperature must be > 0"), ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"top_k": -1}, "top_k must be >= 0"), ({"temperature": "hot"}, "'temperature' must be float, got str"),
    ({"top_k": 2.5}, "'top_k' must be int, got float"),
    ({"token_healing": "false"}, "'token_healing' must be bool"),
    ({"heal_tokens": 0}, "heal_tokens must be >= 1"), ({"temprature": 1.0}, "did you mean 'temperature'"),
])
def test_bad_sampling_parameters(installed_registry, params, word):
    with pytest.raises(ConfigError, match=word) as info:
        installed_registry.build("decoder", {"type": "sample", **params})
    assert "decoder 'sample' from tokensmith-baselines" in str(info.value)


def test_parameters_are_declared_once_on_the_class(installed_registry):
    sig = installed_registry.parameters(installed_registry.get("decoder", "sample"))
    assert [(p.name, p.default) for p in sig.parameters] == [
        ("token_healing", False), ("heal_tokens", 1), ("temperature", 1.0), ("top_k", 0), ("top_p", 1.0)]
    built = installed_registry.build("decoder", {"type": "sample", "temperature": 0.5, "top_k": 3})
    assert built == SamplingDecoder(temperature=0.5, top_k=3)


def test_no_seed_gives_different_samples_a_seed_the_same(tiny_lm):
    dec = SamplingDecoder(temperature=2.0)
    assert dec.generate(tiny_lm, "The", max_new_tokens=8, seed=4).ids == \
        dec.generate(tiny_lm, "The", max_new_tokens=8, seed=4).ids
    draws = {dec.generate(tiny_lm, "The", max_new_tokens=8).ids for _ in range(3)}
    assert len(draws) > 1


@pytest.mark.smollm2
def test_healing_fixes_prompts_cut_mid_word_on_smollm2(smollm2_lm):
    naive = GreedyDecoder().generate(smollm2_lm, "The capital of Fra", max_new_tokens=4)
    healed = GreedyDecoder(token_healing=True).generate(smollm2_lm, "The capital of Fra", max_new_tokens=4)
    assert healed.text.startswith("nce") and not naive.text.startswith("nce")
    first = smollm2_lm.tokenizer.token_bytes(healed.ids[0])
    assert first.startswith(b"Fra") or b"Fra".endswith(first) or first.startswith(b" Fra")
    assert not math.isnan(healed.log_weight)
