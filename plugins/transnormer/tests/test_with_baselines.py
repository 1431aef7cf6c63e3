"""tokensmith-baselines' decoders, built by name, run on the TransNormer LanguageModel
(skipped when the baselines plugin is not installed, e.g. in the isolation environment)."""

from __future__ import annotations

import pytest

from tokensmith import ConfigError, PipelineSpec, Registry, UnknownComponentError
from tokensmith.testing import DecoderContract


def _decoder(ref):
    try:
        return Registry.from_environment().build("decoder", ref)
    except UnknownComponentError:
        pytest.skip("tokensmith-baselines is not installed")


class TestGreedyOnTransNormer(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return _decoder("greedy")

    @pytest.fixture
    def tiny_lm(self, tnl_lm):
        return tnl_lm


class TestSamplingOnTransNormer(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return _decoder({"type": "sample", "temperature": 0.8})

    @pytest.fixture
    def tiny_lm(self, tnl_lm):
        return tnl_lm


def test_greedy_equals_argmax_over_uncached_scoring(tnl_lm):
    gen = _decoder("greedy").generate(tnl_lm, "def f", max_new_tokens=12)
    ids = list(tnl_lm.start_ids) + list(tnl_lm.tokenizer.encode("def f").ids)
    expected = []
    for _ in range(len(gen.ids)):
        token = int(tnl_lm.logprobs_batch([ids])[0][-1].argmax())
        expected.append(token)
        ids.append(token)
    assert list(gen.ids) == expected and gen.counters["lm_calls"] == len(gen.ids)


def test_sampling_seed_none_uses_the_lm_runtime(tnl_lm):
    """The LM carries its runtime, so unseeded calls advance its generator (different
    samples) while a seed reproduces one."""
    decoder = _decoder({"type": "sample", "temperature": 2.0})
    unseeded = {decoder.generate(tnl_lm, "The", max_new_tokens=8).ids for _ in range(4)}
    assert len(unseeded) > 1
    seeded = [decoder.generate(tnl_lm, "The", max_new_tokens=8, seed=5).ids for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_bad_decoder_parameter_type_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="temperature"):
        _decoder({"type": "sample", "temperature": "hot"})


def test_srmsnorm_selected_from_a_pipeline_toml(tmp_path, installed_registry):
    _decoder("greedy")
    path = tmp_path / "pipeline.toml"
    path.write_text('[runtime]\ndevice = "cpu"\n\n[model]\nsource = "tiny-llama"\n\n'
                    '[normalization]\ntype = "srmsnorm"\nkinds = ["rmsnorm"]\n\n[decoder]\ntype = "greedy"\n')
    pipeline = installed_registry.build_pipeline(PipelineSpec.from_toml(path))
    report = pipeline.reports[0]
    assert report.component == "normalization 'srmsnorm'" and len(report.changes) == 5
    assert all(type(pipeline.model.get_submodule(c.path)).__name__ == "SRMSNorm" for c in report.changes)
    assert len(pipeline.generate("def f", max_new_tokens=3).ids) <= 3
