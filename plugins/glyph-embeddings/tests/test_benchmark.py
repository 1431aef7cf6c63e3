"""The registered ``glyph-embeddings`` benchmark: seeded windows, held-out bits per byte against
a brute-force recomputation, and a short run through the recipe runner whose report agrees with
its runs (both models, the frozen table unchanged, the glyph pairs)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_glyph_embeddings.benchmark import (
    MODELS,
    build_model,
    chunks,
    held_out,
    measure,
    to_report,
    windows,
)

from tokensmith import Report


@settings(max_examples=25, deadline=None)
@given(length=st.integers(10, 200), context=st.integers(2, 9), n=st.integers(1, 8),
       seed=st.integers(0, 2**16))
def test_windows_are_seeded_slices_and_chunks_consecutive(length, context, n, seed):
    stream = list(range(length))
    rows = windows(stream, n, context, seed)
    assert rows == windows(stream, n, context, seed) and len(rows) == n
    assert all(len(r) == context and r == list(range(r[0], r[0] + context)) for r in rows)
    blocks = chunks(stream, n, context)
    assert [b[0] for b in blocks] == [i * context for i in range(len(blocks))]
    assert len(blocks) == min(n, length // context)


def test_held_out_bits_per_byte_is_the_summed_loss_over_the_predicted_bytes():
    model = build_model(12, 16, 8, seed=0)
    rows = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 0]]
    lengths = [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]
    bpb, nats = held_out(model, rows, lengths)
    with torch.no_grad():
        nll, tokens, n_bytes = 0.0, 0, 0
        for row in rows:
            logp = torch.log_softmax(model(input_ids=torch.tensor([row])).logits[0].double(), -1)
            for t in range(1, len(row)):
                nll -= float(logp[t - 1, row[t]])
                tokens += 1
                n_bytes += lengths[row[t]]
    assert bpb == pytest.approx(nll / math.log(2) / n_bytes, rel=1e-5)
    assert nats == pytest.approx(nll / tokens, rel=1e-5)


@pytest.fixture(scope="module")
def lee(registry):
    """The Lee corpus (gensim's test data), or a skip naming what to install."""
    from tokensmith import DataUnavailableError

    try:
        next(iter(registry.build("dataset", {"type": "lee-corpus", "part": "background"}).examples("all")))
    except DataUnavailableError as exc:
        pytest.skip(f"the Lee corpus is not installed: {exc}")


def test_a_short_run_reports_both_models(bank, lee):
    results = measure(quick=True, steps=2)
    runs = {r["model"]: r for r in results["runs"]}
    assert set(runs) == set(MODELS)
    frozen = runs["frozen-glyph"]
    assert frozen["table_unchanged"] and frozen["table_max_change"] == 0.0
    assert frozen["trainable_parameters"] < runs["trainable"]["trainable_parameters"]
    report = to_report(results)
    assert isinstance(report, Report) and Report.from_json(report.to_json()) == report
    m = report.metrics
    assert m["frozen_table_unchanged"] == 1.0 and m["steps"] == 2
    for kind in MODELS:
        assert m[f"bits_per_byte[{kind}]"] == runs[kind]["bits_per_byte"] > 0
        assert [s for s, _ in runs[kind]["train_loss"]] == [1, 2]
    assert m["ratio_bits_per_byte_frozen_to_trainable"] == pytest.approx(
        runs["frozen-glyph"]["bits_per_byte"] / runs["trainable"]["bits_per_byte"])
    assert m["cosine[l,1]"] > m["random_pair_cosine_mean"]
