"""FakeNorm: live mode is the original norm; fake mode is linear; σ̄ is the paper's EMA."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_ln_free.fake_norm import FakeNorm, FixedLinearMap, SpecialPositions, token_std
from torch import nn

from tokensmith import SurgeryError

KINDS = {"layernorm": lambda d: nn.LayerNorm(d), "rmsnorm": lambda d: nn.RMSNorm(d, eps=1e-5)}
_settings = settings(max_examples=40, deadline=None)
coefficient = st.floats(-3, 3, allow_nan=False).filter(lambda v: abs(v) > 1e-3)


def tensors(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 4


@_settings
@given(kind=st.sampled_from(sorted(KINDS)), a=coefficient, b=coefficient, seed=st.integers(0, 10_000),
       seq=st.integers(1, 6))
def test_removed_norm_is_linear(make_frozen_norm, kind, a, b, seed, seq):
    norm = make_frozen_norm(KINDS[kind](8), kind, seed=seed)
    x, y = tensors(seed, 2, seq, 8), tensors(seed + 1, 2, seq, 8)
    beta = norm.bias if norm.bias is not None else torch.zeros(8)
    with torch.no_grad():
        lhs = norm(a * x + b * y) - beta
        rhs = a * (norm(x) - beta) + b * (norm(y) - beta)
    assert torch.allclose(lhs, rhs, rtol=1e-4, atol=1e-4 * (1 + float(rhs.abs().max())))


@_settings
@given(kind=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 10_000))
def test_export_is_the_fixed_linear_map_of_the_frozen_norm(make_frozen_norm, kind, seed):
    norm = make_frozen_norm(KINDS[kind](8), kind, seed=seed)
    norm.positions.treat_first = False
    exported = FixedLinearMap.from_fake_norm(norm)
    x = tensors(seed, 3, 5, 8)
    with torch.no_grad():
        assert torch.allclose(exported(x), norm(x), rtol=1e-5, atol=1e-5)
        assert "norm" not in type(exported).__name__.lower()
    norm.positions.treat_first = True
    with pytest.raises(SurgeryError, match="special-position treatment on"):
        FixedLinearMap.from_fake_norm(norm)


@_settings
@given(kind=st.sampled_from(sorted(KINDS)), seed=st.integers(0, 10_000), observing=st.booleans())
def test_live_mode_is_the_original_norm_bit_for_bit(kind, seed, observing):
    original = KINDS[kind](8)
    with torch.no_grad():
        for param in original.parameters():
            param.copy_(tensors(seed, *param.shape))
    norm = FakeNorm(original, kind, 1e-5, SpecialPositions())
    norm.observing = observing
    x = tensors(seed + 7, 2, 4, 8)
    assert torch.equal(norm(x), original(x))


def test_position_zero_uses_the_special_std_until_turned_off(make_frozen_norm):
    norm = make_frozen_norm(nn.RMSNorm(4), "rmsnorm", average=2.0, special=8.0)
    with torch.no_grad():
        norm.original.weight.fill_(1.0)
    x = torch.ones(1, 3, 4)
    assert torch.allclose(norm(x)[0, :, 0], torch.tensor([1 / 8, 1 / 2, 1 / 2]))
    norm.positions.treat_first = False
    assert torch.allclose(norm(x)[0, :, 0], torch.full((3,), 1 / 2))


def test_special_ids_share_the_special_std(make_frozen_norm):
    norm = make_frozen_norm(nn.RMSNorm(4), "rmsnorm", average=2.0, special=8.0)
    norm.positions = SpecialPositions(special_ids=(5,))
    with torch.no_grad():
        norm.original.weight.fill_(1.0)
    norm.positions.bind(torch.tensor([[1, 5, 2, 5]]))
    assert torch.allclose(norm(torch.ones(1, 4, 4))[0, :, 0], torch.tensor([1 / 8, 1 / 8, 1 / 2, 1 / 8]))
    norm.positions.treat_special_ids = False
    assert torch.allclose(norm(torch.ones(1, 4, 4))[0, :, 0], torch.tensor([1 / 8, 1 / 2, 1 / 2, 1 / 2]))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sigma_bar_is_an_ema_with_momentum_0_9(kind):
    norm = FakeNorm(KINDS[kind](6), kind, 1e-5, SpecialPositions())
    batches = [tensors(s, 2, 5, 6) for s in range(3)]
    norm.observing = True
    for x in batches:
        norm(x)
    expected_avg = expected_special = None
    for x in batches:
        std = token_std(x, kind, 1e-5)
        avg, special = std[:, 1:].mean(), std[:, 0].mean()
        expected_avg = avg if expected_avg is None else 0.9 * expected_avg + 0.1 * avg
        expected_special = special if expected_special is None else 0.9 * expected_special + 0.1 * special
    assert torch.allclose(norm.average_std, expected_avg)
    assert torch.allclose(norm.special_std, expected_special)
    assert norm.average_updates.item() == 3


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_padding_does_not_change_sigma_bar(kind):
    x = tensors(0, 2, 5, 6)
    padded = torch.cat([x, tensors(1, 2, 3, 6) * 10], dim=1)  # loud pads would move σ̄ a lot
    mask = torch.cat([torch.ones(2, 5), torch.zeros(2, 3)], dim=1).long()
    plain, masked = (FakeNorm(KINDS[kind](6), kind, 1e-5, SpecialPositions()) for _ in range(2))
    plain.observing = masked.observing = True
    plain(x)
    masked.positions.bind(torch.zeros(2, 8, dtype=torch.long), attention_mask=mask)
    masked(padded)
    assert torch.equal(masked.average_std, plain.average_std)
    assert torch.equal(masked.special_std, plain.special_std)
    masked.positions.bind(torch.zeros(2, 8, dtype=torch.long), attention_mask=torch.zeros(2, 8))
    masked(padded)
    assert masked.average_updates.item() == 1 and torch.equal(masked.average_std, plain.average_std)


def test_token_std_is_the_live_divisor():
    x = tensors(0, 3, 6)
    assert torch.allclose(token_std(x, "layernorm", 1e-5), torch.sqrt(x.var(-1, unbiased=False) + 1e-5))
    assert torch.allclose(token_std(x, "rmsnorm", 1e-5), torch.sqrt((x * x).mean(-1) + 1e-5))


def test_freezing_an_uncalibrated_norm_is_an_error():
    norm = FakeNorm(nn.LayerNorm(4), "layernorm", 1e-5, SpecialPositions())
    with pytest.raises(SurgeryError, match="never calibrated"):
        norm.freeze()
