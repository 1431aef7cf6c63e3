"""PowerNorm's invariants (Shen et al., 2020, Algorithm 1) checked exactly on small cases."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_powernorm.power_norm import ApproximateQuadraticNorm, group_scaling
from tokensmith_powernorm.surgery import PowerNormProvider

from tokensmith import ConfigError, InputError

_settings = settings(max_examples=30, deadline=None)


def power_norm(dim=4, **kw):
    """A PowerNorm without pre-scaling or affine (unless asked), so its statistics are the input's."""
    return PowerNormProvider(**{"prescale": False, "affine": False, **kw}).module(dim).double().train()


def _batch(seed, batch=3, length=5, dim=4, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, length, dim, generator=g, dtype=torch.float64)


@_settings
@given(seed=st.integers(0, 10_000), alpha=st.floats(0.0, 1.0), steps=st.integers(1, 4))
def test_running_update_after_warmup_is_the_ema_formula(seed, alpha, steps):
    norm = power_norm(alpha_fwd=alpha, warmup_iters=0)
    for step in range(steps):
        x = _batch(seed + step)
        phi = norm.running_phi.clone()
        norm(x)
        expected = alpha * phi + (1 - alpha) * x.pow(2).mean(dim=(0, 1))
        torch.testing.assert_close(norm.running_phi, expected, rtol=1e-12, atol=1e-12)


def test_running_update_during_warmup_averages_then_smooths():
    norm = power_norm(alpha_fwd=0.9, warmup_iters=3)
    phi = norm.running_phi.clone()
    for t in range(1, 4):
        x = _batch(t)
        psi2 = x.pow(2).mean(dim=(0, 1))
        norm(x)
        cumulative = phi * (t - 1) / t + psi2 / t
        phi = 0.9 * cumulative + 0.1 * psi2
        torch.testing.assert_close(norm.running_phi, phi, rtol=1e-12, atol=1e-12)
    assert int(norm.iteration) == 3


def test_forward_uses_batch_statistic_in_warmup_and_previous_running_one_after():
    norm = power_norm(warmup_iters=1, eps=1e-5)
    x = _batch(0)
    torch.testing.assert_close(norm(x), x / torch.sqrt(x.pow(2).mean(dim=(0, 1)) + 1e-5))
    phi_before = norm.running_phi.clone()
    y = _batch(1)
    torch.testing.assert_close(norm(y), y / torch.sqrt(phi_before + 1e-5))


@_settings
@given(seed=st.integers(0, 10_000), pads=st.lists(st.integers(0, 6), min_size=3, max_size=3),
       warmup=st.sampled_from([0, 5]))
def test_pad_tokens_do_not_change_statistics(seed, pads, warmup):
    """Append pad positions holding arbitrary values: φ, Γ and the real tokens' outputs and
    gradients are those of the unpadded batch."""
    real = _batch(seed, batch=3, length=4)
    grad = _batch(seed + 1, batch=3, length=4)
    longest = 4 + max(pads)
    padded = 100 * _batch(seed + 2, batch=3, length=longest)
    padded_grad = _batch(seed + 3, batch=3, length=longest)
    mask = torch.zeros(3, longest, dtype=torch.bool)
    for i, n in enumerate(pads):
        padded[i, n:n + 4] = real[i]
        padded_grad[i, n:n + 4] = grad[i]
        mask[i, n:n + 4] = True
    reference, masked = power_norm(warmup_iters=warmup), power_norm(warmup_iters=warmup)
    a = real.clone().requires_grad_()
    expected = reference(a)
    expected.backward(grad)
    b = padded.clone().requires_grad_()
    with masked.padding_mask.use(mask):
        out = masked(b)
    out.backward(padded_grad)
    torch.testing.assert_close(masked.running_phi, reference.running_phi)
    torch.testing.assert_close(masked.grad_correction, reference.grad_correction)
    torch.testing.assert_close(out[mask], expected.detach().reshape(-1, 4))
    torch.testing.assert_close(b.grad[mask], a.grad.reshape(-1, 4))


@_settings
@given(seed=st.integers(0, 10_000), others=st.integers(0, 4))
def test_eval_output_of_a_sample_is_independent_of_the_batch(seed, others):
    norm = PowerNormProvider(warmup_iters=2).module(4).double()
    for step in range(3):
        norm(_batch(seed + step))
    norm.eval()
    sample = _batch(seed + 10, batch=1)
    batch = torch.cat([sample, _batch(seed + 11, batch=others)]) if others else sample
    with norm.padding_mask.use(torch.zeros(batch.shape[:2], dtype=torch.bool)):
        torch.testing.assert_close(norm(batch)[:1], norm(sample), rtol=0, atol=0)


@pytest.mark.parametrize("warmup", [10, 0])
def test_backward_without_correction_is_autograd_with_constant_statistics(warmup):
    """α_bkw = 1 (Γ's term vanishes): ∂L/∂x = g/scale, the exact gradient of z = x/scale with
    the scale (√(ψ²_B+ε) in warm-up, √(φ_{t-1}+ε) after) held constant."""
    norm = power_norm(alpha_bkw=1.0, warmup_iters=warmup, affine=True)
    norm.running_phi.fill_(2.5)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 4, dtype=torch.float64))
    x, upstream = _batch(0).requires_grad_(), _batch(1)
    norm(x).backward(upstream)
    statistic = x.detach().pow(2).mean(dim=(0, 1)) if warmup else torch.full((4,), 2.5, dtype=torch.float64)
    x2 = x.detach().clone().requires_grad_()
    (x2 / torch.sqrt(statistic + norm.eps) * norm.weight.detach()).backward(upstream)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-12, atol=1e-12)


def test_correction_at_its_fixed_point_gives_the_exact_batch_statistic_gradient():
    """With α_bkw = 0 the correction is Γ·z with Γ accumulating mean(g̃·z). After one backward
    on a batch Γ = mean(g·z); a second backward on the same batch and upstream gradient then
    equals the exact gradient of x/√(ψ²_B+ε) *through* ψ²_B (batch-statistic normalization):
    (g − z·mean(g·z))/√(ψ²_B+ε)."""
    norm = power_norm(alpha_bkw=0.0, warmup_iters=10)
    x, upstream = _batch(3), _batch(4)
    for _ in range(2):
        leaf = x.clone().requires_grad_()
        norm(leaf).backward(upstream)
    exact = x.clone().requires_grad_()
    (exact / torch.sqrt(exact.pow(2).mean(dim=(0, 1)) + norm.eps)).backward(upstream)
    torch.testing.assert_close(leaf.grad, exact.grad, rtol=1e-10, atol=1e-12)


def test_gradcheck_of_the_function_without_correction():
    x = _batch(5).requires_grad_()
    scale = torch.rand(4, dtype=torch.float64) + 0.5
    assert torch.autograd.gradcheck(
        lambda t: ApproximateQuadraticNorm.apply(t, scale, None, torch.zeros(4, dtype=torch.float64), 1.0),
        (x,))


@_settings
@given(seed=st.integers(0, 10_000), magnitude=st.sampled_from([1e-6, 1.0, 1e4]),
       alpha_bkw=st.floats(0.0, 1.0), warmup=st.sampled_from([0, 2]))
def test_gradients_stay_finite(seed, magnitude, alpha_bkw, warmup):
    norm = PowerNormProvider(alpha_bkw=alpha_bkw, warmup_iters=warmup).module(8).train()
    for step in range(4):
        x = _batch(seed + step, dim=8, scale=magnitude).float().requires_grad_()
        norm(x).pow(2).sum().backward()
        assert torch.isfinite(x.grad).all() and torch.isfinite(norm.grad_correction).all()
        assert torch.isfinite(norm.weight.grad).all()


def test_group_scaling_matches_per_group_rms():
    x = _batch(6, dim=6)
    out = group_scaling(x, 2, 1e-5)
    for group in (slice(0, 3), slice(3, 6)):
        part = x[..., group]
        expected = part / torch.sqrt(part.pow(2).mean(-1, keepdim=True) + 1e-5)
        torch.testing.assert_close(out[..., group], expected)


def test_prescaled_statistics_are_of_the_prescaled_input():
    norm = PowerNormProvider(warmup_iters=0, alpha_fwd=0.0, affine=False).module(4).double().train()
    x = _batch(7, scale=30.0)
    norm(x)
    torch.testing.assert_close(norm.running_phi, group_scaling(x, 1, 1e-5).pow(2).mean(dim=(0, 1)))


def test_mask_of_the_wrong_shape_is_an_input_error():
    norm = power_norm()
    with norm.padding_mask.use(torch.ones(3, 6, dtype=torch.bool)), pytest.raises(InputError, match="shape"):
        norm(_batch(0))


def test_all_pad_batch_is_an_input_error():
    norm = power_norm()
    all_pads = torch.zeros(3, 5, dtype=torch.bool)
    with norm.padding_mask.use(all_pads), pytest.raises(InputError, match="padding"):
        norm(_batch(0))


def test_group_num_must_divide_the_width():
    with pytest.raises(ConfigError, match="group_num=4 does not divide the channel count 6") as info:
        PowerNormProvider(group_num=4).module(6)
    assert info.value.component == "normalization 'powernorm'"
