"""ZeTT's invariants (arXiv 2405.07883) on tiny models: the identity warm-up reproduces the
original embeddings (and so the model's loss), a single-piece token maps close to its source
row, a new vocabulary gets exactly its own rows with specials copied, predictions are
deterministic, the sampled UnigramLM segments by Viterbi (brute force agrees) and spells the
text, and hypernetwork artifacts are bound to their base tokenizer."""

from __future__ import annotations

import itertools
import math
import random
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_zett.hypernet import (
    HyperNetwork,
    byte_index,
    decompose,
    hypernetwork_for,
    load_hypernetwork,
    save_hypernetwork,
)
from tokensmith_zett.provider import ZeTT
from tokensmith_zett.recipe import ARTIFACT_NAME, ZeTTLoss, ZeTTRecipe
from tokensmith_zett.sampler import pretokens, sample_tokenizer
from transformers import TrainerCallback

import tokensmith
from tokensmith import ConfigError, IncompatibleComponentsError, InputError
from tokensmith.testing import TINY_CORPUS, EmbeddingContract, tiny_llama, tiny_tokenizer

OTHER_CORPUS = ["licence terms: the licensee shall redistribute the software without warranty"] * 6 + [
    "Permission is hereby granted, free of charge, to any person obtaining a copy"] * 6


def ctx(tokenizer):
    return types.SimpleNamespace(model_tokenizer=tokenizer)


@pytest.fixture(scope="module")
def old():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def trained(old, tmp_path_factory):
    """A hypernetwork after the identity warm-up only (100 steps of the MIMICK-style embedding
    regression), through the core runner."""
    torch.manual_seed(0)
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    source = model.get_input_embeddings().weight.detach().clone()
    recipe = ZeTTRecipe(layers=1, heads=2, identity_steps=1000, vocab_size=512)
    out = tmp_path_factory.mktemp("zett")
    result = tokensmith.run_recipe(
        model=model, tokenizer=old, train_data=[{"text": s} for s in TINY_CORPUS.split(". ")],
        recipe=recipe, objectives=[ZeTTLoss()], data={"max_length": 32, "packing": True},
        arguments={"steps": 100, "batch_size": 4, "lr": 3e-3, "schedule": "constant", "progress": "off",
                   "save_final": False}, output_dir=out)
    return types.SimpleNamespace(model=model, source=source, path=out / ARTIFACT_NAME, result=result,
                                 hn=recipe.model.hn)


def relative_mse(a, b):
    return (((a - b) ** 2).mean() / b.var()).item()


def test_identity_warm_up_reproduces_the_original_embeddings(old, trained):
    untrained = hypernetwork_for(trained.model, layers=1, heads=2, hidden=None, surface_maxlen=7)
    before, _ = untrained.predict([(i,) for i in range(old.vocab_size)])
    loaded = load_hypernetwork(trained.path, trained.model, old)
    after, _ = loaded.predict([(i,) for i in range(old.vocab_size)])
    assert relative_mse(after, trained.source) < 0.1
    assert relative_mse(before, trained.source) > 5 * relative_mse(after, trained.source)
    # (ii) a single-piece token is nearer its own source row than any other row, for most tokens
    nearest = torch.cdist(after, trained.source).argmin(1)
    assert (nearest == torch.arange(old.vocab_size)).float().mean() > 0.9
    assert trained.model.get_input_embeddings().weight.requires_grad is False or torch.equal(
        trained.model.get_input_embeddings().weight, trained.source)  # the base LM stayed frozen


def test_identity_transfer_keeps_the_loss(old, trained):
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    model.load_state_dict(trained.model.state_dict())
    ids = torch.tensor([old.encode(TINY_CORPUS[:200]).ids])
    before = model(input_ids=ids, labels=ids).loss.item()
    report = ZeTT(hypernetwork=trained.path, ctx=ctx(old)).apply(model, old)
    after = model(input_ids=ids, labels=ids).loss.item()
    assert report.changes and abs(after - before) < 0.05 * before
    assert math.isfinite(after)


def test_new_vocabulary_rows_specials_copied_and_deterministic(old, trained):
    new = tiny_tokenizer("byte_level", vocab_size=300, corpus=OTHER_CORPUS)
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    model.load_state_dict(trained.model.state_dict())
    emb = model.get_input_embeddings().weight.detach().clone()
    zett = ZeTT(hypernetwork=trained.path, ctx=ctx(old))
    table, head = zett.predict(model, old, new)
    again, _ = ZeTT(hypernetwork=trained.path).predict(model, old, new)
    assert torch.equal(table, again) and head is None  # (iv) deterministic; tied model
    zett.apply(model, new)
    rows = model.get_input_embeddings().weight
    assert rows.shape[0] == new.vocab_size and model.config.vocab_size == new.vocab_size  # (iii)
    by_text = {t: i for i, t in old.special_tokens.items()}
    for i, text in new.special_tokens.items():
        assert torch.equal(rows[i], emb[by_text[text]])
    ids = torch.tensor([new.encode("Permission is granted to the licensee").ids])
    assert torch.isfinite(model(input_ids=ids).logits).all()


def test_copy_shared_copies_every_shared_row(old, trained):
    new = tiny_tokenizer("byte_level", vocab_size=300, corpus=OTHER_CORPUS)
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    model.load_state_dict(trained.model.state_dict())
    emb = model.get_input_embeddings().weight.detach().clone()
    table, _ = ZeTT(hypernetwork=trained.path, copy_shared=True).predict(model, old, new)
    shared = tokensmith.map_shared_tokens(old, new)
    assert shared and all(torch.equal(table[n], emb[o]) for n, o in shared.items())


def test_artifact_of_another_tokenizer_is_a_clear_error(old, trained):
    other = tiny_tokenizer("byte_level", vocab_size=old.vocab_size, corpus=OTHER_CORPUS)
    model, _ = tiny_llama(other, hidden_size=32, layers=1)
    with pytest.raises(IncompatibleComponentsError, match="trained for base tokenizer"):
        ZeTT(hypernetwork=trained.path, ctx=ctx(other)).apply(model, other)
    meta = tokensmith.load_artifact(trained.path)[1]["config"]
    assert meta["tokenizer"] == old.fingerprint() and meta["steps"] == 100
    assert meta["recipe"]["identity_steps"] == 1000


@pytest.mark.parametrize("residual_mean", [False, True])
def test_save_and_load_round_trip(old, tmp_path, residual_mean):
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    hn = hypernetwork_for(model, layers=1, heads=2, hidden=16, surface_maxlen=5, residual_mean=residual_mean)
    with torch.no_grad():
        hn.out_in.weight.normal_()  # a non-zero correction, so the round trip is not trivially FVT
    path = save_hypernetwork(tmp_path / "hn.safetensors", hn, old)
    back = load_hypernetwork(path, model, old)
    assert back.residual_mean is residual_mean
    assert tokensmith.load_artifact(path)[1]["config"]["residual_mean"] is residual_mean
    pieces = [(1, 2, 3), (4,), (5, 6, 7, 8, 9, 10)]
    assert torch.equal(hn.eval().predict(pieces)[0], back.predict(pieces)[0])


def test_residual_mean_starts_at_fvt_and_single_pieces_at_their_rows(old):
    """``residual_mean`` (a departure from the paper): before any training a single-piece token's
    prediction *is* its source row (invariant (ii)), input and untied output, and a multi-piece
    token's is the FVT mean of its (at most surface_maxlen) pieces. The paper's randomly initialised
    hypernetwork is neither: the identity warm-up has to learn (ii) first, and composition only from
    the LM loss."""
    torch.manual_seed(0)
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    src = model.get_input_embeddings().weight.detach()
    head = torch.randn_like(src)
    singles = [(i,) for i in range(old.vocab_size)]
    multi = [(3, 7), (10, 11, 12), tuple(range(20, 29))]  # the last is cut to surface_maxlen = 7
    fvt = torch.stack([src[list(p[:7])].mean(0) for p in multi])
    fvt_head = torch.stack([head[list(p[:7])].mean(0) for p in multi])
    hn = HyperNetwork(src, head, layers=1, heads=2, hidden=16, surface_maxlen=7, residual_mean=True).eval()
    e_in, e_out = hn.predict(singles)
    assert torch.equal(e_in, src) and torch.equal(e_out, head)
    m_in, m_out = hn.predict(multi)
    assert torch.allclose(m_in, fvt, atol=1e-6) and torch.allclose(m_out, fvt_head, atol=1e-6)
    paper, _ = hypernetwork_for(model, layers=1, heads=2, hidden=16, surface_maxlen=7).eval().predict(singles)
    assert relative_mse(paper, src) > 0.5


def test_residual_mean_lm_steps_learn_a_correction_and_keep_single_pieces(old, tmp_path):
    """With ``residual_mean`` the LM steps (no warm-up: the identity is exact at the start) move the
    multi-piece predictions off FVT, while the lexical loss keeps single-piece tokens at their rows."""
    torch.manual_seed(0)
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    src = model.get_input_embeddings().weight.detach().clone()
    recipe = ZeTTRecipe(layers=1, heads=2, hidden=16, vocab_size=128, identity_steps=0, residual_mean=True)
    tokensmith.run_recipe(
        model=model, tokenizer=old, train_data=[{"text": s} for s in TINY_CORPUS.split(". ")],
        recipe=recipe, objectives=[ZeTTLoss()], data={"max_length": 32, "packing": True},
        arguments={"steps": 4, "batch_size": 2, "lr": 3e-3, "progress": "off", "save_final": False},
        output_dir=tmp_path)
    hn = load_hypernetwork(tmp_path / ARTIFACT_NAME, model, old)
    assert hn.residual_mean and relative_mse(hn.predict([(i,) for i in range(old.vocab_size)])[0], src) < 0.05
    multi = [(3, 7), (10, 11, 12), (40, 41)]
    fvt = torch.stack([src[list(p)].mean(0) for p in multi])
    moved = (hn.predict(multi)[0] - fvt).norm(dim=1)
    assert (moved > 1e-3 * fvt.norm(dim=1)).all()
    assert torch.equal(model.get_input_embeddings().weight, src)  # the base LM stayed frozen


class TestContract(EmbeddingContract):
    @pytest.fixture
    def model_and_tokenizer(self, old):
        return tiny_llama(old, hidden_size=32, layers=1)

    @pytest.fixture
    def embedding_provider(self, model_and_tokenizer, tmp_path):
        model, tok = model_and_tokenizer
        hn = hypernetwork_for(model, layers=1, heads=2, hidden=None, surface_maxlen=7)
        return ZeTT(hypernetwork=save_hypernetwork(tmp_path / "hn.safetensors", hn, tok), ctx=ctx(tok))


def test_warm_up_skips_the_lm_then_lm_steps_train_only_the_hypernetwork(old, tmp_path):
    """The identity warm-up is the embedding regression alone (the frozen LM is never called); the
    LM steps after it backpropagate through the frozen LM into the hypernetwork only: no base
    parameter gets a gradient or changes; the artifact is refreshed every save_every steps."""
    torch.manual_seed(0)
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    model.model.register_forward_hook(lambda *a: calls.append(1))
    recipe = ZeTTRecipe(layers=1, heads=2, vocab_size=128, identity_vocab_size=64, identity_steps=2,
                        save_every=2)
    seen = []

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            path = tmp_path / ARTIFACT_NAME
            steps = tokensmith.load_artifact(path)[1]["config"]["steps"] if path.exists() else None
            seen.append((state.global_step, len(calls), steps))

    tokensmith.run_recipe(
        model=model, tokenizer=old, train_data=[{"text": s} for s in TINY_CORPUS.split(". ")],
        recipe=recipe, objectives=[ZeTTLoss()], data={"max_length": 32, "packing": True},
        arguments={"steps": 4, "batch_size": 2, "lr": 3e-3, "progress": "off", "save_final": False},
        callbacks=[Steps()], output_dir=tmp_path)
    assert [s[1] for s in seen[:2]] == [0, 0] and seen[2][1] > 0 and seen[3][1] > seen[2][1]
    assert seen[0][2] is None and seen[2][2] == 2  # written at step 2 (save_every), then at the end
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert tokensmith.load_artifact(tmp_path / ARTIFACT_NAME)[1]["config"]["steps"] == 4


@settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(st.integers(0, 200), min_size=1, max_size=9), min_size=1, max_size=12))
def test_grouped_forward_equals_the_padded_forward(old, pieces):
    """``embed`` runs the decompositions grouped by length (no padded work): the same rows, in
    the input order, as one padded forward with the padding masked."""
    torch.manual_seed(1)
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    hn = hypernetwork_for(model, layers=1, heads=2, hidden=16, surface_maxlen=7).eval()
    pieces = [tuple(p) for p in pieces]
    with torch.no_grad():
        grouped, _ = hn.embed(pieces)
        padded, _ = hn(*hn.pack(pieces))
    assert grouped.shape == padded.shape
    assert torch.allclose(grouped, padded, atol=1e-5)


# -- the decomposition and the sampled tokenizers ------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=12))
def test_decomposition_spells_the_token(old, text):
    piece = text.encode("utf-8")
    ids = decompose(piece, old, byte_index(old), maxlen=64)
    assert old.decode_bytes(ids) == piece
    assert len(decompose(piece, old, byte_index(old), maxlen=2)) <= 2


def test_a_byte_the_original_tokenizer_lacks_is_an_incompatibility_naming_it(smollm2):
    from tokensmith import IncompatibleComponentsError

    _, tok = smollm2  # SmolLM2 has no token for byte 0x04
    with pytest.raises(IncompatibleComponentsError, match="byte 0x04"):
        decompose(b"\x04a", tok, byte_index(tok), maxlen=8)


def brute_force_best(p, index, scores, max_len):
    best = -math.inf
    for cuts in itertools.product([0, 1], repeat=len(p) - 1):
        parts, start = [], 0
        for i, c in enumerate(cuts, 1):
            if c:
                parts.append(p[start:i])
                start = i
        parts.append(p[start:])
        if all(len(x) <= max_len and x in index for x in parts):
            best = max(best, sum(scores[index[x]] for x in parts))
    return best


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="abc d,", min_size=1, max_size=9), min_size=1, max_size=4),
       st.integers(0, 2**16), st.integers(8, 40))
def test_sampled_unigram_is_viterbi_and_spells_the_text(texts, seed, vocab_size):
    data = [t.encode() for t in texts]
    sampled = sample_tokenizer(data, vocab_size=vocab_size, max_len=4, noise_mean=1e-5, noise_std=4.0,
                               generator=random.Random(seed))
    index = sampled.index
    assert len(sampled.vocab) == len(set(sampled.vocab)) <= max(vocab_size, len({b for t in data for b in t}))
    assert all(bytes([b]) in index for t in data for b in t)
    for t in data:
        ids = sampled.tokenize(t)
        assert b"".join(sampled.vocab[i] for i in ids) == t
        for p in pretokens(t):
            got = sum(sampled.scores[i] for i in sampled.tokenize(p))
            assert got == pytest.approx(brute_force_best(p, index, sampled.scores, 4))
    again = sample_tokenizer(data, vocab_size=vocab_size, max_len=4, noise_mean=1e-5, noise_std=4.0,
                             generator=random.Random(seed))
    assert again == sampled


def test_noise_changes_the_sampled_vocabulary():
    data = [TINY_CORPUS.encode()]
    a, b = (sample_tokenizer(data, vocab_size=200, max_len=6, noise_mean=1e-5, noise_std=4.0,
                             generator=random.Random(s)) for s in (0, 1))
    assert set(a.vocab) != set(b.vocab)
    flat = [sample_tokenizer(data, vocab_size=200, max_len=6, noise_mean=0.0, noise_std=0.0,
                             generator=random.Random(s)) for s in (0, 1)]
    assert flat[0] == flat[1]


# -- errors ------------------------------------------------------------------------------

def test_recipe_without_the_zett_loss_is_a_config_error(old, tmp_path):
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    with pytest.raises(ConfigError, match="zett"):
        tokensmith.run_recipe(model=model, tokenizer=old, train_data=[{"text": TINY_CORPUS[:300]}],
                              recipe=ZeTTRecipe(layers=1, heads=2, vocab_size=64),
                              data={"max_length": 32, "packing": True},
                              arguments={"steps": 1, "batch_size": 1, "progress": "off", "save_final": False},
                              output_dir=tmp_path)


def test_bad_parameters_and_pieces(old, trained):
    with pytest.raises((ValueError, TypeError)):
        ZeTTRecipe(vocab_size=0)
    with pytest.raises((ValueError, TypeError)):
        ZeTTRecipe(noise_mean=float("nan"))
    with pytest.raises(InputError):
        ZeTT(hypernetwork="")
    with pytest.raises(InputError, match="pieces"):
        ZeTT(hypernetwork=trained.path).embed_tokens(trained.model, old, [(old.vocab_size,)])


def test_cpu_and_gpu_recipes_share_one_format():
    """The CPU recipe (the README's run), the GPU recipe (paper sizes, torchrun) and the tiny one
    (the torchrun test) are the same recipe format: the same tables, the zett recipe and loss."""
    from pathlib import Path

    examples = Path(__file__).parents[1] / "examples"
    specs = {p.name: tokensmith.RecipeSpec.from_toml(p) for p in sorted(examples.glob("zett-*.toml"))}
    assert set(specs) == {"zett-smollm2.toml", "zett-smollm2-cpu.toml", "zett-tiny.toml"}
    configs = {name: spec.to_config() for name, spec in specs.items()}
    assert len({tuple(sorted(c)) for c in configs.values()}) == 1
    for c in configs.values():
        assert c["recipe"]["type"] == "zett" and [o["type"] for o in c["objective"]] == ["zett"]
    gpu, cpu = configs["zett-smollm2.toml"], configs["zett-smollm2-cpu.toml"]
    assert gpu["recipe"]["identity_steps"] == 10000 and gpu["recipe"]["vocab_size"] == 32768
    assert cpu["train"]["steps"] * cpu["train"]["batch_size"] * cpu["data"]["max_length"] < 30_000


def test_tokens_the_original_cannot_spell_get_the_mean_row_and_are_reported(old, trained, monkeypatch):
    """A new token with a byte the original tokenizer has no token for (SmolLM2 lacks 21 bytes; a
    byte-level BPE has all 256) has no surface form: 'mean' gives it the mean row and the report
    lists it; 'error' refuses, naming the token."""
    new = tiny_tokenizer("byte_level", vocab_size=300, corpus=OTHER_CORPUS)
    monkeypatch.setattr(type(old), "unrepresentable_bytes", property(lambda self: frozenset({0xC0})))
    model, _ = tiny_llama(old, hidden_size=32, layers=1)
    model.load_state_dict(trained.model.state_dict())
    mean = model.get_input_embeddings().weight.detach()[: old.vocab_size].mean(0)
    hit = [i for i, b in enumerate(new.byte_table) if b and 0xC0 in b]
    assert hit
    with pytest.raises(IncompatibleComponentsError, match="no token for"):
        ZeTT(hypernetwork=trained.path, undecomposable="error").transfer(model, old, new)
    report = ZeTT(hypernetwork=trained.path).transfer(model, old, new)
    rows = model.get_input_embeddings().weight
    assert all(torch.allclose(rows[i], mean) for i in hit)
    assert any(f"{len(hit)} token(s)" in n for n in report.notes)
