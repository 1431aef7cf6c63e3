"""`tokensmith eval` and `tokensmith bench` run registered evaluations and benchmarks — here a
third party's, registered in-process — and write JSON + PNG (+ Markdown) and a terminal table;
`tokensmith demo` collects the sections' Reports."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics

import attrs
import pytest

import tokensmith
import tokensmith.cli as cli
from tokensmith import (
    Benchmark,
    Component,
    Demo,
    Evaluation,
    Report,
    Series,
    Table,
    compare,
    hookimpl,
    positive_int,
    score_texts,
)

WORDS = ("the", "tokenizer", "splits", "unusual", "words", "into", "pieces")
TEXTS = ("The capital of France is Paris.", "A tokenizer splits text into tokens.")


@attrs.define
class Fertility(Evaluation):
    """Tokens per word of a tokenizer (a pipeline's, or one given alone)."""

    name = "fertility"
    targets = ("pipeline", "tokenizer")
    words: tuple[str, ...] = WORDS

    def run(self, target, *, quick=False):
        tok = self.tokenizer_of(target)
        words = self.words[:2] if quick else self.words
        counts = [len(tok.encode(w).ids) for w in words]
        single = sum(c == 1 for c in counts) / len(counts)
        return Report(name="fertility", metrics={"fertility": statistics.mean(counts),
                                                 "single_token_words": single},
                      tables=(Table("tokens per word", ("word", "tokens"), tuple(zip(words, counts))),),
                      series=(Series("tokens", words, counts, plot="bar"),))


@attrs.define
class TextBitsPerByte(Evaluation):
    """Bits per byte of a few sentences under the pipeline's LM: it needs a model."""

    name = "text-bpb"

    def run(self, target, *, quick=False):
        score = score_texts(target.lm, TEXTS[:1] if quick else TEXTS)
        return Report(name="text-bpb", metrics=score.metrics(),
                      series=(Series("nll", ("texts",), (score.nll,), plot="bar"),))


class NotAReport(Evaluation):
    name = "broken"

    def run(self, target, *, quick=False):
        return [1, 2, 3]


@attrs.define
class SortBench(Benchmark):
    """sorted() of reversed data against sorted() of shuffled data, in the same run."""

    name = "sorting"
    n: int = attrs.field(default=2000, validator=positive_int)

    def run(self, *, quick=False):
        n = min(self.n, 200) if quick else self.n
        reversed_data = list(range(n, 0, -1))
        shuffled = sorted(reversed_data, key=lambda v: (v * 7919) % n)
        result = compare(lambda: sorted(reversed_data), lambda: sorted(shuffled), repeats=3)
        return Report(name="sorting", metrics={"n": n, **result.metrics("reversed")},
                      series=(Series("best seconds", ("shuffled", "reversed"),
                                     (result.baseline.best, result.technique.best), plot="bar"),))


class WordsDemo(Demo):
    name = "words"

    def run(self, pipeline, out):
        counts = [len(pipeline.tokenizer.encode(w).ids) for w in WORDS]
        print(f"{len(WORDS)} words take {sum(counts)} tokens", file=out)
        return Report(name="words", metrics={"tokens": sum(counts)},
                      tables=(Table("tokens per word", ("word", "tokens"), tuple(zip(WORDS, counts))),))


class ThirdParty:
    """A plugin object as a third party would register it (hookimpls only)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @hookimpl
    def tokensmith_register_evaluations(self):
        return [Component("fertility", Fertility, "tokens per word"),
                Component("text-bpb", TextBitsPerByte, "bits per byte of two sentences"),
                Component("broken", NotAReport, "returns a list")]

    @hookimpl
    def tokensmith_register_benchmarks(self):
        return [Component("sorting", SortBench, "sorted(): reversed vs shuffled input")]

    @hookimpl
    def tokensmith_register_demos(self):
        return [Component("words", WordsDemo, "tokens per word")]

    @hookimpl
    def tokensmith_register_tokenizers(self):
        return [Component("tiny", lambda: self.tokenizer, "the tiny test tokenizer")]


@pytest.fixture
def registry(make_registry, tiny_tokenizer, monkeypatch):
    reg = make_registry(ThirdParty(tiny_tokenizer))
    monkeypatch.setattr(cli, "_registry", lambda: reg)
    return reg


HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_third_party_benchmark_writes_json_png_markdown_and_a_table(registry, capsys, tmp_path):
    code, out, err = run(capsys, "bench", "sorting", "--out", str(tmp_path), "--quick", "-p", "n=150")
    assert code == 0, err
    files = {p.name for p in tmp_path.iterdir()}
    if HAVE_MATPLOTLIB:
        assert files == {"sorting.json", "sorting.png", "sorting.md"}
        assert (tmp_path / "sorting.png").read_bytes().startswith(b"\x89PNG")
    else:  # the PNG is the optional bench extra; JSON and Markdown say it is missing
        assert files == {"sorting.json", "sorting.md"}
        assert "no PNG: matplotlib" in (tmp_path / "sorting.md").read_text()
    report = Report.from_json((tmp_path / "sorting.json").read_text())
    assert report.metrics["n"] == 150
    assert report.metrics["reversed_ratio"] == pytest.approx(report.metrics["reversed_s"]
                                                             / report.metrics["reversed_baseline_s"])
    assert report.provenance.created and report.provenance.plugins["tokensmith"]
    assert "sorting" in out and "reversed_ratio" in out and "\x1b[" not in out  # plain off a TTY
    assert "sorting.json" in out


def test_bench_lists_when_the_name_is_missing_and_suggests_when_it_is_wrong(registry, capsys):
    code, out, _ = run(capsys, "bench")
    assert code == 0 and "sorting" in out and "sorted(): reversed vs shuffled input" in out
    code, _, err = run(capsys, "bench", "sortin")
    assert code == 2 and "did you mean 'sorting'" in err and "installed benchmarks: sorting" in err
    assert "Traceback" not in err
    code, out, _ = run(capsys, "eval")
    assert code == 0 and "fertility" in out and "text-bpb" in out


def test_bad_parameters_fail_before_the_run(registry, capsys, tmp_path):
    code, _, err = run(capsys, "bench", "sorting", "-p", "n=-3", "--out", str(tmp_path))
    assert code == 2 and "'n'" in err and "sorting" in err
    code, _, err = run(capsys, "bench", "sorting", "-p", "size=3", "--out", str(tmp_path))
    assert code == 2 and "size" in err
    code, _, err = run(capsys, "eval", "fertility", "-p", "words=3", "--tokenizer", "tiny",
                       "--out", str(tmp_path))
    assert code == 2 and "words" in err
    assert not list(tmp_path.iterdir())


def test_a_tokenizer_evaluation_runs_on_a_tokenizer_and_on_a_pipeline(registry, capsys, tmp_path,
                                                                      tiny_tokenizer):
    expected = statistics.mean(len(tiny_tokenizer.encode(w).ids) for w in WORDS)
    code, out, err = run(capsys, "eval", "fertility", "--tokenizer", "tiny", "--out", str(tmp_path / "a"),
                         "--json")
    assert code == 0, err
    report = Report.from_json(out)
    assert report.metrics["fertility"] == pytest.approx(expected)
    assert report == Report.from_json((tmp_path / "a" / "fertility.json").read_text())
    assert ("fertility.png" in err) == HAVE_MATPLOTLIB  # with --json, stdout is the JSON alone
    assert "fertility.json" in err
    code, out, err = run(capsys, "eval", "fertility", "--model", "tiny-llama", "--device", "cpu", "--quick",
                         "--out", str(tmp_path / "b"))
    assert code == 0, err
    report = Report.from_json((tmp_path / "b" / "fertility.json").read_text())
    assert report.provenance.model == "tiny-llama" and report.provenance.runtime["device"] == "cpu"
    assert report.tables[0].rows == tuple((w, len(tiny_tokenizer.encode(w).ids)) for w in WORDS[:2])
    assert "tokens per word" in out


def test_a_model_evaluation_needs_a_pipeline(registry, capsys, tmp_path):
    code, _, err = run(capsys, "eval", "text-bpb", "--tokenizer", "tiny", "--out", str(tmp_path))
    assert code == 2 and "needs a model" in err and "--pipeline" in err
    toml = tmp_path / "p.toml"
    toml.write_text('[runtime]\ndevice = "cpu"\n[model]\nsource = "tiny-llama"\n')
    code, out, err = run(capsys, "eval", "text-bpb", "--pipeline", str(toml), "--out", str(tmp_path),
                         "--json")
    assert code == 0, err
    m = Report.from_json(out).metrics
    assert m["bits_per_byte"] == pytest.approx(m["nll"] / math.log(2) / m["bytes"])
    assert m["bytes"] == sum(len(t.encode()) for t in TEXTS)


def test_a_component_that_returns_no_report_is_a_one_line_error(registry, capsys, tmp_path):
    code, _, err = run(capsys, "eval", "broken", "--tokenizer", "tiny", "--out", str(tmp_path))
    assert code == 2
    code, _, err = run(capsys, "eval", "broken", "--model", "tiny-llama", "--device", "cpu",
                       "--out", str(tmp_path))
    assert code == 2 and "returned list, not a tokensmith.Report" in err and "Traceback" not in err


def test_run_renders_a_pipeline_evaluation(registry, capsys, tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text('[runtime]\ndevice = "cpu"\n[model]\nsource = "tiny-llama"\n'
                    '[evaluation]\ntype = "fertility"\nwords = ["the", "words"]\n')
    code, out, err = run(capsys, "run", str(toml))
    assert code == 0, err
    assert "fertility" in out and "tokens per word" in out


def test_demo_collects_the_sections_reports(registry, capsys, tmp_path, tiny_tokenizer):
    code, out, err = run(capsys, "demo", "--model", "tiny-llama", "--device", "cpu", "--only", "words",
                         "--out", str(tmp_path / "reports"), "--json", str(tmp_path / "demo.json"))
    assert code == 0, err
    total = sum(len(tiny_tokenizer.encode(w).ids) for w in WORDS)
    assert f"{len(WORDS)} words take {total} tokens" in out
    sections = json.loads((tmp_path / "demo.json").read_text())
    assert Report.from_dict(sections["words"]).metrics == {"tokens": total}
    assert Report.from_json((tmp_path / "reports" / "words.json").read_text()).metrics == {"tokens": total}


def test_eval_and_bench_help(capsys):
    for command in ("eval", "bench"):
        with pytest.raises(SystemExit) as info:
            cli.main([command, "--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        assert "--out" in text and "--quick" in text and "--param" in text


def test_a_benchmark_measures_on_the_registry_that_built_it(make_registry):
    import types

    from tokensmith import Benchmark, default_registry

    class Plain(Benchmark):
        def run(self, *, quick=False):
            return Report("plain")

    mine = make_registry()
    bench = Plain()
    assert bench.registry() is default_registry()
    bench.ctx = types.SimpleNamespace(registry=mine)
    assert bench.registry() is mine
    pipeline = bench.cpu_pipeline("tiny-llama", threads=1)
    assert pipeline.runtime.device == "cpu" and pipeline.runtime.threads == 1 and pipeline.lm is not None


def test_lm_of_gives_the_pipeline_lm_or_names_the_evaluation():
    class NeedsLM(tokensmith.Evaluation):
        name = "needs-lm"

        def run(self, target, *, quick=False):
            raise AssertionError("not run")

    lm = object()
    assert NeedsLM().lm_of(type("P", (), {"lm": lm})()) is lm
    with pytest.raises(tokensmith.IncompatibleComponentsError, match="causal language model") as err:
        NeedsLM().lm_of(object())
    assert "needs-lm" in str(err.value) and "--model" in str(err.value)
