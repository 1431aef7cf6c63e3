"""Registration, build-time rejection, the decoder contract, sampling, ensembles."""

from __future__ import annotations

import math

import attrs
import pytest
import torch
from tokensmith_byteprob import ByteProbLM
from tokensmith_byteprob.decoding import ByteDecoder, generate_bytes, pick_byte
from tokensmith_byteprob.ensemble import ByteEnsemble
from tokensmith_byteprob.toy import MarkovLM, ToyTokenizer

from tokensmith import (
    BuildContext,
    ByteViewError,
    ConfigError,
    FunctionConstraint,
    IncompatibleComponentsError,
    Runtime,
)
from tokensmith.testing import DecoderContract


class LossyTokenizer(ToyTokenizer):
    """A tokenizer whose bytes do not spell the text (as WordPiece's normalization does)."""

    lossless = False


def test_components_are_registered(make_registry):
    import tokensmith_byteprob.plugin as plugin

    reg = make_registry(plugin)
    decoder = reg.get("decoder", "byteprob")
    assert "byte_view" in decoder.requires and "causal_lm" in decoder.requires
    assert reg.parameters(decoder).names() == ["meaning", "temperature", "top_p", "max_new_bytes",
                                               "max_covers", "max_exact_covers", "tolerance", "max_memory",
                                               "invalid_utf8", "specials", "prefetch"]
    assert reg.parameters(decoder).wants_context and not reg.accepts_constraint(decoder)
    assert reg.get("demo", "byteprob").name == "byteprob"


@pytest.mark.parametrize("bad", [{"meaning": "approximate"}, {"meaning": 1}, {"top_p": 0.0},
                                 {"tolerance": 1.0},
                                 {"tolerance": -1e-3}, {"invalid_utf8": "maybe"}, {"specials": "keep"},
                                 {"temperature": -1}, {"temperature": "hot"}, {"max_new_bytes": 0},
                                 {"max_new_bytes": True}, {"max_new_bytes": 2.5}])
def test_bad_parameters_are_config_errors(installed_registry, bad):
    (name,) = bad
    with pytest.raises(ConfigError, match=f"parameter '{name}'") as err:
        installed_registry.build("decoder", {"type": "byteprob", **bad})
    assert err.value.plugin == "tokensmith-byteprob"


def test_registry_builds_the_decoder_with_its_parameters(make_registry):
    import tokensmith_byteprob.plugin as plugin

    decoder = make_registry(plugin).build("decoder", {"type": "byteprob", "meaning": "marginal",
                                                      "temperature": 1, "max_new_bytes": 3})
    assert decoder == ByteDecoder(meaning="marginal", temperature=1.0, max_new_bytes=3)


def test_factory_rejects_a_lossy_tokenizer(installed_registry):
    ctx = BuildContext(runtime=Runtime(device="cpu"), tokenizer=LossyTokenizer())
    with pytest.raises(IncompatibleComponentsError, match="not lossless") as err:
        ByteDecoder(ctx=ctx)
    assert err.value.component == "decoder 'byteprob'"
    with pytest.raises(IncompatibleComponentsError, match="not lossless") as err:
        installed_registry.build("decoder", "byteprob", ctx)
    assert err.value.plugin == "tokensmith-byteprob"
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
        ByteDecoder(ctx=ctx)


class TestByteDecoderContract(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return ByteDecoder(temperature=0.8, top_p=0.9, max_new_bytes=5)


def test_generation_counts_calls_and_bytes(tiny_lm):
    gen = ByteDecoder(max_new_bytes=6).generate(tiny_lm, "def fibon", seed=0)
    assert gen.counters["bytes"] == len(gen.bytes) and 1 <= len(gen.bytes) <= 6
    assert gen.counters["lm_calls"] >= 1 and gen.ids == ()


def test_decoder_refuses_a_constraint(tiny_lm):
    with pytest.raises(IncompatibleComponentsError, match="cannot honour a constraint"):
        ByteDecoder().generate(tiny_lm, "a", constraint=FunctionConstraint(lambda b: True))


def test_same_seed_same_bytes_and_no_seed_draws_anew(tiny_lm):
    """The randomness rule: a seed replays, no seed advances the runtime's generator."""
    decoder = ByteDecoder(temperature=1.0, max_new_bytes=8)
    a, b = (decoder.generate(tiny_lm, "The quick", seed=5) for _ in range(2))
    assert a.bytes == b.bytes
    draws = {decoder.generate(tiny_lm, "The quick").bytes for _ in range(3)}
    assert len(draws) > 1


def test_byte_lm_follows_the_runtime_of_its_token_lm(tiny_lm, toy_lm):
    """ByteProbLM exposes the wrapped LM's runtime (so decoders over it, e.g. AWRS, draw from
    the runtime's generator without a seed) and counts the wrapped LM's forwards."""
    blm = ByteProbLM(tiny_lm)
    assert blm.runtime is tiny_lm.runtime and ByteProbLM(toy_lm).runtime is None
    before = tiny_lm.counters["forward_calls"]
    assert blm.counters["forward_calls"] == before
    blm.advance(blm.start(b"The"), ord(" "))
    assert blm.counters["forward_calls"] == tiny_lm.counters["forward_calls"] > before
    assert blm.counters["states"] == 2 and blm.counters["max_covers_seen"] >= 1
    assert "states" not in tiny_lm.counters


def test_tiny_top_p_is_greedy():
    logprobs = torch.log_softmax(torch.randn(257, generator=torch.Generator().manual_seed(0)), 0)
    gen = torch.Generator().manual_seed(1)
    assert all(pick_byte(logprobs, 1.0, 1e-9, gen) == int(logprobs.argmax()) for _ in range(5))


def test_sampling_follows_the_byte_distribution(toy_lm):
    """Frequencies of the first sampled byte match P(b | prompt) (temperature 1, no top-p)."""
    blm = ByteProbLM(toy_lm)
    probs = torch.exp(blm.start(b"a").logprobs)
    gen = torch.Generator().manual_seed(0)
    logprobs = blm.start(b"a").logprobs
    draws = torch.tensor([pick_byte(logprobs, 1.0, 1.0, gen) for _ in range(2000)])
    freq = torch.bincount(draws, minlength=257).double() / 2000
    assert float((freq - probs).abs().max()) < 0.05


def test_eos_stops_generation(toy_lm):
    gen = torch.Generator().manual_seed(3)
    out, finish = generate_bytes(ByteProbLM(toy_lm), b"", 10_000, temperature=1.0, generator=gen)
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


def test_ensemble_exposes_a_runtime_and_counts_each_token_lm_once(toy_lm, tiny_lm):
    mix = ByteEnsemble([ByteProbLM(toy_lm), ByteProbLM(tiny_lm), ByteProbLM(tiny_lm, meaning="marginal")])
    assert mix.runtime is tiny_lm.runtime
    lms = (toy_lm, tiny_lm)
    before, each = mix.counters["forward_calls"], [lm.counters["forward_calls"] for lm in lms]
    mix.start(b"ab")
    calls = sum(lm.counters["forward_calls"] - n for lm, n in zip(lms, each))
    assert mix.counters["forward_calls"] - before == calls > 0


@pytest.mark.parametrize("with_baselines", [False, True])
def test_demo_builds_greedy_by_name_and_prints_plain_text(make_registry, installed_registry, tiny_lm,
                                                          with_baselines):
    import io
    from types import SimpleNamespace

    import tokensmith_byteprob.plugin as plugin
    from tokensmith_byteprob.demo import CASES

    from tokensmith import Report

    reg = installed_registry if with_baselines else make_registry(plugin)
    if with_baselines and "greedy" not in {c.name for c in reg.components("decoder")}:
        pytest.skip("tokensmith-baselines is not installed")
    demo = reg.build("demo", "byteprob", BuildContext(runtime=Runtime(device="cpu"), lm=tiny_lm))
    out = io.StringIO()
    report = demo.run(SimpleNamespace(lm=tiny_lm), out)
    text = out.getvalue()
    assert "\033" not in text and ("not installed" in text) != with_baselines
    rows = {(r[0], r[2]): r for r in report.tables[0].rows}
    assert len(rows) == 3 * len(CASES)
    for prompt, _ in CASES:
        assert (rows[prompt, "token-level greedy"][3] is not None) == with_baselines
        assert (rows[prompt, "token healing"][3] is not None) == with_baselines
        exact = rows[prompt, "byte-exact greedy"]
        assert 0 <= exact[4] <= 1 and exact[3] and exact[5] > 0
    assert Report.from_json(report.to_json()) == report
