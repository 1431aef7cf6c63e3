"""The ``dynamic-tokenization`` evaluation on a tiny model: zero merges is the core's bits per byte
of the same passages, the curve is monotone, the corpus is streamed (never read past the
sample), bad input is a clear error naming the evaluation, and a third-party initializer
composes by name."""

from __future__ import annotations

import math

import attrs
import pytest
from tokensmith_dynamic_tokenization import plugin as dynamic_plugin

from tokensmith import (
    Component,
    InputError,
    PipelineSpec,
    Registry,
    SplitDataset,
    UnknownComponentError,
    hookimpl,
    score_texts,
)

SENTENCES = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software. "
    "The above copyright notice and this permission notice shall be included in all copies. "
)


@attrs.define(kw_only=True)
class Notices(SplitDataset):
    """Licence-like documents; reading past ``fail_after`` raises (a stand-in for a huge corpus)."""

    name = "notices"
    fields = {"text": "a document", "n": "its number"}
    fail_after: int = 10**9

    def records(self):
        for n in range(40):
            if n >= self.fail_after:
                raise AssertionError(f"the corpus was read past document {self.fail_after}")
            yield str(n), {"text": SENTENCES * (1 + n % 3) + f"Document {n}.", "n": n}


@attrs.define(kw_only=True)
class Empty(SplitDataset):
    name = "empty-corpus"
    fields = {"text": "nothing"}

    def records(self):
        yield from ()


class Data:
    @hookimpl
    def tokensmith_register_datasets(self):
        return [
            Component("notices", Notices, "licence-like documents"),
            Component("empty-corpus", Empty, "no documents"),
        ]


@pytest.fixture(scope="module")
def registry(third_party):
    plugins = (dynamic_plugin, Data(), third_party)
    return Registry.from_environment(plugins=plugins, entry_points=False, env={})


@pytest.fixture(scope="module")
def pipeline(registry):
    return registry.build_pipeline(PipelineSpec(model="tiny-llama", runtime={"device": "cpu", "seed": 0}))


PARAMS = {
    "dataset": {"type": "notices", "eval_fraction": 0.0},
    "split": "all",
    "sample": 6,
    "batch_size": 3,
    "passage_chars": 120,
    "merges": [0, 4, 16, 64],
    "target_reductions": [0.05, 0.2],
    "micro_batch": 6,
}


def test_the_curve_over_merges(registry, pipeline):
    evaluation = registry.build("evaluation", {"type": "dynamic-tokenization", **PARAMS})
    report = evaluation.run(pipeline)
    m = report.metrics
    # zero merges is the model's own tokenization: the core's bits per byte of the same passages
    counts = {"documents": 0, "empty_documents": 0}
    passages = [p for p, _ in evaluation.passages(pipeline.tokenizer, sample=6, counts=counts)]
    assert len(passages) == m["passages"] == 6 and counts["documents"] == 3  # 2 passages per document
    core = score_texts(pipeline.lm, passages)
    assert math.isclose(m["base_bits_per_byte"], core.bits_per_byte, rel_tol=1e-5)
    assert m["base_tokens"] == core.tokens and m["bytes"] == core.bytes
    curve = report.tables[0]
    assert [row[0] for row in curve.rows] == [0, 4, 16, 64]
    tokens = [row[1] for row in curve.rows]
    assert tokens[0] == core.tokens and all(a > b for a, b in zip(tokens, tokens[1:]))
    assert m["reduction_at_max_merges"] == pytest.approx(1 - tokens[-1] / tokens[0])
    # the prefill continuation is the same text at every merge count; its context gets shorter
    prefill = [row[-2] for row in curve.rows]
    assert prefill[0] == 0 and all(a < b for a, b in zip(prefill, prefill[1:]))
    assert m["merges_for_5pct_reduction"] <= m["merges_for_20pct_reduction"]
    assert {s.name for s in report.series} >= {"bits/byte (dynamic)", "length reduction"}


def test_the_corpus_is_streamed_and_sampled(registry, pipeline):
    # 4 passages = 2 documents: a corpus that fails when its third document is read still works
    params = {
        **PARAMS,
        "dataset": {"type": "notices", "eval_fraction": 0.0, "fail_after": 2},
        "sample": 4,
        "merges": [0, 8],
        "prefill": False,
    }
    report = registry.build("evaluation", {"type": "dynamic-tokenization", **params}).run(pipeline)
    assert report.metrics["passages"] == 4
    with pytest.raises(AssertionError, match="read past"):
        registry.build("evaluation", {"type": "dynamic-tokenization", **params, "sample": 5}).run(pipeline)
    quick = registry.build("evaluation", {"type": "dynamic-tokenization", **PARAMS}).run(pipeline, quick=True)
    assert quick.metrics["max_merges"] == 16 and any("quick" in n for n in quick.notes)


def test_a_third_party_initializer_composes_by_name(registry, pipeline, third_party):
    LastPiece = third_party.LastPiece
    LastPiece.calls.clear()
    params = {**PARAMS, "initializer": "last-piece", "merges": [0, 16], "prefill": False}
    report = registry.build("evaluation", {"type": "dynamic-tokenization", **params}).run(pipeline)
    assert LastPiece.calls and "last-piece" in " ".join(report.notes)


def test_bad_input_names_the_evaluation(registry, pipeline):
    build = lambda **kw: registry.build("evaluation", {"type": "dynamic-tokenization", **PARAMS, **kw})  # noqa: E731
    with pytest.raises(InputError, match="no field 'body'") as err:
        build(field="body").run(pipeline)
    assert "dynamic-tokenization" in str(err.value)
    with pytest.raises(InputError, match="gave no text"):
        build(dataset="empty-corpus").run(pipeline)
    with pytest.raises(Exception, match="embed_tokens"):
        build(initializer="plain-embedding").run(pipeline)
    with pytest.raises(UnknownComponentError):
        build(initializer="no-such-embedding").run(pipeline)
    for bad in (
        {"merges": [8, 4]},
        {"merges": []},
        {"target_reductions": [1.5]},
        {"boundary": "morpheme"},
        {"sample": 0},
        {"context_fraction": 1.0},
    ):
        with pytest.raises(Exception, match=next(iter(bad))):
            build(**bad)
    with pytest.raises(InputError, match="Tokenizer|pipeline"):
        build().run(pipeline.tokenizer)


def test_passages_cover_each_document_at_pre_token_boundaries(registry, pipeline):
    evaluation = registry.build("evaluation", {"type": "dynamic-tokenization", **PARAMS})
    tok = pipeline.tokenizer
    text = SENTENCES * 3
    pieces = evaluation._cut(tok, text)
    assert "".join(pieces) == text and len(pieces) > 1
    starts = {p.span[0] for p in tok.pretokenize(text)}
    at = 0
    for piece in pieces[:-1]:
        assert len(piece) >= PARAMS["passage_chars"]
        at += len(piece)
        assert at in starts
    cut = evaluation._context_cut(tok, pieces[0])
    assert cut in {p.span[0] for p in tok.pretokenize(pieces[0])} and 0 < cut < len(pieces[0])
