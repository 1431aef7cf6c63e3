"""The paper's invariants on a tiny Llama: exact permutation equivariance (and a learned
embedding failing it), the same token the same vector within a sequence and fresh vectors
across sequences, the output layer scored against the same table, and the semi-lexinvariant
regulariser touching only the chosen sequences in training."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_lexinvariant.embedding import Lexinvariant, SemiLexinvariant, module_classes

from tokensmith import ConfigError, IncompatibleComponentsError, InputError
from tokensmith.testing import tiny_llama, tiny_tokenizer

TOKENIZER = tiny_tokenizer()


def lexinvariant_model(seed=0):
    torch.manual_seed(seed)
    model, _ = tiny_llama(TOKENIZER, hidden_size=16, layers=1)
    Lexinvariant(seed=seed).apply(model, TOKENIZER)
    return model.eval()


MODEL = lexinvariant_model()
V = MODEL.config.vocab_size


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), length=st.integers(1, 12), rows=st.integers(1, 3))
def test_logits_are_exactly_permutation_equivariant(seed, length, rows):
    """(i) logits(pi(x), E o pi^-1)[..., pi(v)] == logits(x, E)[..., v], bit for bit."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (rows, length), generator=g)
    pi = torch.randperm(V, generator=g)
    inverse = torch.argsort(pi)
    table = torch.randn(V, 16, generator=g) / 4
    embedding = MODEL.get_input_embeddings()
    with torch.no_grad():
        with embedding.fixed(table):
            logits = MODEL(input_ids=x).logits
        with embedding.fixed(table[inverse]):     # E'[pi(v)] = E[v]
            permuted = MODEL(input_ids=pi[x]).logits
    assert torch.equal(permuted[..., pi], logits)


def test_a_learned_embedding_is_not_equivariant():
    """The naive baseline: the same model with its learned table changes under relabelling."""
    torch.manual_seed(0)
    model, _ = tiny_llama(TOKENIZER, hidden_size=16, layers=1)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (1, 10), generator=g)
    pi = torch.randperm(V, generator=g)
    with torch.no_grad():
        relabelled = model(input_ids=pi[x]).logits[..., pi]
        assert not torch.allclose(relabelled, model(input_ids=x).logits, atol=1e-3)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_same_token_same_vector_within_a_sequence_fresh_across(seed):
    """(ii) equal ids in one row get equal vectors; the same id in two rows, and in two calls, differs."""
    module = Lexinvariant(seed=seed).build(tiny_llama(TOKENIZER, hidden_size=16, layers=1)[0], TOKENIZER)
    x = torch.tensor([[3, 5, 3, 7, 5, 3], [3, 5, 3, 7, 5, 3]])
    out = module(x)
    for row in range(2):
        for i in range(6):
            for j in range(6):
                assert torch.equal(out[row, i], out[row, j]) == (x[row, i] == x[row, j]).item()
    assert not torch.allclose(out[0], out[1])
    assert not torch.allclose(module(x)[0], out[0])
    # the table is the paper's N(0, sigma^2), sigma = 1/sqrt(width) by default
    assert module.table.std().item() == pytest.approx(16 ** -0.5, rel=0.1)


def test_the_output_layer_scores_against_the_same_table():
    x = torch.randint(0, V, (2, 5))
    with torch.no_grad():
        out = MODEL(input_ids=x, output_hidden_states=True)
        table = MODEL.get_input_embeddings().table
        expected = torch.einsum("btd,bvd->btv", out.hidden_states[-1], table)
    assert torch.allclose(out.logits, expected, atol=1e-6)
    assert not any(p.requires_grad for p in MODEL.get_input_embeddings().parameters())


def test_the_seeded_provider_draws_the_same_tables():
    x = torch.randint(0, V, (2, 6))
    with torch.no_grad():
        first, second = lexinvariant_model(3)(input_ids=x).logits, lexinvariant_model(3)(input_ids=x).logits
    assert torch.equal(first, second)


def test_bad_inputs_are_errors_naming_the_component():
    embedding = MODEL.get_input_embeddings()
    with pytest.raises(InputError, match="lexinvariant"):
        embedding(torch.tensor([[0, V]]))
    with pytest.raises(InputError, match="lexinvariant"):
        embedding(torch.tensor([0, 1]))
    with pytest.raises(InputError, match="fixed table"):
        with embedding.fixed(torch.zeros(V + 1, 16)):
            pass
    with pytest.raises(InputError, match="without a table"):
        module_classes()[1](module_classes()[0](V, 16, 1.0, 0))(torch.zeros(1, 2, 16))
    with pytest.raises(ConfigError):
        Lexinvariant(sigma=-1.0)
    with pytest.raises(ConfigError):
        SemiLexinvariant(p=1.5)
    with pytest.raises(IncompatibleComponentsError, match="lexinvariant"):
        Lexinvariant().build(torch.nn.Linear(2, 2), TOKENIZER)


def test_semi_lexinvariance_replaces_only_the_chosen_sequences_in_training():
    torch.manual_seed(0)
    model, _ = tiny_llama(TOKENIZER, hidden_size=16, layers=1)
    reference = tiny_llama(TOKENIZER, hidden_size=16, layers=1)[0]
    reference.load_state_dict(model.state_dict())
    SemiLexinvariant(p=0.5, seed=4).apply(model, TOKENIZER)
    x = torch.randint(0, V, (16, 6))
    with torch.no_grad():
        model.train()
        reference.train()
        logits, plain = model(input_ids=x).logits, reference(input_ids=x).logits
        rows = model.get_input_embeddings().rows
        assert rows is not None and 0 < len(rows) < 16
        for row in range(16):
            assert torch.allclose(logits[row], plain[row], atol=1e-6) == (row not in rows.tolist())
        model.eval()
        reference.eval()
        assert torch.allclose(model(input_ids=x).logits, reference(input_ids=x).logits, atol=1e-6)
        # p = 0: exactly the model it wraps, in training too
        plain = reference(input_ids=x).logits
        SemiLexinvariant(p=0.0).apply(reference, TOKENIZER)
        assert torch.equal(reference(input_ids=x).logits, plain)
    assert model.get_input_embeddings().weight is model.get_input_embeddings().base.weight


def test_components_are_registered(plugin_registry):
    for kind, name in (("embedding", "lexinvariant"), ("embedding", "semi-lexinvariant"),
                       ("recipe", "lexinvariant"), ("recipe", "semi-lexinvariant"),
                       ("benchmark", "lexinvariant")):
        assert plugin_registry.get(kind, name).name == name
    built = plugin_registry.build("recipe", {"type": "semi-lexinvariant", "p": 0.3})
    assert built.p == 0.3
