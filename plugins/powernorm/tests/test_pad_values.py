"""Issue 8, item 19: whatever a pad position holds (inf, NaN, huge values), it reaches neither
the running statistics, nor the real tokens' outputs and gradients, nor the gains' gradients:
everything equals the same batch with zeros at the pads (PowerNorm and masked BatchNorm)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_powernorm.surgery import BatchNormProvider, PowerNormProvider

_pad_values = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [math.inf, -math.inf, math.nan, 1e300, -1e300])


@st.composite
def padded_batches(draw, dim=4):
    """``(x, pad_values, mask)``: a (3, 5, dim) float64 batch, a mask with at least two real tokens,
    and arbitrary values for the pad positions."""
    mask = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=3,
                                      max_size=3).filter(lambda rows: sum(map(sum, rows)) >= 2)))
    seed = draw(st.integers(0, 10_000))
    x = torch.randn(3, 5, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    count = int((~mask).sum()) * dim
    values = torch.tensor(draw(st.lists(_pad_values, min_size=count, max_size=count)), dtype=torch.float64)
    return x, values, mask


def with_pads(x, values, mask):
    out = x.clone()
    out[~mask] = values.view(-1, x.shape[-1])
    return out


def run(norm, x, mask, upstream):
    leaf = x.clone().requires_grad_()
    with norm.padding_mask.use(mask):
        out = norm(leaf)
    out.backward(upstream)
    return out.detach(), leaf.grad


def assert_same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(padded_batches(), min_size=1, max_size=3), warmup=st.sampled_from([0, 1, 5]),
       prescale=st.booleans())
def test_power_norm_ignores_what_pads_hold(batches, warmup, prescale):
    provider = PowerNormProvider(warmup_iters=warmup, prescale=prescale, alpha_bkw=0.5)
    dirty, clean = provider.module(4).double().train(), provider.module(4).double().train()
    for x, values, mask in batches:
        upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        out, grad = run(dirty, with_pads(x, values, mask), mask, upstream)
        expected, expected_grad = run(clean, with_pads(x, torch.zeros_like(values), mask), mask, upstream)
        assert torch.isfinite(dirty.running_phi).all() and torch.isfinite(dirty.grad_correction).all()
        assert_same(dirty.running_phi, clean.running_phi)
        assert_same(dirty.grad_correction, clean.grad_correction)
        assert_same(out[mask], expected[mask])
        assert_same(grad[mask], expected_grad[mask])
        assert_same(dirty.weight.grad, clean.weight.grad)
        assert_same(dirty.bias.grad, clean.bias.grad)
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    dirty.eval()
    clean.eval()
    probe = torch.randn(2, 3, 4, dtype=torch.float64)
    assert_same(dirty(probe), clean(probe))


@settings(max_examples=40, deadline=None)
@given(batch=padded_batches(dim=3))
def test_masked_batch_norm_ignores_what_pads_hold(batch):
    x, values, mask = batch
    dirty, clean = (BatchNormProvider(momentum=0.3).module(3).double().train() for _ in range(2))
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out, grad = run(dirty, with_pads(x, values, mask), mask, upstream)
    expected, expected_grad = run(clean, with_pads(x, torch.zeros_like(values), mask), mask, upstream)
    assert torch.isfinite(dirty.running_mean).all() and torch.isfinite(dirty.running_var).all()
    assert_same(dirty.running_mean, clean.running_mean)
    assert_same(dirty.running_var, clean.running_var)
    assert_same(out[mask], expected[mask])
    assert_same(grad[mask], expected_grad[mask])
    assert_same(dirty.weight.grad, clean.weight.grad)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_a_model_trained_with_a_non_finite_pad_stays_finite(tiny_gpt2, value):
    """Through a whole model: pad positions whose hidden states are inf or NaN (here through their
    position embeddings) leave every running statistic and gradient finite."""
    model, tok = tiny_gpt2
    model, _ = PowerNormProvider(warmup_iters=1).replace(model)
    ids = torch.tensor([tok.encode("def f(x): return x").ids])
    pad = ids.new_full((1, 3), 7)
    input_ids, mask = torch.cat([ids, pad], 1), torch.cat([torch.ones_like(ids), torch.zeros_like(pad)], 1)
    with torch.no_grad():
        model.transformer.wpe.weight[ids.shape[1]:input_ids.shape[1]] = value
    model.train()
    loss = model(input_ids=input_ids, attention_mask=mask, labels=input_ids.masked_fill(mask == 0, -100)).loss
    loss.backward()
    assert torch.isfinite(loss)
    norms = [m for m in model.modules() if type(m).__name__ == "PowerNorm"]
    assert all(torch.isfinite(n.running_phi).all() and torch.isfinite(n.grad_correction).all() for n in norms)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
