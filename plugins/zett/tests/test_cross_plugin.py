"""ZeTT composed with tokensmith-dynamic-tokenization: the hypernetwork supplies the embeddings
of the tokens dynamic BPE merges (its ``embed_tokens`` initializer interface), both built by name
through the registry (``initializer = {type = "zett", hypernetwork = ...}``)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from tokensmith_zett import provider
from tokensmith_zett.hypernet import hypernetwork_for, save_hypernetwork

from tokensmith import PipelineSpec, default_registry


@pytest.mark.cross_plugin
def test_hypernetwork_embeds_merged_tokens(tmp_path, monkeypatch):
    if importlib.util.find_spec("tokensmith_dynamic_tokenization") is None:
        pytest.skip("tokensmith-dynamic-tokenization is not installed")
    registry = default_registry()
    pipeline = registry.build_pipeline(PipelineSpec(model="tiny-llama", runtime={"device": "cpu", "seed": 0}))
    torch.manual_seed(0)
    hn = hypernetwork_for(pipeline.model, layers=1, heads=2, hidden=None, surface_maxlen=7).eval()
    path = save_hypernetwork(tmp_path / "hn.safetensors", hn, pipeline.tokenizer)
    calls = []
    embed = provider.ZeTT.embed_tokens

    def spy(self, model, tokenizer, pieces, *, output=False):
        rows = embed(self, model, tokenizer, pieces, output=output)
        calls.append((list(pieces), rows))
        return rows

    monkeypatch.setattr(provider.ZeTT, "embed_tokens", spy)
    params = {"dataset": {"type": "lee-corpus"}, "split": "all", "sample": 4, "batch_size": 2,
              "passage_chars": 120, "merges": [0, 8], "target_reductions": [0.05], "micro_batch": 4,
              "prefill": False, "initializer": {"type": "zett", "hypernetwork": str(path)}}
    report = registry.build("evaluation", {"type": "dynamic-tokenization", **params}).run(pipeline)
    assert calls and "zett" in " ".join(report.notes)
    for pieces, rows in calls:  # the merged tokens' rows are the hypernetwork's predictions
        assert torch.equal(rows, hn.predict([tuple(p) for p in pieces])[0])
