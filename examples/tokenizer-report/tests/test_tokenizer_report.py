"""tokenizer-report composes registered evaluations by name: fakes stand in for the other plugins'
(so these tests do not wait for them), one of them missing, one refusing a tokenizer."""

from __future__ import annotations

import importlib.util

import attrs
import pytest
from tokensmith_tokenizer_report import plugin as report_plugin

from tokensmith import (
    Component,
    ConfigError,
    Evaluation,
    IncompatibleComponentsError,
    Registry,
    Report,
    SplitDataset,
    hookimpl,
    tiny_tokenizer,
)


@attrs.define
class FakeMetrics(Evaluation):
    name = "tokenizer-metrics"
    targets = ("pipeline", "tokenizer")
    sample: int | None = 10
    dataset: str = "licenses"
    field: str = "text"
    dataset_options: dict = attrs.field(factory=dict)
    parallel: tuple[str, str] | None = None
    calls: list = attrs.field(factory=list, init=False)

    def run(self, target, *, quick=False):
        tok = self.tokenizer_of(target)
        return Report(name=self.name, metrics={"bytes_per_token": tok.vocab_size / 100, "fertility": 1.5,
                                               "renyi_efficiency": 0.4, "extra_metric": 7},
                      notes=(f"corpus: {self.dataset} sample {self.sample}",))


@attrs.define
class FakeIntegrity(Evaluation):
    """%TR/%Pure where a validator exists: it refuses the byte-fallback tokenizer."""

    name = "linguistic-integrity"
    targets = ("pipeline", "tokenizer")
    sample: int | None = 10
    language: str = "tr"

    def run(self, target, *, quick=False):
        tok = self.tokenizer_of(target)
        if tok.model_type != "byte-level-bpe":
            raise IncompatibleComponentsError("no validator for this tokenizer", component="evaluation")
        pure = 25.0 if self.language == "tr" else 0.0
        return Report(name=self.name, metrics={"tr_percent": 40.0, "pure_percent": pure})


class Fakes:
    @hookimpl
    def tokensmith_register_evaluations(self):
        return [Component("tokenizer-metrics", FakeMetrics, "fake"),
                Component("linguistic-integrity", FakeIntegrity, "fake")]


def registry_with(*plugins):
    return Registry.from_environment(plugins=(report_plugin, *plugins), entry_points=False, env={})


@pytest.fixture(scope="module")
def tokenizers():
    return {"byte": tiny_tokenizer("byte_level"), "fallback": tiny_tokenizer("byte_fallback")}


def test_one_table_a_row_per_tokenizer_and_notes_for_what_is_missing(tokenizers):
    registry = registry_with(Fakes())
    options = {"linguistic-integrity": {"language": "tr"}}
    report = registry.build("evaluation", {"type": "tokenizer-report", "sample": 50,
                                           "options": options}).run(tokenizers)
    table = report.tables[0]
    assert table.columns == ("tokenizer", "bytes_per_token", "fertility", "renyi_efficiency", "tr_percent",
                             "pure_percent")
    byte, fallback = table.rows
    assert byte == ("byte", 3.2, 1.5, 0.4, 40.0, 25.0)
    assert fallback[0] == "fallback" and fallback[4:] == (None, None)  # refused: empty cells
    assert any("linguistic-integrity on fallback: not measured (no validator" in n for n in report.notes)
    for missing, plugin in (("domain-terms", "tokensmith-kl3m"),
                            ("charbench-covariates", "tokensmith-charbench")):
        assert any(n.startswith(f"{missing}: not installed ({plugin})") for n in report.notes)
    assert report.metrics["byte.tokenizer-metrics.extra_metric"] == 7  # every metric is in the JSON
    assert {s.group for s in report.series} == {"compression", "shares", "percent"}
    assert "corpus: licenses sample 50" in " ".join(report.notes)  # sample reached the evaluation
    assert Report.from_json(report.to_json()) == report


def test_an_evaluation_it_does_not_know_shows_all_its_metrics(tokenizers):
    @attrs.define
    class Other(Evaluation):
        name = "other"
        targets = ("pipeline", "tokenizer")
        sample: int | None = None

        def run(self, target, *, quick=False):
            return Report(name="other", metrics={"b": 2.0, "a": 1.0})

    class Extra:
        @hookimpl
        def tokensmith_register_evaluations(self):
            return [Component("other", Other, "another tokenizer evaluation")]

    report = registry_with(Extra()).build("evaluation", {"type": "tokenizer-report",
                                                         "evaluations": ["other"]}).run(tokenizers["byte"])
    assert report.tables[0].columns == ("tokenizer", "a", "b")
    assert report.tables[0].rows == ((tokenizers["byte"].name, 1.0, 2.0),)


def test_nothing_installed_or_a_bad_option_is_a_config_error(tokenizers):
    with pytest.raises(ConfigError, match="none of the evaluations"):
        registry_with().build("evaluation", "tokenizer-report").run(tokenizers)
    with pytest.raises(ConfigError, match="options name.*domain-termz"):
        registry_with(Fakes()).build("evaluation", {"type": "tokenizer-report",
                                                    "options": {"domain-termz": {}}}).run(tokenizers)


@pytest.mark.skipif(importlib.util.find_spec("tokensmith_baselines") is None,
                    reason="tokenizer-metrics comes from tokensmith-baselines")
def test_with_the_real_tokenizer_metrics(tokenizers):
    from tokensmith_baselines import plugin as baselines

    @attrs.define(kw_only=True)
    class Lines(SplitDataset):
        name = "lines"
        fields = {"text": "a line"}

        def records(self):
            for i, text in enumerate(("the cat sat on the mat", "Naïve café", "def f(x): return x")):
                yield str(i), {"text": text}

    class Data:
        @hookimpl
        def tokensmith_register_datasets(self):
            return [Component("lines", Lines, "three lines")]

    registry = registry_with(baselines, Data())
    report = registry.build("evaluation", {"type": "tokenizer-report", "dataset": "lines", "parallel": None}
                            ).run(tokenizers)
    direct = registry.build("evaluation", {"type": "tokenizer-metrics", "dataset": "lines", "parallel": None,
                                           "sample": 2000})
    for label, tokenizer in tokenizers.items():
        expected = direct.run(tokenizer).metrics["fertility"]
        assert report.metrics[f"{label}.tokenizer-metrics.fertility"] == expected
    assert "parity" not in report.tables[0].columns
