"""Invariant 2: SRMSNorm has no parameters and its output has RMS 1; norm surgery with it
follows the normalization contract on Llama (RMSNorm) and GPT-2 (LayerNorm)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_transnormer.srmsnorm import SRMSNorm, SRMSNormalization

from tokensmith import ConfigError, SurgeryError
from tokensmith.testing import NormalizationContract, TwoDimNormBlock, gemma_style_norms

_vectors = st.integers(1, 64).flatmap(lambda d: st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=d, max_size=d)).filter(
    lambda xs: sum(x * x for x in xs) / len(xs) > 1e-6)


@settings(max_examples=100, deadline=None)
@given(xs=_vectors)
def test_output_rms_is_one(xs):
    x = torch.tensor(xs, dtype=torch.float64)
    y = SRMSNorm(len(xs), eps=0.0)(x)
    assert float(y.pow(2).mean().sqrt()) == pytest.approx(1.0, abs=1e-12)
    # the paper's form x / (‖x‖₂/√d)
    assert torch.allclose(y, x / (x.norm() / len(xs) ** 0.5), rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(xs=_vectors, scale=st.floats(1e-2, 1e2))
def test_scale_invariant_and_eps_bounded(xs, scale):
    x = torch.tensor(xs, dtype=torch.float64)
    # exactly scale invariant without eps; eps (inside the root) only bounds the RMS below 1
    exact = SRMSNorm(len(xs), eps=0.0)
    assert torch.allclose(exact(scale * x), exact(x), rtol=1e-12)
    norm = SRMSNorm(len(xs), eps=1e-6)
    ms = float(x.pow(2).mean())
    assert float(norm(x).pow(2).mean().sqrt()) == pytest.approx((ms / (ms + 1e-6)) ** 0.5, rel=1e-12)


def test_no_parameters_and_batched_over_last_dim():
    norm = SRMSNorm(16)
    assert list(norm.parameters()) == [] and list(norm.buffers()) == []
    y = norm(torch.randn(3, 5, 16, dtype=torch.float64) * 7)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(3, 5, dtype=torch.float64), atol=1e-6)


def test_zero_vector_stays_zero():
    assert torch.equal(SRMSNorm(4)(torch.zeros(4)), torch.zeros(4))


class TestSRMSNormOnLlama(NormalizationContract):
    @pytest.fixture
    def normalization_provider(self):
        return SRMSNormalization()

    @pytest.fixture
    def model(self, tiny_llama):
        return tiny_llama[0]


class TestSRMSNormOnGPT2(NormalizationContract):
    @pytest.fixture
    def normalization_provider(self):
        return SRMSNormalization()

    @pytest.fixture
    def model(self, tiny_gpt2):
        return tiny_gpt2[0]


def test_every_norm_replaced_and_report_says_what_was_dropped(tiny_llama, tiny_gpt2):
    for model, dropped in ((tiny_llama[0], "gain dropped"), (tiny_gpt2[0], "bias dropped")):
        new, report = SRMSNormalization().replace(model, inplace=False)
        assert new is not model
        assert len(report.changes) == sum(1 for m in model.modules() if "Norm" in type(m).__name__)
        assert all(c.after == "SRMSNorm" and dropped in c.detail for c in report.changes)
        assert not any("Norm" in type(m).__name__ and type(m).__name__ != "SRMSNorm" for m in new.modules())
        assert all(type(m).__name__ != "SRMSNorm" for m in model.modules())


def test_replaced_norm_computes_srmsnorm_with_the_layer_eps(tiny_llama):
    model = tiny_llama[0]
    old = model.model.norm
    SRMSNormalization().replace(model)
    new = model.model.norm
    assert new.eps == old.variance_epsilon
    x = torch.randn(2, 3, new.dim)
    assert torch.allclose(new(x), x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + new.eps))


def test_kinds_selects_layers(tiny_llama, tiny_gpt2):
    with pytest.raises(SurgeryError, match="kinds"):
        SRMSNormalization(kinds=("layernorm",)).replace(tiny_llama[0])
    with pytest.raises(SurgeryError, match="rmsnorm"):
        SRMSNormalization(kinds=("rmsnorm",)).replace(tiny_gpt2[0])
    _, report = SRMSNormalization(kinds=("rmsnorm",), eps=1e-3).replace(tiny_llama[0])
    assert report.changes and all(tiny_llama[0].get_submodule(c.path).eps == 1e-3 for c in report.changes)


def test_registered_and_configurable_from_a_pipeline_table(make_registry, tiny_llama, runtime):
    from tokensmith_transnormer import plugin

    from tokensmith import BuildContext, PipelineSpec

    spec = PipelineSpec.from_config({"model": {"source": "tiny-llama"},
                                     "normalization": {"type": "srmsnorm", "kinds": ["rmsnorm"]}})
    registry = make_registry(plugin)
    provider = registry.build("normalization", spec.normalization, BuildContext(runtime=runtime))
    assert provider == SRMSNormalization(kinds=("rmsnorm",))
    _, report = provider.replace(tiny_llama[0])
    assert len(report.changes) == 5


@pytest.mark.parametrize("bad, name", [({"kinds": ["batchnorm"]}, "kinds"), ({"kinds": []}, "kinds"),
                                       ({"kinds": "rmsnorm"}, "kinds"), ({"eps": -1.0}, "eps"),
                                       ({"eps": "small"}, "eps"), ({"epsilon": 1e-5}, "eps")])
def test_bad_parameters_are_config_errors_naming_them(make_registry, runtime, bad, name):
    from tokensmith_transnormer import plugin

    from tokensmith import BuildContext

    with pytest.raises(ConfigError, match=name) as info:
        make_registry(plugin).build("normalization", {"type": "srmsnorm", **bad},
                                    BuildContext(runtime=runtime))
    assert "srmsnorm" in str(info.value)


def test_direct_construction_validates_too():
    for bad in ({"kinds": ("batchnorm",)}, {"kinds": ()}, {"eps": -1.0}):
        with pytest.raises(ValueError):
            SRMSNormalization(**bad)


def test_norm_over_two_dimensions_is_refused_and_nothing_is_changed():
    """Issue 8, item 20: SRMSNorm(8) would normalize each row of the (4, 8) block instead."""
    model = TwoDimNormBlock()
    with pytest.raises(SurgeryError, match=r"norm \(LayerNorm\) normalizes over the last 2 dimensions "
                                           r"\(4, 8\)") as info:
        SRMSNormalization().replace(model, inplace=True)
    assert info.value.component == "normalization 'srmsnorm'" and "select(layers)" in info.value.hint
    assert type(model.ln) is torch.nn.LayerNorm and type(model.norm) is torch.nn.LayerNorm




@pytest.mark.parametrize("norm", gemma_style_norms(), ids=lambda n: type(n).__name__)
def test_gemma_style_norm_reports_its_gain_as_one_plus_weight(norm):
    """A zero weight is the gain 1 in the (1 + w) convention: nothing of the gain is dropped."""
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), norm)
    _, report = SRMSNormalization().replace(model, inplace=False)
    assert "gain = 1 + weight" in report.changes[0].detail
    assert "mean |g - 1| = 0)" in report.changes[0].detail
    with torch.no_grad():
        norm.weight.fill_(0.5)
    _, report = SRMSNormalization().replace(model, inplace=False)
    assert "mean |g - 1| = 0.5)" in report.changes[0].detail
