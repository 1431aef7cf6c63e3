"""The shared sampling filter (temperature, top-k, nucleus) and config validators."""

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import filtered_probs, non_negative, positive, probability


@settings(max_examples=80, deadline=None)
@given(logits=st.lists(st.floats(-20, 20), min_size=2, max_size=30), k=st.integers(0, 30),
       p=st.floats(0.05, 1.0), t=st.floats(0.1, 3.0))
def test_filtered_probs_properties(logits, k, p, t):
    lp = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), 0)
    probs = filtered_probs(lp, t, k, p)
    assert probs.sum().item() == pytest.approx(1.0) and (probs >= 0).all()
    kept = int((probs > 0).sum())
    if k:
        assert kept <= max(k, int((lp >= torch.topk(lp, min(k, len(logits))).values[-1]).sum()))
    if p < 1.0 and not k:
        base = torch.softmax(lp / t, 0)
        order = base.sort(descending=True).values
        needed = int((order.cumsum(0) - order < p).sum())
        assert kept == needed


def test_validators():
    @attrs.frozen
    class C:
        a: float = attrs.field(default=1.0, validator=positive)
        b: int = attrs.field(default=0, validator=non_negative)
        c: float = attrs.field(default=1.0, validator=probability)

    C()
    for bad, word in (({"a": 0}, "a must be > 0"), ({"b": -1}, "b must be >= 0"),
                      ({"c": 0}, r"c must be in \(0, 1\]"), ({"c": 1.5}, "c must be in")):
        with pytest.raises(ValueError, match=word):
            C(**bad)


@pytest.mark.parametrize("bad", ["hot", None, True, float("nan"), float("inf"), [1]])
def test_validators_refuse_wrong_types_with_a_message(bad):
    """--param temperature=hot used to give "'<=' not supported between 'str' and 'int'"."""
    @attrs.define
    class C:
        a: float = attrs.field(default=1.0, validator=positive)

    with pytest.raises((TypeError, ValueError), match="a must be"):
        C(a=bad)


def test_the_shared_validators_raise_typed_errors():
    from tokensmith import ConfigError, ParameterTypeError

    @attrs.define
    class C:
        a: float = attrs.field(default=1.0, validator=positive)

    with pytest.raises(ParameterTypeError, match="a must be a number"):
        C(a="hot")
    with pytest.raises(ConfigError, match="a must be > 0"):
        C(a=0)
