"""tokensmith-baselines' decoders run on the TransNormer LanguageModel (skipped when the
baselines plugin is not installed, e.g. in the isolation environment)."""

from __future__ import annotations

import pytest

pytest.importorskip("tokensmith_baselines")

from tokensmith_baselines import GreedyDecoder, SamplingDecoder  # noqa: E402

from tokensmith.testing import DecoderContract  # noqa: E402


class TestGreedyOnTransNormer(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return GreedyDecoder()

    @pytest.fixture
    def tiny_lm(self, tnl_lm):
        return tnl_lm


class TestSamplingOnTransNormer(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return SamplingDecoder(temperature=0.8)

    @pytest.fixture
    def tiny_lm(self, tnl_lm):
        return tnl_lm


def test_greedy_equals_argmax_over_uncached_scoring(tnl_lm):
    gen = GreedyDecoder().generate(tnl_lm, "def f", max_new_tokens=12)
    ids = list(tnl_lm.start_ids) + list(tnl_lm.tokenizer.encode("def f").ids)
    expected = []
    for _ in range(len(gen.ids)):
        token = int(tnl_lm.logprobs_batch([ids])[0][-1].argmax())
        expected.append(token)
        ids.append(token)
    assert list(gen.ids) == expected and gen.counters["lm_calls"] == len(gen.ids)


def test_srmsnorm_selected_from_a_pipeline_toml(tmp_path, installed_registry):
    from tokensmith import PipelineSpec

    path = tmp_path / "pipeline.toml"
    path.write_text('[runtime]\ndevice = "cpu"\n\n[model]\nsource = "tiny-llama"\n\n'
                    '[normalization]\ntype = "srmsnorm"\nkinds = ["rmsnorm"]\n\n[decoder]\ntype = "greedy"\n')
    pipeline = installed_registry.build_pipeline(PipelineSpec.from_toml(path))
    report = pipeline.reports[0]
    assert report.component == "normalization 'srmsnorm'" and len(report.changes) == 5
    assert all(type(pipeline.model.get_submodule(c.path)).__name__ == "SRMSNorm" for c in report.changes)
    assert len(pipeline.generate("def f", max_new_tokens=3).ids) <= 3
