"""The core bench helpers: timing arithmetic (best of n, same-run ratios) on a scripted clock,
bits per byte and perplexity (exact arithmetic, and a brute-force token-by-token check on a tiny
model), resident and tensor memory."""

from __future__ import annotations

import math
import statistics

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import (
    Comparison,
    InputError,
    TextScore,
    Timing,
    best_of,
    bits_per_byte,
    compare,
    peak_rss,
    perplexity,
    ratio,
    score_texts,
)

durations = st.lists(st.floats(1e-6, 1e3, allow_nan=False), min_size=1, max_size=12)


class ScriptedClock:
    """A clock that advances by the next scripted step at every reading, and a log of calls."""

    def __init__(self, steps):
        self.steps, self.now, self.log = list(steps), 0.0, []

    def __call__(self):
        self.now += self.steps.pop(0) if self.steps else 0.0
        return self.now

    def fn(self, label):
        return lambda: self.log.append(label)


@given(durations)
def test_best_of_times_each_repeat_after_the_warm_up(seconds):
    # each timed call reads the clock twice: the step before the first reading is not counted
    clock = ScriptedClock([x for s in seconds for x in (1.0, s)])
    timing = best_of(clock.fn("f"), repeats=len(seconds), warmup=2, clock=clock)
    assert clock.log == ["f"] * (len(seconds) + 2)
    assert timing.seconds == pytest.approx(seconds, rel=1e-9, abs=1e-9)
    assert timing.best == pytest.approx(min(seconds), rel=1e-9, abs=1e-9) and timing.warmup == 2
    assert timing.median == pytest.approx(statistics.median(timing.seconds))


@given(durations, durations)
def test_same_run_ratios(technique, baseline):
    n = min(len(technique), len(baseline))
    technique, baseline = technique[:n], baseline[:n]
    c = Comparison(Timing(tuple(technique)), Timing(tuple(baseline)))
    assert c.ratio == min(technique) / min(baseline)
    assert c.paired_ratio == statistics.median(t / b for t, b in zip(technique, baseline))
    metrics = c.metrics("step")
    assert metrics["step_ratio"] == c.ratio and metrics["step_baseline_s"] == min(baseline)
    assert all(math.isfinite(v) for v in metrics.values())


def test_compare_interleaves_baseline_then_technique():
    clock = ScriptedClock([0.0, 2.0, 0.0, 1.0] * 3)  # each round: baseline 2 s, technique 1 s
    log = []
    c = compare(lambda: log.append("T"), lambda: log.append("B"), repeats=3, warmup=1, clock=clock)
    assert log == ["B", "T"] + ["B", "T"] * 3
    assert c.technique.seconds == (1.0,) * 3 and c.baseline.seconds == (2.0,) * 3
    assert c.ratio == c.paired_ratio == 0.5


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_a_ratio_against_nothing_is_an_input_error(bad):
    with pytest.raises(InputError, match="baseline|finite"):
        ratio(1.0, bad)


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"repeats": 1.5}, {"warmup": -1}, {"repeats": True}])
def test_bad_repeat_counts(kwargs):
    with pytest.raises(InputError):
        best_of(lambda: None, **kwargs)
    with pytest.raises(InputError):
        compare(lambda: None, lambda: None, **kwargs)


@pytest.mark.parametrize("seconds", [(), (-1.0,), (math.nan,)])
def test_a_timing_holds_durations(seconds):
    with pytest.raises(InputError):
        Timing(seconds)


@given(st.floats(0, 1e6, allow_nan=False), st.integers(1, 10**6), st.integers(1, 10**6))
def test_bits_per_byte_and_perplexity_arithmetic(nll, tokens, n_bytes):
    bpb = bits_per_byte(nll, n_bytes)
    assert bpb == pytest.approx(nll / math.log(2) / n_bytes)
    assert bpb * n_bytes * math.log(2) == pytest.approx(nll, abs=1e-9)
    if nll / tokens <= 700:
        ppl = perplexity(nll, tokens)
        assert ppl >= 1.0 and math.log(ppl) == pytest.approx(nll / tokens, abs=1e-9)
        score = TextScore(nll, tokens, n_bytes)
        # bits per byte = log2(perplexity) x tokens per byte
        assert score.bits_per_byte == pytest.approx(math.log2(score.perplexity) * tokens / n_bytes, abs=1e-9)
        assert score.bits_per_token == pytest.approx(math.log2(ppl), abs=1e-9)


@pytest.mark.parametrize("nll,count", [(-0.5, 3), (math.nan, 3), (math.inf, 3), (1.0, 0), (1.0, 2.5),
                                       (1.0, True)])
def test_bad_bits_per_byte_inputs(nll, count):
    with pytest.raises(InputError):
        bits_per_byte(nll, count)
    with pytest.raises(InputError):
        perplexity(nll, count)


def test_a_perplexity_too_large_for_a_float_is_an_input_error():
    with pytest.raises(InputError, match="too large"):
        perplexity(1e6, 1)


def test_bits_per_byte_on_a_tiny_model_equals_brute_force(tiny_lm):
    """Sum of -log2 p over the tokens, one cached step at a time, over the UTF-8 bytes."""
    texts = ("The capital of France is Paris.", "naïve café — 東京")
    bits, n_bytes = 0.0, 0
    for text in texts:
        state = tiny_lm.start(list(tiny_lm.start_ids))
        for token in tiny_lm.tokenizer.encode(text).ids:
            bits -= float(state.logprobs[token]) / math.log(2)
            state = tiny_lm.extend(state, [token])
        n_bytes += len(text.encode("utf-8"))
    score = score_texts(tiny_lm, texts)
    assert score.bytes == n_bytes == 31 + 23
    assert score.tokens == sum(len(tiny_lm.tokenizer.encode(t).ids) for t in texts)
    assert score.bits_per_byte == pytest.approx(bits / n_bytes, rel=1e-5)
    with pytest.raises(InputError):
        score_texts(tiny_lm, ["ok", ""])


def test_peak_rss_sees_a_temporary_allocation():
    with peak_rss() as measured:
        block = bytearray(64 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        del block
    if measured.peak is None:
        pytest.skip("no /proc and no resource module here")
    if measured.scoped:
        assert measured.increase >= 48 * 2**20
    assert measured.peak >= 64 * 2**20


def test_tensor_bytes_counts_each_storage_once():
    import torch

    from tokensmith import tensor_bytes

    a = torch.zeros(1000, dtype=torch.float32)
    b = torch.zeros(10, 10, dtype=torch.float64)
    model = torch.nn.Linear(4, 3)

    @attrs.define
    class State:
        cache: tuple
        model: torch.nn.Module

    state = State(cache=({"k": a, "v": a[:10]}, [b, b.t()]), model=model)
    assert tensor_bytes(state) == 4000 + 800  # a's view and b's transpose share their storages
    assert tensor_bytes(state, modules=True) == 4000 + 800 + (12 + 3) * 4
    assert tensor_bytes(a, a, [a]) == 4000 and tensor_bytes(None, 3, "x") == 0


def test_live_and_peak_tensor_bytes_on_cpu():
    import torch

    from tokensmith import live_tensor_bytes, tensor_peak

    before = live_tensor_bytes("cpu")
    with tensor_peak("cpu") as measured:
        kept = torch.ones(2**18)  # 1 MiB
    assert live_tensor_bytes("cpu") - before >= 2**20
    assert measured.increase >= 2**20 and not measured.exact and kept.sum() == 2**18


@pytest.mark.skipif("not __import__('torch').cuda.is_available()")
def test_tensor_peak_on_cuda_sees_a_freed_temporary():
    import torch

    from tokensmith import tensor_peak

    with tensor_peak("cuda") as measured:
        tmp = torch.ones(2**20, device="cuda")  # 4 MiB, freed inside the block
        del tmp
    assert measured.exact and measured.increase >= 4 * 2**20


@settings(max_examples=25)
@given(st.lists(st.floats(1e-3, 10, allow_nan=False), min_size=1, max_size=6))
def test_comparison_metrics_go_into_a_report(seconds):
    from tokensmith import Report

    c = Comparison(Timing(tuple(seconds)), Timing(tuple(reversed(seconds))))
    assert Report(name="r", metrics=c.metrics("x")).metrics["x_ratio"] == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(["a", "é", "東", "😀", "\n", " ", "\r", "\x85"]), max_size=80),
       st.integers(min_value=4, max_value=24))
def test_text_pieces_join_back_and_fit_the_byte_budget(text, limit):
    from tokensmith import text_pieces

    pieces = text_pieces(text, limit)
    assert "".join(pieces) == text
    assert all(p and len(p.encode("utf-8")) <= limit for p in pieces)


def test_text_pieces_cut_after_line_breaks_when_lines_fit_and_refuse_bad_input():
    from tokensmith import InputError, text_pieces

    assert text_pieces("ab\ncd\nef\n", 6) == ["ab\ncd\n", "ef\n"]
    assert text_pieces("", 8) == []
    with pytest.raises(InputError, match="max_bytes"):
        text_pieces("abc", 3)
    with pytest.raises(InputError, match="needs a str"):
        text_pieces(b"abc", 8)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-4, 4), min_size=3, max_size=15), st.randoms(use_true_random=False))
def test_spearman_is_pearson_of_average_ranks_against_brute_force(x, rnd):
    from tokensmith import average_ranks, pearson, spearman

    y = list(x)
    rnd.shuffle(y)
    ranks = average_ranks(x)
    for i, v in enumerate(x):  # brute force: 1 + the smaller values + half the other ties
        assert ranks[i] == 1 + sum(w < v for w in x) + (sum(w == v for w in x) - 1) / 2
    if len(set(x)) == 1:
        assert pearson(x, y) is None and spearman(x, y) is None
        return
    mean_x, mean_y = statistics.fmean(x), statistics.fmean(y)
    cov = sum((a - mean_x) * (b - mean_y) for a, b in zip(x, y))
    expected = cov / math.sqrt(sum((a - mean_x) ** 2 for a in x) * sum((b - mean_y) ** 2 for b in y))
    assert pearson(x, y) == pytest.approx(expected, abs=1e-12)
    assert spearman(x, x) == pytest.approx(1.0) and spearman(x, [-v for v in x]) == pytest.approx(-1.0)


def test_correlations_are_undefined_on_too_few_points_and_refuse_unequal_lengths():
    from tokensmith import InputError, pearson, spearman

    assert pearson([1, 2], [2, 1]) is None and spearman([1.0], [2.0]) is None
    with pytest.raises(InputError, match="one length"):
        pearson([1, 2, 3], [1, 2])
