"""few_row_linears: a decoding forward of a few token rows computes each linear layer as
(W @ x.T).T on CPU (the fast BLAS kernel there; F.linear's few-row kernel reads the weights at
about half the bandwidth). The same products in another order: equal to float32 rounding, and
nothing of the model changes outside the context."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith.adapters.hf_lm import FEW_ROWS, few_row_linears


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, FEW_ROWS + 8), lead=st.sampled_from([(), (1,), (2,)]),
       bias=st.booleans(), d_in=st.integers(1, 40), d_out=st.integers(1, 40), seed=st.integers(0, 99))
def test_equals_f_linear_on_any_shape(rows, lead, bias, d_in, d_out, seed):
    gen = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(d_in, d_out, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, d_in, generator=gen))
        if bias:
            layer.bias.copy_(torch.randn(d_out, generator=gen))
    shape = (*lead, rows, d_in) if lead else (rows, d_in)
    x = torch.randn(*shape, generator=gen)
    want = torch.nn.functional.linear(x, layer.weight, layer.bias)
    with torch.inference_mode(), few_row_linears([layer]):
        got = layer(x)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, atol=1e-5 * d_in, rtol=1e-5)


def test_only_the_few_row_cases_take_the_other_kernel(monkeypatch):
    calls = []
    real_mm = torch.mm
    layer = torch.nn.Linear(8, 4)

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real_mm(*args, **kwargs)

    monkeypatch.setattr(torch, "mm", spy)
    with torch.inference_mode(), few_row_linears([layer]):
        layer(torch.randn(1, 8))  # one row: F.linear's matrix-vector kernel
        layer(torch.randn(FEW_ROWS + 1, 8))  # many rows: F.linear
        layer(torch.randn(1, 3, 8))  # three rows: W @ x.T
        half = torch.nn.Linear(8, 4).to(torch.bfloat16)
    with torch.inference_mode(), few_row_linears([half]):
        half(torch.randn(3, 8, dtype=torch.bfloat16))  # bfloat16: its own kernel
    assert calls == [torch.Size([4, 8])]


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_empty_inputs_go_to_f_linear():
    wide, none = torch.nn.Linear(5, 3), torch.nn.Linear(0, 3)
    with torch.inference_mode(), few_row_linears([wide, none]):
        assert wide(torch.randn(0, 5)).shape == (0, 3)
        torch.testing.assert_close(none(torch.randn(4, 0)), none.bias.expand(4, 3))


def test_training_keeps_f_linear_and_its_gradient():
    layer = torch.nn.Linear(6, 3)
    x = torch.randn(4, 6)
    with few_row_linears([layer]):
        layer(x).sum().backward()
    assert layer.weight.grad is not None
    torch.testing.assert_close(layer.weight.grad, torch.ones(3, 1) * x.sum(0))


def test_modules_are_restored_even_after_an_error():
    class Mine(torch.nn.Linear):  # a subclass keeps its own forward
        pass

    plain, sub, own = torch.nn.Linear(3, 3), Mine(3, 3), torch.nn.Linear(3, 3)

    def custom(x):
        return x * 0

    own.forward = custom
    with pytest.raises(RuntimeError), few_row_linears([plain, sub, own, torch.nn.ReLU()]):
        assert "forward" in plain.__dict__ and "forward" not in sub.__dict__
        assert own.forward is custom
        raise RuntimeError("boom")
    assert "forward" not in plain.__dict__ and own.forward is custom


def test_hf_forwards_agree_with_and_without_it(tiny_lm):
    state = tiny_lm.start([1, 2, 3, 4])
    conts = [[5], [6, 7], [8], [9, 10, 11]]
    tiny_lm.few_row_linears = False
    try:
        off = tiny_lm.extend_batch(state, conts)
        off_start = tiny_lm.start([1, 2, 3, 4, 5, 6])
    finally:
        tiny_lm.few_row_linears = True
    on = tiny_lm.extend_batch(state, conts)
    on_start = tiny_lm.start([1, 2, 3, 4, 5, 6])
    for a, b in zip(on, off):
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(on_start.logprobs, off_start.logprobs, atol=1e-5, rtol=0)
    # nothing is left on the model's modules
    assert not any("forward" in m.__dict__ for m in tiny_lm.model.modules())
