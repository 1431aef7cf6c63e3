"""Shared fixtures of the ln-free tests."""

from __future__ import annotations

import copy

import pytest


@pytest.fixture
def make_provider(tiny_tokenizer):
    """``make(**params)``: an ln-free provider with a tokenizer (the tiny one unless given), as a
    pipeline gives it its own."""
    from tokensmith_ln_free import LNFreeNormalization

    def make(*, tokenizer=tiny_tokenizer, **params):
        provider = LNFreeNormalization(**params)
        provider.tokenizer = tokenizer
        return provider

    return make


@pytest.fixture
def provider(make_provider):
    return make_provider()


@pytest.fixture(params=["tiny_llama", "tiny_gpt2"])
def tiny_model(request):
    """``(model, tokenizer)``: a randomly initialised Llama (RMSNorm) or GPT-2 (LayerNorm)."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def sample_ids(tiny_tokenizer):
    import torch

    text = "The quick brown fox jumps over the lazy dog. The capital of France is Paris."
    return torch.tensor([tiny_tokenizer.encode(text).ids])


@pytest.fixture
def deepcopy_calls(monkeypatch):
    """Counts top-level ``copy.deepcopy`` calls (the recursion inside one copy is not counted)."""
    calls = []
    depth = [0]
    original = copy.deepcopy

    def counting(obj, memo=None, _nil=[]):  # noqa: B006 - mirrors copy.deepcopy's signature
        if depth[0] == 0:
            calls.append(type(obj).__name__)
        depth[0] += 1
        try:
            return original(obj, memo)
        finally:
            depth[0] -= 1

    monkeypatch.setattr(copy, "deepcopy", counting)
    return calls


def frozen_norm(module, kind, *, average=1.7, special=9.0, seed=0):
    """A FakeNorm around ``module`` frozen with the given σ̄ and σ̄_special (random γ, β)."""
    import torch
    from tokensmith_ln_free.fake_norm import FakeNorm, SpecialPositions

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen))
    norm = FakeNorm(module, kind, 1e-5, SpecialPositions())
    norm.average_std.fill_(average)
    norm.special_std.fill_(special)
    norm.average_updates.fill_(1)
    norm.special_updates.fill_(1)
    norm.freeze()
    return norm


@pytest.fixture(scope="session")
def make_frozen_norm():
    return frozen_norm


@pytest.fixture
def loaded_tiny_llama(tiny_llama, tmp_path):
    """``(model, tokenizer)``: the tiny Llama saved and read back from safetensors, so that its
    weights sit at the unaligned file offsets a model loaded from disk has (like SmolLM2's)."""
    from transformers import AutoModelForCausalLM

    model, tok = tiny_llama
    model.save_pretrained(tmp_path)
    return AutoModelForCausalLM.from_pretrained(tmp_path), tok
