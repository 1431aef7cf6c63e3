"""Registration, build-time rejection, the decoder contract, sampling, ensembles."""

from __future__ import annotations

import math

import attrs
import pytest
import torch
from tokensmith_byteprob import ByteProbLM
from tokensmith_byteprob.decoding import ByteDecoder, ByteDecoderConfig, generate_bytes, pick_byte
from tokensmith_byteprob.ensemble import ByteEnsemble
from tokensmith_byteprob.toy import MarkovLM, ToyTokenizer

from tokensmith import BuildContext, ByteViewError, ConfigError, IncompatibleComponentsError, Runtime
from tokensmith.testing import DecoderContract


class LossyTokenizer(ToyTokenizer):
    """A tokenizer whose bytes do not spell the text (as WordPiece's normalization does)."""

    lossless = False


def test_components_are_registered(make_registry):
    import tokensmith_byteprob.plugin as plugin

    reg = make_registry(plugin)
    decoder = reg.get("decoder", "byteprob")
    assert "byte_view" in decoder.requires and decoder.config_class is ByteDecoderConfig
    assert reg.get("demo", "byteprob").name == "byteprob"


def test_bad_parameters_are_config_errors(make_registry):
    import tokensmith_byteprob.plugin as plugin

    reg = make_registry(plugin)
    record = reg.get("decoder", "byteprob")
    for bad in ({"meaning": "approximate"}, {"top_p": 0.0}, {"temperature": -1}, {"max_new_bytes": 0}):
        with pytest.raises(ConfigError):
            reg.make_config(record, bad)


def test_factory_rejects_a_lossy_tokenizer():
    ctx = BuildContext(runtime=Runtime(device="cpu"), tokenizer=LossyTokenizer())
    with pytest.raises(IncompatibleComponentsError, match="not lossless") as err:
        ByteDecoder.from_config(ByteDecoderConfig(), ctx)
    assert err.value.component == "decoder 'byteprob'" and err.value.plugin == "tokensmith-byteprob"
    with pytest.raises(ByteViewError):
        ByteProbLM(MarkovLM(LossyTokenizer()))


def test_factory_rejects_a_tokenizer_without_byte_view():
    @attrs.define
    class NoView(ToyTokenizer):
        @property
        def has_byte_view(self) -> bool:
            return False

    ctx = BuildContext(runtime=Runtime(device="cpu"), tokenizer=NoView())
    with pytest.raises(IncompatibleComponentsError, match="no byte view"):
        ByteDecoder.from_config(ByteDecoderConfig(), ctx)


class TestByteDecoderContract(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return ByteDecoder(ByteDecoderConfig(temperature=0.8, top_p=0.9, max_new_bytes=5))


def test_generation_counts_calls_and_bytes(tiny_lm):
    gen = ByteDecoder(ByteDecoderConfig(max_new_bytes=6)).generate(tiny_lm, "def fibon", seed=0)
    assert gen.counters["bytes"] == len(gen.bytes) <= 6 and gen.counters["lm_calls"] >= 1
    assert gen.log_weight == 0.0 and gen.finish_reason in ("stop", "length")


def test_tiny_top_p_is_greedy():
    logprobs = torch.log_softmax(torch.randn(257, generator=torch.Generator().manual_seed(0)), 0)
    gen = torch.Generator().manual_seed(1)
    assert all(pick_byte(logprobs, 1.0, 1e-9, gen) == int(logprobs.argmax()) for _ in range(5))


def test_sampling_follows_the_byte_distribution(toy_lm):
    """Frequencies of the first sampled byte match P(b | prompt) (temperature 1, no top-p)."""
    blm = ByteProbLM(toy_lm)
    probs = torch.exp(blm.start(b"a").logprobs)
    gen = torch.Generator().manual_seed(0)
    draws = torch.tensor([pick_byte(blm.start(b"a").logprobs, 1.0, 1.0, gen) for _ in range(2000)])
    freq = torch.bincount(draws, minlength=257).double() / 2000
    assert float((freq - probs).abs().max()) < 0.05


def test_eos_stops_generation(toy_lm):
    out, finish = generate_bytes(ByteProbLM(toy_lm), b"", 10_000, temperature=1.0, seed=3)
    assert finish == "stop" and len(out) < 10_000


def test_ensemble_mixes_distributions(toy_lm, tiny_byte_level_lm):
    a, b = ByteProbLM(toy_lm), ByteProbLM(MarkovLM(ToyTokenizer(), seed=7), meaning="marginal")
    mix = ByteEnsemble([a, b], weights=[3, 1])
    state = mix.start(b"ab")
    want = 0.75 * torch.exp(a.start(b"ab").logprobs) + 0.25 * torch.exp(b.start(b"ab").logprobs)
    assert float((torch.exp(state.logprobs) - want).abs().max()) <= 1e-12
    state = mix.advance(state, ord(" "))
    want = 0.75 * torch.exp(a.start(b"ab ").logprobs) + 0.25 * torch.exp(b.start(b"ab ").logprobs)
    assert float((torch.exp(state.logprobs) - want).abs().max()) <= 1e-12


def test_ensemble_across_vocabularies(toy_lm, tiny_byte_level_lm):
    """A byte the toy vocabulary lacks keeps the other member alive; the toy drops out."""
    mix = ByteEnsemble([ByteProbLM(toy_lm), ByteProbLM(tiny_byte_level_lm)])
    state = mix.start(b"a")
    assert float(state.logprobs[ord("x")]) > -math.inf
    state = mix.advance(state, ord("x"))
    other = ByteProbLM(tiny_byte_level_lm).start(b"ax")
    assert torch.allclose(state.logprobs, other.logprobs, atol=1e-9)
