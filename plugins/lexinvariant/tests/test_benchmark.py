"""The registered ``lexinvariant`` benchmark: seeded windows, a cipher that is a bijection per
window, and a short run through the recipe runner whose report agrees with its runs and with a
brute-force recomputation of the per-position loss."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_lexinvariant.benchmark import MODELS, cipher, measure, per_position, to_report, windows

from tokensmith import Report


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 10), context=st.integers(2, 40), seed=st.integers(0, 2**16))
def test_windows_are_seeded_slices_and_the_cipher_a_bijection_per_window(n, context, seed):
    data = bytes(range(256)) * 2
    rows = windows(data, n, context, seed)
    assert rows == windows(data, n, context, seed) and all(len(r) == context for r in rows)
    assert all(bytes(r) in data for r in rows)
    coded = cipher(rows, seed)
    for plain, secret in zip(rows, coded, strict=True):
        key = {}
        for a, b in zip(plain, secret, strict=True):
            assert key.setdefault(a, b) == b        # one letter, one substitute
        assert len(set(key.values())) == len(key)   # and distinct letters stay distinct


@pytest.fixture(scope="module")
def results():
    return measure(quick=True, steps=3)


def test_a_short_run_reports_both_models(results):
    report = to_report(results)
    assert isinstance(report, Report) and Report.from_json(report.to_json()) == report
    m = report.metrics
    runs = {r["model"]: r for r in results["runs"]}
    assert set(runs) == set(MODELS)
    context = results["setup"]["context"]
    for kind in MODELS:
        for text in ("plain", "cipher"):
            values = runs[kind][text]
            assert len(values) == context - 1 and all(math.isfinite(v) and v > 0 for v in values)
            assert m[f"bits_per_byte[{kind},{text}]"] == pytest.approx(sum(values) / len(values))
        assert [s for s, _ in runs[kind]["train_bits_per_byte"]] == [1, 2, 3]
    assert m["ratio_lexinvariant_to_standard[cipher]"] == pytest.approx(
        m["bits_per_byte[lexinvariant,cipher]"] / m["bits_per_byte[standard,cipher]"])
    # the lexinvariant model really was made lexinvariant by the recipe, the standard one not
    lexinvariant = runs["lexinvariant"]["trained"].get_input_embeddings()
    assert type(lexinvariant).__name__ == "LexinvariantEmbedding"
    assert isinstance(runs["standard"]["trained"].get_input_embeddings(), torch.nn.Embedding)


def test_the_per_position_loss_is_the_brute_force_mean(results):
    model = next(r for r in results["runs"] if r["model"] == "standard")["trained"]
    rows = windows(bytes(range(256)) * 4, 5, 12, seed=3)
    values, accuracy = per_position(model, rows, seed=0)
    with torch.no_grad():
        for position in (0, 5, 10):
            losses = []
            for row in rows:
                logits = model(input_ids=torch.tensor([row])).logits[0, position]
                target = torch.tensor(row[position + 1])
                losses.append(float(torch.nn.functional.cross_entropy(logits, target)))
            assert values[position] == pytest.approx(sum(losses) / len(losses) / math.log(2), rel=1e-5)
    assert 0 <= accuracy <= 1


def test_the_benchmark_is_registered_with_its_parameters(plugin_registry):
    record = plugin_registry.get("benchmark", "lexinvariant")
    assert {p.name for p in plugin_registry.parameters(record).parameters} == {"steps", "seed", "threads"}
