"""The two evaluations end to end: an oracle decoder scores 1, a tiny random model runs through
the registry on the wamerican word list, the covariates equal brute force, the correlation
statistics equal their textbook definitions, and bad parameters or targets are typed errors."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_charbench.covariates import average_ranks, point_biserial, spearman
from tokensmith_charbench.evaluation import CharBench, CharBenchCovariates

from tokensmith import (
    BuildContext,
    ConfigError,
    IncompatibleComponentsError,
    PipelineSpec,
    Runtime,
    tiny_tokenizer,
)

WORDS = (
    "abcd",
    "wxyz",
    "abab",
    "Mama",
    "peels",
    "apple",
    "Lilly",
    "fluff",
    "banana",
    "coffee",
    "cattle",
    "Hannah",
    "balloon",
    "bottles",
    "letters",
    "Arrange",
)


class _ChatPipeline:
    """A stand-in pipeline for the oracle: a tokenizer with ChatML markers and an LM object the
    decoder prologue accepts (the oracle never runs a model)."""

    def __init__(self, chat_tokenizer):
        import types

        self.tokenizer = chat_tokenizer
        self.lm = types.SimpleNamespace(tokenizer=chat_tokenizer, counters={"forward_calls": 0})


def test_an_oracle_scores_one_through_the_chat_template(oracle_registry, chat_tokenizer):
    from .conftest import Oracle

    ev = CharBench(
        words=WORDS,
        sample=1,
        min_length=4,
        max_length=7,
        decoder="oracle",
        ctx=BuildContext(runtime=Runtime(device="cpu"), registry=oracle_registry),
    )
    report = ev.run(_ChatPipeline(chat_tokenizer))
    assert report.metrics["accuracy"] == 1.0 and report.metrics["parse_failure_rate"] == 0.0
    assert report.metrics["items"] == 16 and all(report.metrics[f"accuracy_{t}"] == 1.0 for t in ev.tasks)
    assert all(
        p.startswith("<|im_start|>user\nAnswer this question only with the final number")
        and p.endswith("<|im_end|>\n<|im_start|>assistant\n")
        for p in Oracle.prompts
    )
    items = report.tables[-1]
    assert len(items.rows) == 16 and {row[6] for row in items.rows} == {1}


def test_a_tiny_model_runs_through_the_registry_on_the_word_list(installed_registry):
    pytest.importorskip("tokensmith_datasets")
    pipeline = installed_registry.build_pipeline(PipelineSpec(model="tiny-llama", runtime={"device": "cpu"}))
    ev = installed_registry.build("evaluation", {"type": "charbench", "max_new_tokens": 2})
    report = ev.run(pipeline, quick=True)
    m = report.metrics
    assert m["items"] == 4 * 7 and 0.0 <= m["accuracy"] <= 1.0
    words = [row[1] for row in report.tables[-1].rows]
    assert all(4 <= len(w) <= 10 and w.isascii() and w.isalpha() for w in words)
    # the same parameters give the same items in the covariates evaluation
    cov = installed_registry.build("evaluation", "charbench-covariates").run(pipeline.tokenizer, quick=True)
    assert [row[1] for row in cov.tables[0].rows] == [7] * 4
    assert {s.group for s in report.series} == {
        "accuracy by word length",
        "indexing accuracy by target token length",
    }


def test_the_covariates_are_the_means_of_brute_force_counts():
    tokenizer = tiny_tokenizer()
    ev = CharBenchCovariates(words=WORDS, sample=1, min_length=4, max_length=7)
    report = ev.run(tokenizer)
    items = ev.items()
    counts = [len(tokenizer.encode(i.word).ids) for i in items]
    assert report.metrics["mean_tokens_per_word"] == pytest.approx(statistics.fmean(counts))
    assert report.metrics["mean_compression_rate"] == pytest.approx(
        statistics.fmean(len(i.word) / c for i, c in zip(items, counts))
    )
    assert report.metrics["mean_target_token_length"] >= 1.0


def _ranks_brute(values):
    return [sum(v < x for v in values) + (sum(v == x for v in values) + 1) / 2 for x in values]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.booleans()), min_size=3, max_size=30))
def test_point_biserial_and_spearman_equal_their_definitions(pairs):
    x = [float(v) for v, _ in pairs]
    y = [c for _, c in pairs]
    ones = [v for v, c in pairs if c]
    zeros = [v for v, c in pairs if not c]
    r = point_biserial(x, y)
    if not ones or not zeros or len(set(x)) == 1:
        assert r is None
    else:
        # r_pb = (M1 - M0) / s_n * sqrt(p q), with the population standard deviation s_n
        p = len(ones) / len(x)
        expected = (
            (statistics.fmean(ones) - statistics.fmean(zeros)) / statistics.pstdev(x) * math.sqrt(p * (1 - p))
        )
        assert r == pytest.approx(expected, abs=1e-9)
    assert average_ranks(x) == _ranks_brute(x)
    if len(set(x)) == len(x):  # no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1))
        z = [float(i * 7 % len(x)) for i in range(len(x))]
        if len(set(z)) == len(z):
            n = len(x)
            d2 = sum((a - b) ** 2 for a, b in zip(_ranks_brute(x), _ranks_brute(z)))
            assert spearman(x, z) == pytest.approx(1 - 6 * d2 / (n * (n * n - 1)), abs=1e-9)


def test_bad_parameters_and_targets_are_typed_errors(installed_registry, chat_tokenizer):
    with pytest.raises(ConfigError, match="tasks"):
        installed_registry.build("evaluation", {"type": "charbench", "tasks": ["count_vowels"]})
    with pytest.raises(ConfigError, match="min_length"):
        installed_registry.build("evaluation", {"type": "charbench", "min_length": 8, "max_length": 5})
    with pytest.raises(IncompatibleComponentsError, match="causal language model"):
        CharBench(words=WORDS).run(tiny_tokenizer())
    with pytest.raises(IncompatibleComponentsError, match="ChatML"):
        CharBench(words=WORDS, sample=1, min_length=4, max_length=7, chat="chatml")._prompt(
            tiny_tokenizer(), "q"
        )


@pytest.mark.smollm2
def test_smollm2_token_spans_cover_every_word_of_the_default_items(smollm2):
    _, tokenizer = smollm2
    report = CharBenchCovariates(sample=2).run(tokenizer)
    assert report.metrics["items"] == 2 * 4 * 7
    assert 1.0 <= report.metrics["mean_target_token_length"] <= 10.0
    assert report.metrics["mean_tokens_per_word"] > 1.0
