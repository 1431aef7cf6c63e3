"""ZeTT composed with tokensmith-dynamic-tokenization: the hypernetwork supplies the embeddings
of the tokens dynamic BPE merges (its ``embed_tokens`` initializer interface), found by name."""

from __future__ import annotations

import pytest
import torch
from tokensmith_zett.hypernet import hypernetwork_for, save_hypernetwork

from tokensmith import HFCausalLM, Runtime, default_registry
from tokensmith.testing import tiny_llama


@pytest.mark.cross_plugin
def test_hypernetwork_embeds_merged_tokens(tmp_path):
    dt = pytest.importorskip("tokensmith_dynamic_tokenization")
    from tokensmith_dynamic_tokenization.model import DynamicLM

    model, tok = tiny_llama()
    torch.manual_seed(0)
    hn = hypernetwork_for(model, layers=1, heads=2, hidden=None, surface_maxlen=7)
    path = save_hypernetwork(tmp_path / "hn.safetensors", hn, tok)
    zett = default_registry().build("embedding", {"type": "zett", "hypernetwork": str(path)})
    batch = dt.DynamicBPE(target_reduction=0.3).tokenize_batch(tok, ["the cat sat on the mat", "the hat"])
    assert batch.new_tokens
    dlm = DynamicLM(model, tok, zett, start_ids=HFCausalLM(model, tok, Runtime(device="cpu")).start_ids)
    rows = dlm.new_embeddings(batch)
    pieces = [batch.pieces_of[t] for t in batch.new_tokens]
    expected, _ = hn.eval().predict(pieces)
    assert torch.equal(rows, expected)  # the rows are the hypernetwork's predictions
    assert all(torch.isfinite(torch.tensor(s)).all() for s in dlm.score(batch))
