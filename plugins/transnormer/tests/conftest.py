"""Shared fixtures of tokensmith-transnormer's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tnl_config():
    """A small TransNormer config builder (keyword overrides)."""
    from tokensmith_transnormer import TransNormerConfig

    def make(**overrides):
        params = dict(vocab_size=64, width=32, layers=3, heads=4, block_size=8)
        params.update(overrides)
        return TransNormerConfig(**params)

    return make


@pytest.fixture
def tnl_model(tnl_config):
    """``make(**config)``: a float64 TransNormerLM whose weights are large enough that the
    attention forms are not compared on near-zero outputs."""
    import torch
    from tokensmith_transnormer.model import TransNormerLM

    def make(**overrides):
        torch.manual_seed(0)
        model = TransNormerLM(tnl_config(**overrides)).double().eval()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(10.0)
        return model

    return make


@pytest.fixture
def tnl_lm(tiny_tokenizer, tnl_model):
    from tokensmith_transnormer.language_model import TransNormerLanguageModel

    from tokensmith import Runtime

    return TransNormerLanguageModel(tnl_model(vocab_size=tiny_tokenizer.vocab_size, lrpe=True),
                                    tiny_tokenizer, Runtime(dtype="float64", seed=0))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread(torch_single_thread):
    """Tiny tensors: one torch thread for every test here (tokensmith.testing fixture)."""
    yield
