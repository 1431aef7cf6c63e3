"""Direct logit attribution is exact with a frozen final norm and only approximate with a live one."""

from __future__ import annotations

import pytest
from tokensmith_ln_free import calibrate, freeze
from tokensmith_ln_free.attribution import decoder_blocks, direct_logit_attribution

from tokensmith import SurgeryError


def final_only(model):
    return "transformer.ln_f" if "GPT2" in type(model).__name__ else "model.norm"


def test_frozen_final_norm_makes_dla_exact(tiny_model, sample_ids, make_provider):
    model, _ = tiny_model
    model, _ = make_provider(layers=[final_only(model)]).replace(model)
    live = direct_logit_attribution(model, sample_ids)
    calibrate(model, [sample_ids])
    freeze(model)
    fake = direct_logit_attribution(model, sample_ids, position=5)
    n_blocks = model.config.num_hidden_layers
    assert fake.components[:n_blocks + 1] == ("embedding", *(f"block {i}" for i in range(n_blocks)))
    assert fake.contributions.shape == (len(fake.components), model.config.vocab_size)
    assert fake.sum_error < 1e-4 and fake.ablation_error < 1e-4
    assert live.sum_error < 1e-4
    assert live.ablation_error > 100 * max(fake.ablation_error, 1e-6)


def test_exported_final_norm_is_exact_too(tiny_llama, sample_ids, make_provider):
    model, _ = make_provider(layers=["model.norm"], mode="removed").replace(tiny_llama[0])
    result = direct_logit_attribution(model, sample_ids)
    assert result.norm_mode == "exported" and result.ablation_error < 1e-4 and result.sum_error < 1e-4


def test_needs_a_fake_final_norm(tiny_llama, sample_ids, make_provider):
    model, _ = make_provider(layers=["model.layers.*"]).replace(tiny_llama[0])
    with pytest.raises(SurgeryError, match="final norm is not an ln-free fake norm"):
        direct_logit_attribution(model, sample_ids)


def test_decoder_blocks_explicit_or_detected(tiny_model, sample_ids, make_provider):
    import torch

    model, _ = tiny_model
    path = "transformer.h" if "GPT2" in type(model).__name__ else "model.layers"
    assert decoder_blocks(model) is model.get_submodule(path)
    model, _ = make_provider(layers=[final_only(model)], mode="fake").replace(model)
    default, explicit = (direct_logit_attribution(model, sample_ids, blocks_path=p) for p in (None, path))
    assert torch.equal(default.contributions, explicit.contributions)
    with pytest.raises(SurgeryError, match="not an nn.ModuleList"):
        decoder_blocks(model, "lm_head")
    model.decoys = torch.nn.ModuleList(torch.nn.Identity() for _ in range(model.config.num_hidden_layers))
    with pytest.raises(SurgeryError, match="cannot tell which list"):
        decoder_blocks(model)
    assert decoder_blocks(model, path) is model.get_submodule(path)
