"""Issue 8: a non-finite surgered model is an error naming where it broke (17); ``inplace=False``
is bit-identical also on one-token forwards (18); norms over several dimensions are refused
and Gemma-style ``(1 + w)`` norms handled explicitly (20)."""

from __future__ import annotations

import pytest
import torch
from tokensmith_ln_free import fake_norms, first_non_finite
from tokensmith_ln_free.fake_norm import token_std
from torch import nn

from tokensmith import SurgeryError, find_norm_layers
from tokensmith.testing import OffsetRMSNorm, TwoDimNormBlock, gemma_style_norms

SINK_TEXTS = ["Zebras graze in the morning.", "Zebras sleep at night."]


def module_types(model):
    return {path: type(m).__name__ for path, m in model.named_modules()}


def with_huge_sink(model, tok):
    """Position 0 of every calibration text gets an embedding of RMS 3e38: the live norms map it
    to zero (x² overflows, so rsqrt gives 0), but divided by the ordinary σ̄ it overflows."""
    first = {tok.encode(text).ids[0] for text in SINK_TEXTS}
    later = {i for text in SINK_TEXTS for i in tok.encode(text).ids[1:]}
    assert len(first) == 1 and not first & later  # the premise: the sink token occurs only at position 0
    head = model.get_output_embeddings()
    head.weight = nn.Parameter(head.weight.detach().clone())  # untied: only the input embedding changes
    with torch.no_grad():
        model.get_input_embeddings().weight[first.pop()] = 3e38
    return model


@pytest.mark.parametrize("params", [{"mode": "removed"}, {"mode": "fake", "special_first": False}])
def test_non_finite_surgered_model_is_an_error_naming_the_first_module(tiny_llama, make_provider, params):
    model, tok = tiny_llama
    model = with_huge_sink(model, tok)
    ids = torch.tensor([tok.encode(SINK_TEXTS[0]).ids])
    reference = model(input_ids=ids).logits
    assert torch.isfinite(reference).all()
    before = module_types(model)
    with pytest.raises(SurgeryError, match=r"calibration text 1 of 2 is not finite.*first module with a "
                                           r"non-finite output is model\.layers\.0\.input_layernorm "
                                           r"\((FixedLinearMap|FakeNorm)\), whose inputs are finite") as info:
        make_provider(calibration_texts=SINK_TEXTS, **params).replace(model, inplace=True)
    assert "original norms back" in info.value.hint
    # the in-place surgery was undone: same modules, no hooks, the same logits
    assert module_types(model) == before and not fake_norms(model)
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert "ln_free_positions" not in model.__dict__
    assert torch.equal(model(input_ids=ids).logits, reference)


def test_the_same_surgery_with_the_position_0_treatment_is_finite(tiny_llama, make_provider):
    model, tok = tiny_llama
    model = with_huge_sink(model, tok)
    new, _ = make_provider(calibration_texts=SINK_TEXTS, mode="fake").replace(model, inplace=False)
    assert first_non_finite(new, [torch.tensor([tok.encode(t).ids]) for t in SINK_TEXTS]) is None


def test_first_non_finite_names_a_value_made_between_modules(tiny_llama, tiny_tokenizer):
    """A NaN made in a forward (not by a submodule) is attributed to the next module, saying that
    its inputs were already non-finite and where they were made."""
    model, tok = tiny_llama
    layer = model.model.layers[1]
    layer.mlp.register_forward_hook(lambda m, a, out: out * float("inf"))
    ids = torch.tensor([tok.encode("The quick brown fox").ids])
    found = first_non_finite(model, [ids, ids])
    assert (found.batch, found.path, found.module) == (0, "model.layers.1.mlp", "LlamaMLP")
    assert found.inputs_finite
    layer.mlp._forward_hooks.clear()
    layer.register_forward_pre_hook(lambda m, args: (args[0] * float("nan"), *args[1:]))
    found = first_non_finite(model, [ids])
    assert found.path == "model.layers.1.input_layernorm" and not found.inputs_finite
    assert "made in the forward of model.layers.1" in found.describe()


def test_inplace_false_is_bit_identical_on_one_token_forwards(loaded_tiny_llama, make_provider):
    """A model read from a file has its weights at unaligned offsets; a plain deepcopy is 64-byte
    aligned and its one-row matrix products take another BLAS path. The copy keeps the offsets."""
    model, tok = loaded_tiny_llama
    ids = torch.tensor(tok.encode("The quick brown fox jumps over the lazy dog.").ids)
    new, _ = make_provider(mode="live").replace(model, inplace=False)
    originals = dict(model.named_parameters())
    copies = {path.replace(".original.", "."): p for path, p in new.named_parameters()}
    assert copies.keys() == originals.keys()
    assert all((p.data_ptr() - copies[k].data_ptr()) % 64 == 0 for k, p in originals.items())
    assert not {p.data_ptr() for p in originals.values()} & {p.data_ptr() for p in copies.values()}
    with torch.no_grad():
        for i in range(len(ids)):
            one = ids[i:i + 1].view(1, 1)
            assert torch.equal(new(input_ids=one).logits, model(input_ids=one).logits)
        assert torch.equal(new(input_ids=ids[None]).logits, model(input_ids=ids[None]).logits)


def test_norm_over_two_dimensions_is_refused_and_nothing_is_changed(provider):
    model = TwoDimNormBlock()
    with pytest.raises(SurgeryError, match=r"norm \(LayerNorm\) normalizes over the last 2 dimensions "
                                           r"\(4, 8\)") as info:
        provider.replace(model, inplace=True)
    assert "layers = [...]" in info.value.hint
    assert [(layer.path, layer.normalized_shape) for layer in find_norm_layers(model)[0]] == \
        [("ln", (8,)), ("norm", (4, 8))]
    assert type(model.ln) is nn.LayerNorm and not fake_norms(model) and not model._forward_pre_hooks


def test_leaving_the_two_dimensional_norm_out_works(make_provider):
    model = TwoDimNormBlock()
    new, report = make_provider(layers=["ln"]).replace(model, inplace=False)
    assert [c.path for c in report.changes] == ["ln"] and type(new.norm) is nn.LayerNorm




@pytest.mark.parametrize("norm", gemma_style_norms(), ids=lambda n: type(n).__name__)
def test_gemma_style_norm_is_frozen_with_gain_one_plus_weight(provider, norm):
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(-0.5, 2.0, 8))
    model = nn.Sequential(nn.Linear(8, 8), norm)
    (layer,) = find_norm_layers(model)[0]
    assert layer.weight_offset == 1.0
    x = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(1))
    expected = norm(x)
    new, report = provider.replace(model, inplace=False)
    assert "gain = 1 + weight" in report.changes[0].detail
    fake = new[1]
    assert torch.equal(fake(x), expected)  # live: the original module
    std = token_std(x, "rmsnorm", layer.eps).unsqueeze(-1)
    torch.testing.assert_close(fake.scaled(x, std), expected)
    fake.average_std.fill_(2.0)
    fake.average_updates.fill_(1)
    fake.freeze()
    fake.positions.treat_first = fake.positions.treat_special_ids = False
    torch.testing.assert_close(fake(x), (1 + norm.weight.detach()) * x / 2.0)


class L2RMSNorm(nn.Module):
    """Named like an RMSNorm but divides by the L2 norm (no √d): another formula."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * x / x.norm(dim=-1, keepdim=True)


def test_norm_with_another_formula_is_rejected(provider):
    model = nn.Sequential(nn.Linear(4, 4), L2RMSNorm(4))
    with pytest.raises(SurgeryError, match=r"1 \(L2RMSNorm\) does not compute"):
        provider.replace(model)


def test_the_offset_probe_needs_no_weights_runs_no_hooks_and_changes_nothing():
    """core's find_norm_layers: ``(1 + w)`` is found by running the norm with its weight zeroed, on
    the meta device too, without calling the norm's hooks or touching its parameters."""
    calls = []
    norms = nn.ModuleDict({"gemma": OffsetRMSNorm(8), "llama_like": nn.RMSNorm(8), "ln": nn.LayerNorm(8),
                           "plain": nn.LayerNorm(8, elementwise_affine=False)})
    for norm in norms.values():
        norm.register_forward_hook(lambda *args: calls.append(args))
    with torch.no_grad():
        norms["gemma"].weight.fill_(0.25)
    before = {k: v.clone() for k, v in norms.state_dict().items()}
    offsets = {layer.path: layer.weight_offset for layer in find_norm_layers(norms)[0]}
    assert offsets == {"gemma": 1.0, "llama_like": 0.0, "ln": 0.0, "plain": 0.0}
    assert calls == [] and all(torch.equal(v, before[k]) for k, v in norms.state_dict().items())
    with torch.device("meta"):
        meta = nn.ModuleDict({"gemma": OffsetRMSNorm(8), "ln": nn.LayerNorm(8)})
    offsets = {layer.path: layer.weight_offset for layer in find_norm_layers(meta)[0]}
    assert offsets == {"gemma": 1.0, "ln": 0.0}


def test_norm_layer_built_the_old_way_is_a_last_dimension_norm():
    from tokensmith import NormLayer

    layer = NormLayer("model.norm", nn.RMSNorm(8), "rmsnorm", 8, 1e-6)
    assert layer.normalized_shape == (8,) and layer.weight_offset == 0.0 and layer.last_dim_only
    assert torch.equal(layer.gain(), torch.ones(8))
