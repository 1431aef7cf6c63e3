"""Text2Token's targets and KL: distributions over the vocabulary that exclude filtered tokens,
the KL against a brute-force sum, zero when the prediction is the target, the pooled logits as
the LM head of the pooled hidden state, and typed errors for texts with nothing to predict."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_text2token.objectives import Text2Token
from tokensmith_text2token.targets import (
    STOPWORDS,
    content_vocabulary,
    data_driven_targets,
    document_frequency,
    idf,
    kl_divergence,
    model_derived_targets,
    pool_hidden,
    pool_logits,
    token_texts,
)

from tokensmith import InputError

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "A lazy cat sleeps in the warm sun!",
             "Foxes and cats are animals; dogs, too.", "Sun, rain and wind change the weather."]


@pytest.fixture(scope="module")
def fitted(tiny_tokenizer):
    return Text2Token(max_df=0.75).fit([tiny_tokenizer.encode(s).ids for s in SENTENCES], tiny_tokenizer)


def batch_of(tokenizer, texts):
    rows = [tokenizer.encode(t).ids for t in texts]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def test_the_vocabulary_filter_drops_specials_punctuation_and_stopwords(tiny_tokenizer):
    keep = content_vocabulary(tiny_tokenizer)
    texts = token_texts(tiny_tokenizer)
    for token_id, text in enumerate(texts):
        if token_id in tiny_tokenizer.special_ids or text is None:
            assert not keep[token_id]
        elif not any(c.isalnum() for c in text) or text.strip().lower() in STOPWORDS:
            assert not keep[token_id], repr(text)
        else:
            assert keep[token_id], repr(text)
    assert any(keep) and not all(keep)
    # without the stopword list, stopwords that are tokens come back
    loose = content_vocabulary(tiny_tokenizer, stopwords=False)
    assert sum(loose) >= sum(keep)


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(st.sampled_from(SENTENCES + ["Brown dogs run.", "Warm rain falls on cats."]),
                      min_size=1, max_size=4))
def test_data_driven_targets_are_distributions_over_kept_tokens_of_the_text(fitted, tiny_tokenizer, texts):
    batch = batch_of(tiny_tokenizer, texts)
    target = fitted.targets(batch)
    assert target.shape == (len(texts), tiny_tokenizer.vocab_size)
    assert bool((target >= 0).all())
    assert torch.allclose(target.sum(-1), torch.ones(len(texts)), atol=1e-6)
    allowed = fitted.allowed()
    weights = fitted.target_weights()
    for i, text in enumerate(texts):
        ids = tiny_tokenizer.encode(text).ids
        support = set(target[i].nonzero().flatten().tolist())
        # the support is exactly the text's own allowed tokens: no special, stopword, punctuation
        assert support == {t for t in ids if bool(allowed[t])}
        # brute force: tf * idf, normalised
        raw = {t: ids.count(t) * float(weights[t]) for t in support}
        total = sum(raw.values())
        for t, v in raw.items():
            assert float(target[i, t]) == pytest.approx(v / total, rel=1e-5)


def test_the_frequency_filter_drops_tokens_in_more_than_max_df_of_the_texts(tiny_tokenizer):
    rows = [tiny_tokenizer.encode(s).ids for s in SENTENCES]
    df, n = document_frequency(rows, tiny_tokenizer.vocab_size)
    assert n == len(SENTENCES)
    for t in range(tiny_tokenizer.vocab_size):
        assert float(df[t]) == sum(t in r for r in rows)
    loss = Text2Token(max_df=0.5).fit(rows, tiny_tokenizer)
    allowed = loss.allowed()
    keep = content_vocabulary(tiny_tokenizer)
    for t in range(tiny_tokenizer.vocab_size):
        assert bool(allowed[t]) == (keep[t] and float(df[t]) / n <= 0.5)
    # idf is smoothed and positive; rarer tokens weigh more
    weights = idf(torch.tensor([0.0, 1.0, 4.0]), 4)
    assert bool((weights > 0).all()) and weights[0] > weights[1] > weights[2]
    assert float(weights[2]) == pytest.approx(math.log(5 / 5) + 1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(1, 4), vocab=st.integers(2, 12))
def test_kl_equals_the_brute_force_sum_and_is_zero_only_at_the_target(seed, rows, vocab):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=g, dtype=torch.float64) * 3
    target = torch.rand(rows, vocab, generator=g, dtype=torch.float64)
    target[:, 0] = 0.0                      # a zero entry: 0 * log 0 = 0
    target = target / target.sum(-1, keepdim=True)
    got = kl_divergence(target, logits)
    q = torch.softmax(logits, -1)
    for i in range(rows):
        brute = sum(float(target[i, t]) * (math.log(float(target[i, t])) - math.log(float(q[i, t])))
                    for t in range(vocab) if float(target[i, t]) > 0)
        assert float(got[i]) == pytest.approx(brute, rel=1e-4, abs=1e-6)
        assert float(got[i]) >= -1e-6
    # prediction == target (full support): exactly zero, up to float error
    full = torch.softmax(torch.randn(rows, vocab, generator=g, dtype=torch.float64), -1)
    assert torch.allclose(kl_divergence(full, full.log() + 5.0), torch.zeros(rows, dtype=torch.float32),
                          atol=1e-6)
    # and not zero when they differ
    other = torch.roll(full, 1, dims=-1)
    if not torch.allclose(other, full, atol=1e-3):
        assert bool((kl_divergence(full, other.log()) > 0).any())


def test_the_loss_on_a_fixed_batch_is_the_mean_brute_force_kl_of_the_pooled_logits(fitted, tiny_tokenizer):
    batch = batch_of(tiny_tokenizer, SENTENCES[:3])
    g = torch.Generator().manual_seed(0)
    shape = (*batch["input_ids"].shape, tiny_tokenizer.vocab_size)
    logits = torch.randn(*shape, generator=g, requires_grad=True)

    class Out:
        pass

    out = Out()
    out.logits = logits
    value = fitted(batch, out)
    value.backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)
    # padded positions get no gradient: they are not pooled
    assert bool((logits.grad[batch["attention_mask"] == 0] == 0).all())
    target = fitted.targets(batch)
    per_row = []
    for i in range(3):
        n = int(batch["attention_mask"][i].sum())
        pooled = logits[i, :n].detach().double().mean(0)
        log_q = torch.log_softmax(pooled, -1)
        per_row.append(sum(float(target[i, t]) * (math.log(float(target[i, t])) - float(log_q[t]))
                           for t in range(target.shape[1]) if float(target[i, t]) > 0))
    assert float(value.detach()) == pytest.approx(sum(per_row) / 3, rel=1e-5)
    # a prediction that is the target gives zero loss (pooled logits = log pi where pi > 0)
    exact = torch.where(target > 0, target.log(), torch.full_like(target, -1e4))
    out.logits = exact.unsqueeze(1).expand(-1, batch["input_ids"].shape[1], -1)
    assert float(fitted(batch, out)) == pytest.approx(0.0, abs=1e-5)


def test_pooled_logits_are_the_lm_head_of_the_pooled_hidden_state(tiny_llama):
    model, tokenizer = tiny_llama
    batch = batch_of(tokenizer, SENTENCES[:3])
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    output_hidden_states=True)
    mask = batch["attention_mask"]
    for pooling in ("mean", "last"):
        e = pool_hidden(out.hidden_states[-1], mask, pooling)
        assert torch.allclose(pool_logits(out.logits, mask, pooling), model.lm_head(e), atol=1e-5)


def test_model_derived_targets_are_the_renormalised_top_k():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]], requires_grad=True)
    target = model_derived_targets(logits, 2)
    assert not target.requires_grad
    p = torch.softmax(logits.detach(), -1)[0]
    assert torch.allclose(target[0], torch.tensor([0, p[1], 0, p[3], 0]) / (p[1] + p[3]))


def test_empty_text_and_text_without_target_tokens_are_typed_errors(fitted, tiny_tokenizer):
    batch = batch_of(tiny_tokenizer, ["the and of, ... !", SENTENCES[0]])
    with pytest.raises(InputError, match=r"rows \[0\] have no target token left after filtering"):
        fitted.targets(batch)
    ids = torch.tensor([[5, 6], [0, 0]])
    mask = torch.tensor([[1, 1], [0, 0]])
    with pytest.raises(InputError, match=r"rows \[1\] are empty texts"):
        data_driven_targets(ids, mask, torch.ones(tiny_tokenizer.vocab_size, dtype=torch.bool),
                            torch.ones(tiny_tokenizer.vocab_size))
    with pytest.raises(InputError, match="empty"):
        pool_logits(torch.zeros(2, 2, 3), mask)
    with pytest.raises(InputError, match="no sequence"):
        document_frequency([], 10)


def test_an_unfitted_loss_says_how_to_fit_it(tiny_tokenizer):
    from tokensmith import IncompatibleComponentsError

    with pytest.raises(IncompatibleComponentsError, match="not fitted"):
        Text2Token().targets(batch_of(tiny_tokenizer, SENTENCES[:1]))
