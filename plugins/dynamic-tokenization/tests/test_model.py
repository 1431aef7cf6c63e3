"""The LM on ``inputs_embeds``: zero merges is bit-identical to the model on its own ids, the
dynamic-vocabulary score equals a brute-force softmax, prefill equals the model's own score of
the continuation, and the initializer is pluggable (a custom one defined here, found by name)."""

from __future__ import annotations

import math

import pytest
import torch
from tokensmith_dynamic_tokenization import BatchMerger
from tokensmith_dynamic_tokenization import plugin as dynamic_plugin
from tokensmith_dynamic_tokenization.initializers import SubtokenMean, resolve_initializer
from tokensmith_dynamic_tokenization.model import DynamicLM

from tokensmith import IncompatibleComponentsError, InputError, score_texts
from tokensmith.testing import EmbeddingContract

TEXTS = ["the cat sat on the mat, the cat sat.", "A hat, a mat and a cat!", "naïve café\n\nthe end"]


@pytest.fixture
def dlm(tiny_lm):
    return DynamicLM(
        tiny_lm.model,
        tiny_lm.tokenizer,
        SubtokenMean(),
        start_ids=tiny_lm.start_ids,
        context_length=tiny_lm.context_length,
        micro_batch=2,
    )


def merged(tokenizer, merges, texts=TEXTS):
    merger = BatchMerger(tokenizer, texts)
    merger.run(merges)
    return merger.batch()


def test_zero_merges_gives_the_models_own_logits_bit_for_bit(tiny_lm, dlm):
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    batch = merged(tok, 0)
    ids = [list(tiny_lm.start_ids) + list(tok.encode(t).ids) for t in TEXTS]
    # one row per forward: exactly the model's logits on input_ids
    dlm.micro_batch = 1
    for row, logits in zip(ids, dlm.logits(batch)):
        assert torch.equal(logits, model(input_ids=torch.tensor([row])).logits[0])
    # rows right-padded together: exactly the model's logits on the same padded input_ids
    dlm.micro_batch = len(TEXTS)
    width = max(map(len, ids))
    padded = torch.tensor([r + [0] * (width - len(r)) for r in ids])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids])
    reference = model(input_ids=padded, attention_mask=mask).logits
    for b, logits in enumerate(dlm.logits(batch)):
        assert torch.equal(logits, reference[b, : len(ids[b])])


def test_zero_merges_scores_like_the_core(tiny_lm, dlm):
    batch = merged(tiny_lm.tokenizer, 0)
    core = score_texts(tiny_lm, TEXTS)
    assert math.isclose(sum(dlm.score(batch)), core.nll, rel_tol=1e-5)
    for text, nll in zip(TEXTS, dlm.score(batch)):
        assert math.isclose(nll, -tiny_lm.score(text), rel_tol=1e-5)


def test_dynamic_score_is_the_softmax_over_vocabulary_plus_new_tokens(tiny_lm, dlm):
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    batch = merged(tok, 12)
    assert batch.new_tokens  # the case this test is about
    table = model.get_input_embeddings().weight.detach()
    new = torch.stack([table[list(batch.pieces_of[t])].mean(0) for t in batch.new_tokens])
    for r, row in enumerate(batch.rows):
        # brute force: embeddings by hand, full forward, an extended output matrix
        vectors = [table[i] for i in tiny_lm.start_ids]
        vectors += [table[t.id] if t.id is not None else new[batch.new_index(t)] for t in row]
        with torch.no_grad():
            out = model(inputs_embeds=torch.stack(vectors)[None], output_hidden_states=True)
        hidden = out.hidden_states[-1][0]
        assert torch.allclose(model.get_output_embeddings()(hidden), out.logits[0], atol=1e-6)
        logits = hidden @ torch.cat([table, new]).T  # tied head: output rows = input rows
        logp = torch.log_softmax(logits, dim=-1)
        targets = [t.id if t.id is not None else tok.vocab_size + batch.new_index(t) for t in row]
        expected = -sum(float(logp[k, targets[k]]) for k in range(len(row)))
        assert math.isclose(dlm.score(batch)[r], expected, rel_tol=1e-4)


def test_prefill_scores_the_continuation_in_the_models_own_tokens(tiny_lm, dlm):
    tok = tiny_lm.tokenizer
    contexts = ["the cat sat on", "a hat and"]
    tails = [list(tok.encode(" the mat").ids), list(tok.encode(" a cat").ids)]
    zero = dlm.score_prefill(merged(tok, 0, contexts), tails)
    for context, tail, nll in zip(contexts, tails, zero):
        expected = -tiny_lm.score_ids(tail, context=list(tiny_lm.start_ids) + list(tok.encode(context).ids))
        assert math.isclose(nll, expected, rel_tol=1e-5)
    some = dlm.score_prefill(merged(tok, 6, contexts), tails)
    assert all(math.isfinite(x) for x in some) and some != zero
    with pytest.raises(InputError, match="empty"):
        dlm.score_prefill(merged(tok, 0, contexts), [tails[0], []])
    with pytest.raises(InputError, match="continuations"):
        dlm.score_prefill(merged(tok, 0, contexts), tails[:1])


def test_too_long_for_the_context_is_an_error_not_a_truncation(tiny_lm):
    from tokensmith import ContextLengthError

    dlm = DynamicLM(
        tiny_lm.model, tiny_lm.tokenizer, SubtokenMean(), start_ids=tiny_lm.start_ids, context_length=8
    )
    with pytest.raises(ContextLengthError, match="context of 8"):
        dlm.score(merged(tiny_lm.tokenizer, 0, ["a rather long text that has more than eight tokens"]))


def test_a_third_party_initializer_is_found_by_name_and_used(tiny_lm, make_registry, third_party):
    LastPiece = third_party.LastPiece
    registry = make_registry(dynamic_plugin, third_party)
    init = resolve_initializer("last-piece", registry, "test")
    assert isinstance(init, LastPiece)
    LastPiece.calls.clear()
    tok = tiny_lm.tokenizer
    dlm = DynamicLM(tiny_lm.model, tok, init, start_ids=tiny_lm.start_ids, micro_batch=8)
    batch = merged(tok, 12)
    dlm.score(batch)
    sides = [side for side, _ in LastPiece.calls]
    assert sides == [False, True]
    assert LastPiece.calls[0][1] == [batch.pieces_of[t] for t in batch.new_tokens]
    # the vectors the model reads for a new token are the initializer's
    table = tiny_lm.model.get_input_embeddings().weight
    row = next(r for r, row in enumerate(batch.rows) if any(t.id is None for t in row))
    embeds = dlm._row_embeds(batch, row, dlm.new_embeddings(batch))
    k, token = next((k, t) for k, t in enumerate(batch.rows[row]) if t.id is None)
    assert torch.equal(embeds[len(tiny_lm.start_ids) + k], table[batch.pieces_of[token.bytes][-1]])
    # and the default one is by name too; an embedding without embed_tokens is refused by name
    assert isinstance(resolve_initializer("subtoken-mean", registry, "test"), SubtokenMean)
    with pytest.raises(IncompatibleComponentsError, match="plain-embedding.*embed_tokens"):
        resolve_initializer("plain-embedding", registry, "test")
    with pytest.raises(InputError, match="initializer"):
        resolve_initializer(3, registry, "test")


def test_the_lru_cache_reuses_and_is_bounded(tiny_lm):
    tok = tiny_lm.tokenizer
    dlm = DynamicLM(tiny_lm.model, tok, SubtokenMean(), start_ids=tiny_lm.start_ids, cache_size=3)
    batch = merged(tok, 12)
    first = dlm.new_embeddings(batch)
    assert len(dlm._cache) == 3 and len(batch.new_tokens) > 3
    big = DynamicLM(tiny_lm.model, tok, SubtokenMean(), start_ids=tiny_lm.start_ids)
    big.new_embeddings(batch)
    big.new_embeddings(batch)
    assert big.cache_hits == len(batch.new_tokens)
    assert torch.equal(big.new_embeddings(batch), first)


def test_subtoken_mean_is_the_mean_of_the_pieces_rows(tiny_lm):
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    pieces = [(5, 6, 7), (9,)]
    rows = SubtokenMean().embed_tokens(model, tok, pieces)
    table = model.get_input_embeddings().weight
    assert torch.allclose(rows[0], table[[5, 6, 7]].mean(0)) and torch.equal(rows[1], table[9])
    with pytest.raises(InputError, match="pieces"):
        SubtokenMean().embed_tokens(model, tok, [()])
    with pytest.raises(InputError, match="token id"):
        SubtokenMean().embed_tokens(model, tok, [(10**6,)])


class TestSubtokenMeanTransplant(EmbeddingContract):
    """As an ordinary embedding provider: a transplant onto another tokenizer."""

    @pytest.fixture
    def model_and_tokenizer(self, tiny_llama):
        from tokensmith import tiny_tokenizer

        corpus = ["a different corpus with other merges"] * 4
        new = tiny_tokenizer("byte_level", vocab_size=290, corpus=corpus)
        return tiny_llama[0], new

    @pytest.fixture
    def embedding_provider(self, tiny_llama):
        from tokensmith import BuildContext, Runtime

        return SubtokenMean(BuildContext(Runtime(device="cpu"), model_tokenizer=tiny_llama[1]))

    def test_new_rows_are_sub_token_means(self, embedding_provider, model_and_tokenizer, tiny_llama):
        model, new = model_and_tokenizer
        old = tiny_llama[1]
        before = model.get_input_embeddings().weight.detach().clone()
        embedding_provider.apply(model, new)
        after = model.get_input_embeddings().weight
        assert after.shape[0] == new.vocab_size
        old_ids = {b: i for i, b in enumerate(old.byte_table) if b is not None}
        for i, b in enumerate(new.byte_table):
            if b is None or b in old_ids:
                continue
            spelled = list(old.encode(b.decode("utf-8", "strict")).ids)
            assert torch.allclose(after[i], before[spelled].mean(0), atol=1e-6)
            break
        else:
            pytest.fail("every token of the new vocabulary is an old one: nothing was initialised")
