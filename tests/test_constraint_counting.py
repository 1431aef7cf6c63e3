"""Combined constraints count every part's checks; a Generation keeps "rejected" and
"truncated" apart."""

from __future__ import annotations

import math

import pytest

from tokensmith import AllOf, AnyOf, FunctionConstraint, Generation


def _parts():
    short = FunctionConstraint(lambda b: len(b) <= 2, name="short")
    digits = FunctionConstraint(lambda b: b.isdigit() or b == b"", name="digits")
    return short, digits


def test_all_of_counts_every_part_it_evaluates():
    short, digits = _parts()
    both = short & digits
    assert both.allows(b"12") and both.checks == 2  # both parts evaluated
    assert not both.allows(b"123") and both.checks == 3  # short-circuits after "short" fails
    assert both.accepts(b"1") and both.checks == 5
    assert (short.checks, digits.checks) == (3, 2)


def test_nested_combinations_count_the_leaves_and_the_same_part_twice():
    short, digits = _parts()
    nested = AnyOf(AllOf(short, digits), short)
    assert nested.allows(b"ab")  # (short ok, digits no) then short again
    assert nested.checks == 3 and short.checks == 2
    nested.reset_counters()
    assert nested.checks == 0 and short.checks == 0 and digits.checks == 0


def test_through_parts_counts_a_decoders_own_per_part_check():
    short, digits = _parts()
    both = short & digits
    seen = []

    def own_check(part):
        part.checks += 1  # a decoder's incremental check counts itself on the part
        seen.append(part.name)
        return True

    assert both.through_parts(own_check) and both.checks == 2 and seen == ["short", "digits"]
    # a part evaluated by something that does not count still costs one check
    assert both.through_parts(lambda part: True) and both.checks == 4


def test_a_combination_refuses_text():
    from tokensmith import InputError

    with pytest.raises(InputError):
        AllOf(*_parts()).allows("12")  # type: ignore[arg-type]


def test_generation_keeps_rejected_and_truncated_apart():
    rejected = Generation("", b"", (), log_weight=-math.inf, finish_reason="rejected")
    truncated = Generation("ab", b"ab", (1, 2), log_weight=-math.inf, finish_reason="length",
                           prefix_log_weight=math.log(0.25))
    assert rejected.rejected and not rejected.truncated and rejected.prefix_log_weight is None
    assert truncated.truncated and not truncated.rejected
    assert truncated.prefix_log_weight == pytest.approx(math.log(0.25))
    assert Generation("a", b"a", (1,)).prefix_log_weight is None


def test_cli_says_why_a_weight_is_minus_infinity(capsys):
    from tokensmith.cli import _print_generation

    _print_generation("p", Generation("", b"", (), log_weight=-math.inf, finish_reason="rejected"), 1.0)
    assert "rejected" in capsys.readouterr().out
    _print_generation("p", Generation("ab", b"ab", (1,), log_weight=-math.inf, finish_reason="length",
                                      prefix_log_weight=-1.5), 1.0)
    out = capsys.readouterr().out
    assert "truncated" in out and "weight so far -1.5" in out
