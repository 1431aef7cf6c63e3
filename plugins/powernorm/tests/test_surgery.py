"""Norm surgery through the providers: contract suites, the padding mask through whole
models, registry and pipeline TOML, and the errors a user sees."""

import copy

import pytest
import torch
from tokensmith_powernorm.batch_norm import MaskedBatchNorm
from tokensmith_powernorm.power_norm import PowerNorm
from tokensmith_powernorm.surgery import BatchNormProvider, PowerNormProvider

from tokensmith import ConfigError, InputError, PipelineSpec, SurgeryError
from tokensmith.testing import NormalizationContract


class TestContractTinyLlama(NormalizationContract):
    @pytest.fixture
    def model(self, tiny_llama):
        return tiny_llama[0]


class TestContractTinyGPT2(NormalizationContract):
    @pytest.fixture
    def model(self, tiny_gpt2):
        return tiny_gpt2[0]


def test_no_norm_layers_error_lists_what_was_found(normalization_provider):
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GroupNorm(1, 4))
    with pytest.raises(SurgeryError) as info:
        normalization_provider.replace(model)
    message = str(info.value)
    assert "1 (GroupNorm)" in message and normalization_provider.name in message


def test_second_surgery_names_the_replaced_layers(tiny_llama):
    model, _ = PowerNormProvider().replace(tiny_llama[0])
    with pytest.raises(SurgeryError, match="model.norm \\(PowerNorm\\)"):
        PowerNormProvider().replace(model)


def test_replacement_copies_gains_and_matches_device_dtype(tiny_gpt2):
    model = tiny_gpt2[0].double()
    with torch.no_grad():
        model.transformer.ln_f.weight.uniform_(0.5, 1.5)
    gains = model.transformer.ln_f.weight.clone()
    model, report = PowerNormProvider().replace(model, inplace=False)
    assert len(report) == 5 and isinstance(model.transformer.ln_f, PowerNorm)
    assert model.transformer.ln_f.running_phi.dtype == torch.float64
    torch.testing.assert_close(model.transformer.ln_f.weight, gains)


@pytest.mark.parametrize("which", ["tiny_llama", "tiny_gpt2"])
def test_attention_mask_reaches_every_norm_through_the_model(normalization_provider, which, request):
    """Right-padded batch: whatever the pad ids, the statistics of every replaced layer are
    those of the real tokens; without the mask they differ."""
    model, _ = normalization_provider.replace(request.getfixturevalue(which)[0])
    model.train()
    ids = torch.randint(5, 300, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[0, 6:] = 0

    def statistics(input_ids, **kw):
        trained = copy.deepcopy(model)
        torch.manual_seed(0)  # GPT-2's dropout draws the same masks in every call
        trained(input_ids=input_ids, **kw)
        return torch.cat([b.flatten() for name, b in trained.named_buffers()
                          if name.endswith(("running_phi", "running_mean", "running_var"))])

    other_pads = ids.clone()
    other_pads[0, 6:] = torch.randint(5, 300, (3,))
    with_mask = statistics(ids, attention_mask=mask)
    torch.testing.assert_close(with_mask, statistics(other_pads, attention_mask=mask))
    assert not torch.allclose(with_mask, statistics(other_pads))
    assert not torch.allclose(with_mask, statistics(ids))


def test_positional_attention_mask_is_found(tiny_llama):
    model, _ = PowerNormProvider().replace(tiny_llama[0])
    model.train()
    ids = torch.randint(5, 300, (2, 6))
    with pytest.raises(InputError, match="every token"):
        model(ids, torch.zeros(2, 6, dtype=torch.long))


def test_training_with_a_cache_shaped_mask_is_an_input_error(tiny_gpt2):
    model, _ = PowerNormProvider().replace(tiny_gpt2[0])
    model.train()
    with pytest.raises(InputError, match="does not match hidden states"):
        model(input_ids=torch.randint(5, 300, (1, 4)), attention_mask=torch.ones(1, 7, dtype=torch.long))


def test_mask_is_released_after_each_call_even_on_error(tiny_gpt2):
    model, _ = PowerNormProvider().replace(tiny_gpt2[0])
    holder = model.transformer.ln_f.padding_mask
    assert holder is model.transformer.h[0].ln_1.padding_mask
    model.train()
    with pytest.raises(InputError):
        model(input_ids=torch.randint(5, 300, (1, 4)), attention_mask=torch.ones(1, 7, dtype=torch.long))
    assert holder.current is None
    model(input_ids=torch.randint(5, 300, (1, 4)), attention_mask=torch.ones(1, 4, dtype=torch.long))
    assert holder.current is None


def test_components_are_registered_with_their_parameters(plugin_registry):
    powernorm = plugin_registry.parameters(plugin_registry.get("normalization", "powernorm"))
    assert powernorm.names() == ["alpha_fwd", "alpha_bkw", "warmup_iters", "eps", "affine", "prescale",
                                 "group_num", "copy_affine"]
    assert not powernorm.wants_context
    batchnorm = plugin_registry.parameters(plugin_registry.get("normalization", "batchnorm"))
    assert batchnorm.names() == ["momentum", "eps", "affine", "copy_affine"]
    assert plugin_registry.get("demo", "powernorm")


@pytest.mark.parametrize(("name", "params"), [
    ("powernorm", {"alpha_fwd": 1.5}), ("powernorm", {"warmup_iters": -1}), ("powernorm", {"eps": 0}),
    ("powernorm", {"group_num": 0}), ("powernorm", {"affine": "yes"}), ("powernorm", {"alpha_bkw": "0.9"}),
    ("powernorm", {"warmup_iters": 2.0}), ("powernorm", {"prescale": 1}),
    ("powernorm", {"eps": float("nan")}), ("batchnorm", {"momentum": -0.1}),
    ("batchnorm", {"copy_affine": "false"}), ("batchnorm", {"eps": "1e-5"}),
])
def test_bad_parameters_are_config_errors_naming_the_parameter(installed_registry, name, params):
    (key,) = params
    with pytest.raises(ConfigError, match=f"parameter '{key}'") as info:
        installed_registry.build("normalization", {"type": name, **params})
    assert info.value.plugin == "tokensmith-powernorm" and info.value.component == f"normalization '{name}'"


def test_unknown_parameter_is_a_config_error_with_a_suggestion(installed_registry):
    with pytest.raises(ConfigError, match="unknown parameter 'warmup'.*did you mean 'warmup_iters'"):
        installed_registry.build("normalization", {"type": "powernorm", "warmup": 10})


@pytest.mark.parametrize(("factory", "params"), [
    (PowerNormProvider, {"alpha_bkw": 2.0}), (PowerNormProvider, {"group_num": 0}),
    (PowerNormProvider, {"affine": "yes"}), (BatchNormProvider, {"momentum": "0.1"}),
])
def test_bad_parameters_are_refused_in_python_too(factory, params):
    with pytest.raises((TypeError, ValueError), match=next(iter(params))):
        factory(**params)


def test_registry_builds_the_provider_with_its_parameters(installed_registry):
    provider = installed_registry.build("normalization", {"type": "powernorm", "warmup_iters": 3, "eps": 1})
    assert provider == PowerNormProvider(warmup_iters=3, eps=1.0)
    assert isinstance(provider.eps, float)


def test_group_num_that_does_not_divide_the_width_is_a_config_error(tiny_llama):
    with pytest.raises(ConfigError, match="group_num=3 .* of model.layers.0.input_layernorm") as info:
        PowerNormProvider(group_num=3).replace(tiny_llama[0])
    assert info.value.hint and "hint" not in info.value.message


def test_group_num_error_in_a_pipeline_names_the_plugin(installed_registry):
    spec = PipelineSpec.from_config({"runtime": {"device": "cpu", "dtype": "float32"},
                                     "model": {"source": "tiny-llama"},
                                     "normalization": {"type": "powernorm", "group_num": 3}})
    with pytest.raises(ConfigError, match="group_num=3") as info:
        installed_registry.build_pipeline(spec)
    assert info.value.plugin == "tokensmith-powernorm"


def test_pipeline_toml_selects_the_surgery(make_registry, tmp_path):
    import tokensmith_powernorm.plugin as plugin

    path = tmp_path / "pipeline.toml"
    path.write_text('[runtime]\ndevice = "cpu"\ndtype = "float32"\n\n[model]\nsource = "tiny-gpt2"\n\n'
                    '[normalization]\ntype = "batchnorm"\nmomentum = 0.2\n')
    pipeline = make_registry(plugin).build_pipeline(PipelineSpec.from_toml(path))
    assert isinstance(pipeline.model.transformer.ln_f, MaskedBatchNorm)
    assert pipeline.model.transformer.ln_f.momentum == 0.2
    assert len(pipeline.reports[0]) == 5
