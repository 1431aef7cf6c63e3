"""Surgery: bit-identical before removal, every change reported, one copy at most, clear errors."""

from __future__ import annotations

import pytest
import torch
from tokensmith_ln_free import (
    DEFAULT_CALIBRATION_TEXTS,
    LNFreeNormalization,
    calibrate,
    export,
    fake_norms,
    freeze,
)
from torch import nn

from tokensmith import (
    BuildContext,
    ConfigError,
    PipelineSpec,
    Runtime,
    SurgeryError,
    ValidationError,
    find_norm_layers,
)
from tokensmith.testing import NormalizationContract


class TestContract(NormalizationContract):
    @pytest.fixture
    def normalization_provider(self, provider):
        return provider

    @pytest.fixture
    def model(self, tiny_model):
        return tiny_model[0]


def module_types(model):
    return {path: type(m).__name__ for path, m in model.named_modules()}


def test_live_surgery_is_bit_identical_to_the_original(tiny_model, sample_ids, make_provider):
    """'Before removal': fake norms installed in live mode, calibrated or not, none frozen."""
    model, tok = tiny_model
    reference = model(input_ids=sample_ids).logits
    new, report = make_provider(mode="live").replace(model, inplace=False)
    assert len(report) == len(find_norm_layers(model)[0])
    assert torch.equal(new(input_ids=sample_ids).logits, reference)
    calibrate(new, [sample_ids, sample_ids[:, :7]])
    assert torch.equal(new(input_ids=sample_ids).logits, reference)
    assert all(n.mode == "live" and n.average_updates.item() == 2 for n in fake_norms(new).values())


def test_padding_does_not_change_sigma_bar_through_the_model(tiny_model, sample_ids, make_provider):
    """The model's attention_mask reaches the fake norms: right padding leaves σ̄ unchanged."""
    model, _ = tiny_model
    plain, _ = make_provider(mode="live").replace(model, inplace=False)
    padded, _ = make_provider(mode="live").replace(model, inplace=False)
    pad = torch.full((1, 9), 3)
    assert calibrate(plain, [sample_ids]) == sample_ids.numel()
    batch = {"input_ids": torch.cat([sample_ids, pad], 1),
             "attention_mask": torch.cat([torch.ones_like(sample_ids), torch.zeros_like(pad)], 1)}
    assert calibrate(padded, [batch]) == sample_ids.numel()
    others = fake_norms(padded)
    for path, norm in fake_norms(plain).items():
        assert torch.allclose(others[path].average_std, norm.average_std, rtol=1e-5)
        assert torch.allclose(others[path].special_std, norm.special_std, rtol=1e-5)


def test_freezing_changes_the_model(tiny_model, sample_ids, make_provider):
    model, _ = tiny_model
    reference = model(input_ids=sample_ids).logits
    new, _ = make_provider(mode="fake").replace(model, inplace=False)
    assert not torch.allclose(new(input_ids=sample_ids).logits, reference, atol=1e-3)


def test_report_lists_every_module_changed(tiny_model, make_provider):
    model, _ = tiny_model
    before = module_types(model)
    final = "transformer.ln_f" if "GPT2" in type(model).__name__ else "model.norm"
    for mode in ("live", "fake", "removed"):
        new, report = make_provider(mode=mode, layers=["*.0.*", final]).replace(model, inplace=False)
        assert len(report) == 3
        after = module_types(new)
        changed = {p for p in before if p in after and before[p] != after[p]}
        assert changed == {c.path for c in report.changes}
        for change in report.changes:
            assert (change.before, change.after) == (before[change.path], after[change.path])
            assert mode in change.detail
        assert {c.after for c in report.changes} == {"FixedLinearMap" if mode == "removed" else "FakeNorm"}


def test_removed_mode_leaves_no_norm_layers(tiny_model, sample_ids, make_provider):
    model, _ = tiny_model
    fake, _ = make_provider(mode="fake", special_first=False, special_eot=False).replace(model, inplace=False)
    removed, report = make_provider(mode="removed").replace(model, inplace=False)
    assert find_norm_layers(removed) == ([], [])
    assert "ln_free_positions" not in removed.__dict__ and not removed._forward_pre_hooks
    assert torch.allclose(removed(input_ids=sample_ids).logits, fake(input_ids=sample_ids).logits, atol=1e-5)


def test_export_after_freezing_by_hand(tiny_model, sample_ids, provider):
    model, _ = tiny_model
    provider.replace(model, inplace=True)
    calibrate(model, [sample_ids])
    freeze(model)
    with pytest.raises(SurgeryError, match="special-position treatment on"):
        export(model)
    model.__dict__["ln_free_positions"].treat_first = False
    model.__dict__["ln_free_positions"].treat_special_ids = False
    expected = model(input_ids=sample_ids).logits
    frozen = set(fake_norms(model))
    changes = export(model)
    assert len(changes) == len(frozen) and {c.path for c in changes} == frozen
    assert find_norm_layers(model) == ([], []) and not fake_norms(model)
    assert torch.allclose(model(input_ids=sample_ids).logits, expected, atol=1e-5)


def test_export_removes_only_its_own_hooks_and_a_copy_detaches_its_own(tiny_model, sample_ids, make_provider):
    import copy

    model, _ = tiny_model
    fake, _ = make_provider(mode="fake", special_first=False, special_eot=False).replace(model, inplace=False)
    user = fake.register_forward_pre_hook(lambda m, a: None)
    twin = copy.deepcopy(fake)
    export(twin)
    assert list(twin._forward_pre_hooks) == [user.id] and not twin._forward_hooks
    assert len(fake._forward_pre_hooks) == 2 and len(fake._forward_hooks) == 1
    export(fake)
    assert list(fake._forward_pre_hooks) == [user.id] and not fake._forward_hooks
    assert torch.equal(fake(input_ids=sample_ids).logits, twin(input_ids=sample_ids).logits)


def test_inplace_false_makes_exactly_one_copy(tiny_model, sample_ids, make_provider, deepcopy_calls):
    model, _ = tiny_model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    types = module_types(model)
    reference = model(input_ids=sample_ids).logits
    new, report = make_provider(mode="fake").replace(model, inplace=False)
    assert len(deepcopy_calls) == 1 and new is not model
    assert module_types(model) == types and not model._forward_pre_hooks
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert torch.equal(model(input_ids=sample_ids).logits, reference)
    originals = {p.data_ptr() for p in model.parameters()}
    assert not originals & {p.data_ptr() for p in new.parameters()}
    assert any("one deep copy" in note and "MiB" in note for note in report.notes)


def test_inplace_true_makes_no_copy(tiny_model, provider, deepcopy_calls):
    model, _ = tiny_model
    new, report = provider.replace(model, inplace=True)
    assert new is model and deepcopy_calls == [] and fake_norms(model)


def test_kv_cache_positions_match_a_full_forward(tiny_llama, sample_ids, make_provider):
    """Position 0 is absolute: an extension step must not treat its first token as position 0."""
    model, _ = tiny_llama
    new, _ = make_provider(mode="fake").replace(model, inplace=False)
    full = new(input_ids=sample_ids).logits[:, -1]
    prefix = new(input_ids=sample_ids[:, :-1], use_cache=True)
    step = new(input_ids=sample_ids[:, -1:], cache=prefix.past_key_values).logits[:, -1]
    assert torch.allclose(step, full, atol=1e-5)


def test_no_norm_layers_is_a_clear_error(provider):
    with pytest.raises(SurgeryError, match="no recognised norm layer.*found: no module") as info:
        provider.replace(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    assert "ln-free" in str(info.value)


def test_unsupported_norm_class_lists_what_was_found(provider):
    model = nn.Sequential(nn.Conv1d(4, 4, 1), nn.GroupNorm(2, 4), nn.InstanceNorm1d(4))
    with pytest.raises(SurgeryError, match=r"found: 1 \(GroupNorm\), 2 \(InstanceNorm1d\)"):
        provider.replace(model)


def test_layer_pattern_matching_nothing_lists_the_norms(tiny_llama, make_provider):
    with pytest.raises(SurgeryError, match=r"\['model.nrom'\] match no norm layer; found: \['model.layers.0"):
        make_provider(layers=["model.nrom"]).replace(tiny_llama[0])


def test_surgery_twice_is_an_error(tiny_llama, provider, make_provider):
    model, _ = tiny_llama
    provider.replace(model)
    with pytest.raises(SurgeryError, match="already has 5 ln-free fake norm"):
        make_provider().replace(model)


def test_fake_mode_needs_a_tokenizer(tiny_llama):
    with pytest.raises(ConfigError, match="no tokenizer"):
        LNFreeNormalization(mode="fake").replace(tiny_llama[0])


def test_the_build_context_gives_the_tokenizer(tiny_llama, tiny_tokenizer):
    provider = LNFreeNormalization(mode="fake", ctx=BuildContext(Runtime(), tokenizer=tiny_tokenizer))
    assert provider.tokenizer is tiny_tokenizer
    model, report = provider.replace(tiny_llama[0])
    assert all(n.mode == "fake" for n in fake_norms(model).values()) and len(report) == 5


def test_python_lists_become_tuples():
    provider = LNFreeNormalization(layers=["model.norm"], special_ids=[0, 2])
    assert provider.layers == ("model.norm",) and provider.special_ids == (0, 2)
    assert provider.calibration_texts == DEFAULT_CALIBRATION_TEXTS


BAD = [{"mode": "gone"}, {"momentum": 1.5}, {"momentum": 1}, {"momentum": 0.0}, {"layers": []},
       {"layers": "model.norm"}, {"calibration_texts": [""]}, {"calibration_texts": [3]},
       {"special_ids": [-1]}, {"special_ids": [True]}, {"special_first": "yes"}, {"special_eot": 0}]


@pytest.mark.parametrize("bad", BAD)
def test_bad_parameters_are_refused_in_python(bad):
    with pytest.raises((ValueError, TypeError), match=next(iter(bad))):
        LNFreeNormalization(**bad)


@pytest.mark.parametrize("bad", BAD)
def test_bad_parameters_are_config_errors_naming_the_parameter(installed_registry, bad):
    (key,) = bad
    with pytest.raises(ConfigError, match=f"parameter '{key}'") as info:
        installed_registry.build("normalization", {"type": "ln-free", **bad})
    assert info.value.plugin == "tokensmith-ln-free" and info.value.component == "normalization 'ln-free'"


def test_declared_parameters(installed_registry):
    signature = installed_registry.parameters(installed_registry.get("normalization", "ln-free"))
    assert signature.names() == ["layers", "mode", "calibration_texts", "momentum", "special_ids",
                                 "special_first", "special_eot"]
    assert signature.wants_context


PIPELINE = """
[runtime]
device = "cpu"
dtype = "float32"
[model]
source = "tiny-llama"
[normalization]
type = "ln-free"
mode = "fake"
layers = ["model.norm", "model.layers.1.*"]
calibration_texts = ["The quick brown fox.", "A tokenizer turns text into tokens."]
"""


def test_selectable_from_a_pipeline_toml(tmp_path, make_registry):
    import tokensmith_ln_free.plugin as plugin

    path = tmp_path / "pipeline.toml"
    path.write_text(PIPELINE)
    registry = make_registry(plugin)
    pipeline = registry.build_pipeline(PipelineSpec.from_toml(path))
    norms = fake_norms(pipeline.model)
    assert sorted(norms) == ["model.layers.1.input_layernorm", "model.layers.1.post_attention_layernorm",
                             "model.norm"]
    assert all(n.mode == "fake" for n in norms.values())
    assert len(pipeline.reports[0]) == 3
    bad = PIPELINE.replace('mode = "fake"', 'mode = "frozen"')
    path.write_text(bad)
    with pytest.raises(ValidationError, match="ln-free"):
        registry.build_pipeline(PipelineSpec.from_toml(path))


def test_components_are_registered(installed_registry):
    names = {(c.kind, c.name, c.distribution) for c in installed_registry.components()}
    assert ("normalization", "ln-free", "tokensmith-ln-free") in names
    assert ("demo", "ln-free", "tokensmith-ln-free") in names
