"""Issue 8, item 20: a norm over two dimensions is refused (it used to be swapped silently for a
last-dimension norm); a Gemma-style ``(1 + w)`` RMSNorm starts γ from its gain ``1 + w``."""

import pytest
import torch
from torch import nn

from tokensmith import SurgeryError, find_norm_layers
from tokensmith.testing import TwoDimNormBlock, gemma_style_norms


def test_norm_over_two_dimensions_is_refused_and_nothing_is_changed(normalization_provider):
    model = TwoDimNormBlock()
    with pytest.raises(SurgeryError, match=r"norm \(LayerNorm\) normalizes over the last 2 dimensions "
                                           r"\(4, 8\)") as info:
        normalization_provider.replace(model, inplace=True)
    assert info.value.component == f"normalization '{normalization_provider.name}'"
    assert "select(layers)" in info.value.hint
    assert type(model.ln) is nn.LayerNorm and type(model.norm) is nn.LayerNorm
    assert not model._forward_pre_hooks and not model._forward_hooks




@pytest.mark.parametrize("norm", gemma_style_norms(), ids=lambda n: type(n).__name__)
def test_gemma_style_norm_starts_gamma_from_one_plus_weight(normalization_provider, norm):
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(-0.5, 2.0, 8))
    model = nn.Sequential(nn.Linear(8, 8), norm)
    assert find_norm_layers(model)[0][0].weight_offset == 1.0
    new, report = normalization_provider.replace(model, inplace=False)
    assert "gain = 1 + weight" in report.changes[0].detail
    torch.testing.assert_close(new[1].weight.detach(), 1 + norm.weight.detach())


def test_an_ordinary_rmsnorm_keeps_its_weight_as_gamma(normalization_provider, tiny_llama):
    model = tiny_llama[0]
    with torch.no_grad():
        model.model.norm.weight.uniform_(0.5, 1.5)
    assert all(layer.weight_offset == 0.0 for layer in find_norm_layers(model)[0])
    new, report = normalization_provider.replace(model, inplace=False)
    assert not any("gain" in c.detail for c in report.changes)
    torch.testing.assert_close(new.model.norm.weight, model.model.norm.weight)
