"""SmolLM2 (byte-level BPE, 49,152 tokens, GPT-2 pre-tokenizer): zero merges is its own logits
bit for bit; merges stay inside its pre-tokens and every byte is still scored."""

from __future__ import annotations

import math

import pytest
import torch
from tokensmith_dynamic_tokenization import BatchMerger
from tokensmith_dynamic_tokenization.initializers import SubtokenMean
from tokensmith_dynamic_tokenization.model import DynamicLM

from tokensmith import score_texts

TEXTS = ["Permission is hereby granted, free of charge, to any person obtaining a copy of 2024 software.",
         "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED."]


@pytest.mark.smollm2
def test_smollm2_zero_merges_exact_and_merges_inside_pretokens(smollm2_lm):
    model, tok = smollm2_lm.model, smollm2_lm.tokenizer
    dlm = DynamicLM(model, tok, SubtokenMean(), start_ids=smollm2_lm.start_ids, micro_batch=1)
    zero = BatchMerger(tok, TEXTS)
    logits = dlm.logits(zero.batch())
    ids = list(smollm2_lm.start_ids) + list(tok.encode(TEXTS[0]).ids)
    assert torch.equal(logits[0], model(input_ids=torch.tensor([ids])).logits[0])
    assert math.isclose(sum(dlm.score(zero.batch())), score_texts(smollm2_lm, TEXTS).nll, rel_tol=1e-5)
    zero.run(None)  # every merge the pre-tokens allow: one token per pre-token
    batch = zero.batch()
    for text, row in zip(TEXTS, batch.rows):
        assert [t.bytes.decode() for t in row] == [p.text for p in tok.pretokenize(text)]
    nll = dlm.score(batch)
    assert all(math.isfinite(x) and x > 0 for x in nll)
