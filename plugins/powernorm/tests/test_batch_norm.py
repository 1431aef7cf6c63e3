"""Masked BatchNorm: statistics of the real tokens only, torch's BatchNorm on them exactly."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_powernorm.surgery import BatchNormProvider

from tokensmith import InputError


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_equals_batchnorm1d_on_the_real_tokens(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    x = 50 * torch.randn(len(lengths), longest, 3, generator=g, dtype=torch.float64)
    mask = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]
    ours = BatchNormProvider(momentum=0.3).module(3).double().train()
    reference = torch.nn.BatchNorm1d(3, momentum=0.3).double().train()
    real = x[mask]
    with ours.padding_mask.use(mask):
        if real.shape[0] == 1:
            with pytest.raises(InputError, match="more than one real token"):
                ours(x)
            return
        out = ours(x)
    torch.testing.assert_close(out[mask], reference(real))
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    ours.eval()
    reference.eval()
    torch.testing.assert_close(ours(x[:1]), reference(x[0]).unsqueeze(0))
