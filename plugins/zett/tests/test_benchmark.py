"""The zett-transfer benchmark end to end on a tiny random Llama (the report's structure and the
invariants it measures; SmolLM2's numbers are the README's): the original row is the baseline
(ratio 1), the identity case moves the model onto its own tokenizer, the new tokenizer's rows get
the BPE's token counts, FVT's rows are means of the decomposition's rows, and a missing
hypernetwork is a clear error."""

from __future__ import annotations

import math

import pytest
import torch
from tokensmith_zett.benchmark import ZeTTTransferBenchmark, fvt_table
from tokensmith_zett.hypernet import byte_index, decompose, hypernetwork_for, save_hypernetwork

from tokensmith import DataUnavailableError, default_registry
from tokensmith.testing import tiny_llama, tiny_tokenizer


def test_fvt_rows_are_means_of_the_decomposition():
    old = tiny_tokenizer()
    new = tiny_tokenizer("byte_level", vocab_size=300, corpus=["the licensee shall redistribute it"] * 4)
    model, _ = tiny_llama(old, hidden_size=16, layers=1)
    table = fvt_table(model, old, new)
    emb = model.get_input_embeddings().weight
    assert table.shape == (new.vocab_size, emb.shape[1])
    for i, b in enumerate(new.byte_table):
        if i not in new.special_tokens:
            ids = decompose(b, old, byte_index(old), maxlen=len(b))
            assert torch.allclose(table[i], emb[list(ids)].mean(0))


def test_benchmark_report_on_a_tiny_model(tmp_path):
    pipeline = default_registry().build_pipeline({"model": "tiny-llama"})
    hn = hypernetwork_for(pipeline.model, layers=1, heads=2, hidden=16, surface_maxlen=7)
    path = save_hypernetwork(tmp_path / "hn.safetensors", hn, pipeline.tokenizer, config={"steps": 0})
    bench = ZeTTTransferBenchmark(hypernetwork=str(path), model="tiny-llama", vocab_size=300,
                                  held_out_bytes=600, train_texts=20, piece_bytes=200,
                                  threads=1)
    report = bench.run(quick=True)
    rows = {r[0]: r for r in report.tables[0].rows}
    assert list(rows) == ["original", "zett (identity)", "mean", "fvt", "zett", "zett + copied shared rows"]
    assert rows["original"][3] == 1.0 and rows["zett (identity)"][4] == 1.0  # same tokenizer, same tokens
    assert rows["mean"][4] == rows["fvt"][4] == rows["zett"][4] != 1.0
    assert report.metrics["new_vocab_size"] == 300 and report.metrics["hypernetwork_steps"] == 0
    assert all(math.isfinite(v) for v in report.metrics.values())
    assert 0.0 <= report.metrics["identity_nearest_own_row"] <= 1.0


def test_missing_hypernetwork_is_a_clear_error(tmp_path):
    with pytest.raises(DataUnavailableError, match="no hypernetwork"):
        ZeTTTransferBenchmark(hypernetwork=str(tmp_path / "none.safetensors"),
                              model="tiny-llama").run(quick=True)
