"""TokenAdapt's invariants (arXiv 2505.09738) on tiny models: same tokenizer -> same logits,
shared rows bit-identical, convex weights (rows in the old table's convex hull), λ = 0 / 1 are
the local / global ablations, the seeded fallback, and artifacts bound to their tokenizer."""

from __future__ import annotations

import types
from typing import Any, ClassVar

import attrs
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_tokenadapt.heuristics import (
    CharNgramEmbedder,
    global_weights,
    local_weights,
    plan_transplant,
)
from tokensmith_tokenadapt.provider import TokenAdapt, load_embeddings, save_embeddings, transplant

from tokensmith import (
    Component,
    ConfigError,
    EmbeddingProvider,
    IncompatibleComponentsError,
    hookimpl,
    install_embeddings,
    map_shared_tokens,
)
from tokensmith.testing import EmbeddingContract, tiny_llama, tiny_tokenizer

OTHER_CORPUS = ["licence terms: the licensee shall redistribute the software without warranty"] * 6 + [
    "Permission is hereby granted, free of charge, to any person obtaining a copy"] * 6


@pytest.fixture(scope="module")
def old():
    return tiny_tokenizer("byte_level")


@pytest.fixture(scope="module")
def new():
    return tiny_tokenizer("byte_level", vocab_size=300, corpus=OTHER_CORPUS)


@pytest.fixture(scope="module")
def plan(old, new):
    return plan_transplant(old, new, CharNgramEmbedder(), temperature=0.3, top_k=3, threshold=0.0)


def untie(model):
    head = model.get_output_embeddings()
    head.weight = torch.nn.Parameter(head.weight.detach().clone() + 0.01)
    model.config.tie_word_embeddings = False
    return model


def ctx(tokenizer):
    return types.SimpleNamespace(model_tokenizer=tokenizer)


class TestContract(EmbeddingContract):
    @pytest.fixture
    def model_and_tokenizer(self, old):
        return tiny_llama(old)

    @pytest.fixture
    def embedding_provider(self, model_and_tokenizer):
        return TokenAdapt(embedder="char-ngrams", ctx=ctx(model_and_tokenizer[1]))


@pytest.mark.parametrize("tied", [True, False])
def test_same_tokenizer_same_logits(old, tied):
    model, _ = tiny_llama(old)
    if not tied:
        untie(model)
    ids = torch.tensor([old.encode("The quick brown fox jumps").ids])
    before = model(input_ids=ids).logits
    TokenAdapt(embedder="char-ngrams", ctx=ctx(old)).apply(model, old)
    assert torch.equal(model(input_ids=ids).logits, before)


@pytest.mark.parametrize("tied", [True, False])
def test_shared_rows_bit_identical_and_others_from_the_plan(old, new, plan, tied):
    model, _ = tiny_llama(old)
    if not tied:
        untie(model)
    emb_old = model.get_input_embeddings().weight.detach().clone()
    head_old = model.get_output_embeddings().weight.detach().clone()
    transplant(model, old, new, TokenAdapt(embedder="char-ngrams"), plan=plan)
    emb = model.get_input_embeddings().weight.detach()
    head = model.get_output_embeddings().weight.detach()
    assert emb.shape[0] == new.vocab_size
    assert (head is emb) == tied or torch.equal(head, emb) == tied
    shared = map_shared_tokens(old, new)
    assert 0 < len(shared) < new.vocab_size
    for n, o in shared.items():
        assert torch.equal(emb[n], emb_old[o]) and torch.equal(head[n], head_old[o])
    rows = plan.row_weights("hybrid", 0.3)
    for n, est in rows.items():
        assert est is not None  # the char-ngram φ always finds neighbours at threshold 0
        idx = list(est.ids)
        torch.testing.assert_close(emb[n], est.weights @ emb_old[idx])
        # untied: the head row is the same combination of the old head's rows
        torch.testing.assert_close(head[n], est.weights @ head_old[idx])


def test_rows_in_the_convex_hull(old, new, plan):
    model, _ = tiny_llama(old)
    emb_old = model.get_input_embeddings().weight.detach().clone()
    max_norm = emb_old.norm(dim=1).max()
    transplant(model, old, new, TokenAdapt(embedder="char-ngrams"), plan=plan)
    emb = model.get_input_embeddings().weight.detach()
    for mode in ("hybrid", "local", "global", "fvt"):
        for est in plan.row_weights(mode, 0.3).values():
            if est is None:
                continue
            assert (est.weights >= 0).all()
            assert float(est.weights.sum()) == pytest.approx(1.0, abs=1e-6)
    assert (emb.norm(dim=1) <= max_norm + 1e-5).all()


def test_lambda_zero_is_local_and_one_is_global(plan):
    hybrid0, hybrid1 = plan.row_weights("hybrid", 0.0), plan.row_weights("hybrid", 1.0)
    table = torch.randn(plan.old_vocab, 5, generator=torch.Generator().manual_seed(0))

    def row(est):
        return est.weights @ table[list(est.ids)]

    both = [i for i in plan.local if plan.local[i] is not None and plan.global_[i] is not None]
    assert both
    for i in both:
        torch.testing.assert_close(row(hybrid0[i]), row(plan.local[i]))
        torch.testing.assert_close(row(hybrid1[i]), row(plan.global_[i]))


def test_local_weights_match_the_formula_by_hand():
    phi = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), dim=1)
    w = local_weights(phi[0], phi[1:], [2, 3], 5, 0.3)
    c = [2 ** -0.5, 0.0]
    e = [torch.tensor(x).exp() for x in c]
    a = [float(x / (e[0] + e[1])) for x in e]
    z = [((a[0] + 2 / 5) / 2) / 0.3, ((a[1] + 3 / 5) / 2) / 0.3]
    ez = [torch.tensor(x).exp() for x in z]
    expected = torch.tensor([float(ez[0] / (ez[0] + ez[1])), float(ez[1] / (ez[0] + ez[1]))])
    torch.testing.assert_close(w, expected)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=1, max_size=8), st.floats(0.05, 2.0), st.floats(-1, 1))
def test_global_weights_convex_and_masked(sims, tau, threshold):
    s = torch.tensor(sims)
    u = global_weights(s, tau, threshold)
    if not (s >= threshold).any():
        assert u is None
        return
    assert (u >= 0).all() and float(u.sum()) == pytest.approx(1.0, abs=1e-6)
    assert (u[s < threshold] == 0).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.floats(0.05, 2.0), st.integers(0, 10_000))
def test_local_weights_convex(n, tau, seed):
    g = torch.Generator().manual_seed(seed)
    phi = torch.nn.functional.normalize(torch.randn(n + 1, 4, generator=g), dim=1)
    lengths = torch.randint(1, 5, (n,), generator=g).tolist()
    w = local_weights(phi[0], phi[1:], lengths, sum(lengths), tau)
    assert (w >= 0).all() and float(w.sum()) == pytest.approx(1.0, abs=1e-6)


def test_fallback_is_seeded_normal_draw(old, new):
    # threshold 1.0 masks every neighbour: global-only has no estimate, every unique row falls back
    plan = plan_transplant(old, new, CharNgramEmbedder(), threshold=1.0)
    assert plan.counts("global", 1.0)["estimated"] == 0
    tables = []
    for seed in (3, 3, 4):
        model, _ = tiny_llama(old)
        transplant(model, old, new, TokenAdapt(embedder="char-ngrams", mode="global", seed=seed,
                                               threshold=1.0), plan=plan)
        tables.append(model.get_input_embeddings().weight.detach().clone())
    assert torch.equal(tables[0], tables[1]) and not torch.equal(tables[0], tables[2])
    assert torch.isfinite(tables[0]).all()


def test_artifact_round_trip_and_vocabulary_mismatch(old, new, plan, tmp_path):
    model, _ = tiny_llama(old)
    untie(model)
    transplant(model, old, new, TokenAdapt(embedder="char-ngrams"), plan=plan)
    path = save_embeddings(tmp_path / "table.safetensors", model, new, config={"mode": "hybrid"})
    table, head = load_embeddings(path, new)
    assert torch.equal(table, model.get_input_embeddings().weight.detach())
    assert torch.equal(head, model.get_output_embeddings().weight.detach())
    again, _ = tiny_llama(old)
    untie(again)
    TokenAdapt(artifact=path, ctx=ctx(old)).apply(again, new)
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)
    with pytest.raises(IncompatibleComponentsError, match="300 rows"):
        load_embeddings(path, old)  # 320 ids: a row-count mismatch
    same_size = tiny_tokenizer("byte_level", vocab_size=300)  # the default corpus: other merges
    assert same_size.vocab_size == new.vocab_size and same_size.fingerprint() != new.fingerprint()
    with pytest.raises(IncompatibleComponentsError, match="fingerprint"):
        load_embeddings(path, same_size)


def test_registry_validates_parameters(make_registry):
    import tokensmith_tokenadapt.plugin as plugin

    registry = make_registry(plugin)
    for bad in ({"temperature": 0}, {"weight": 1.5}, {"top_k": 0}, {"threshold": 2.0}, {"mode": "both"}):
        with pytest.raises(ConfigError):
            registry.build("embedding", {"type": "tokenadapt", **bad})
    built = registry.build("embedding", {"type": "tokenadapt", "embedder": "char-ngrams"})
    assert isinstance(built, TokenAdapt) and built.weight == 0.3 and built.top_k == 3


@pytest.mark.minilm
def test_minilm_embedder_neighbours(minilm):
    from tokensmith_tokenadapt.heuristics import MiniLMEmbedder

    embedder = MiniLMEmbedder(batch_size=2)
    phi = embedder.embed(["dog", "puppy", "carburettor"])
    assert torch.allclose(phi.norm(dim=1), torch.ones(3), atol=1e-5)
    assert float(phi[0] @ phi[1]) > float(phi[0] @ phi[2])
    # batches are formed by length; the rows still follow the input order
    again = embedder.embed(["carburettor", "dog", "puppy"])
    assert torch.allclose(again, phi[[2, 0, 1]], atol=1e-5)


def test_cached_embedder_computes_once_and_reloads(tmp_path):
    from tokensmith_tokenadapt.heuristics import CachedEmbedder

    class Counting(CharNgramEmbedder):
        calls = 0

        def embed(self, texts):
            Counting.calls += 1
            return super().embed(texts)

    texts = ["licence", "the", "warranty"]
    first = CachedEmbedder(Counting(), str(tmp_path)).embed(texts)
    second = CachedEmbedder(Counting(), str(tmp_path)).embed(texts)
    assert Counting.calls == 1 and torch.equal(first, second)
    assert torch.equal(first, CharNgramEmbedder().embed(texts))
    CachedEmbedder(Counting(), str(tmp_path)).embed(texts[:2])  # other strings: another entry
    assert Counting.calls == 2 and len(list(tmp_path.glob("phi-*.safetensors"))) == 2


def test_benchmark_parameters_checked(make_registry):
    import tokensmith_tokenadapt.plugin as plugin

    registry = make_registry(plugin)
    with pytest.raises(ConfigError):
        registry.build("benchmark", {"type": "transplant", "inits": ["mean", "omp"]})
    assert registry.build("benchmark", {"type": "transplant", "inits": ["mean"]}).inits == ("mean",)
    for bad in ({"zett_hypernetwork": 3}, {"new_tokenizer": ["a"]}, {"phi_cache": 1.5}):
        with pytest.raises((ConfigError, TypeError)):
            registry.build("benchmark", {"type": "transplant", **bad})
    for bad in ({"train_rows": "shared"}, {"schedule": "sometimes"}, {"weight_decay": -0.1}, {"lr": 0}):
        with pytest.raises(ConfigError):
            registry.build("benchmark", {"type": "transplant", **bad})
    with pytest.raises(ConfigError, match="warmup"):  # refused before any model loads
        registry.build("benchmark", {"type": "transplant", "steps": 3, "warmup": 4}).run()
    built = registry.build("benchmark", {"type": "transplant", "zett_hypernetwork": "hn.safetensors"})
    assert built.zett_hypernetwork == "hn.safetensors"


def test_new_token_the_old_tokenizer_cannot_encode_is_decomposed_by_bytes(old, new, monkeypatch):
    """SmolLM2 has no token for the byte 0x04: encoding such a new token raises
    UnrepresentableTextError, and the plan falls back to the byte match instead of stopping."""
    from tokensmith import UnrepresentableTextError

    encode = old.encode

    def refusing(text, *args, **kwargs):
        if "e" in text:
            raise UnrepresentableTextError("no token for 'e' here", component="test tokenizer")
        return encode(text, *args, **kwargs)

    monkeypatch.setattr(old, "encode", refusing)
    plan = plan_transplant(old, new, CharNgramEmbedder())
    with_e = [i for i in plan.local if "e" in new.token_bytes(i).decode("utf-8", "replace")]
    assert with_e and all(plan.local[i] is not None for i in with_e)
    for i in with_e:  # the pieces spell the token's bytes exactly
        assert b"".join(old.token_bytes(p) for p in plan.local[i].ids) == new.token_bytes(i)


FINE_TUNE_DATA = [{"text": "the licensee shall redistribute the software"}] * 4


def fine_tuned(old, new, rows, tied=True, lazy=False):
    from tokensmith_tokenadapt.finetune import fine_tune_embeddings

    model, _ = tiny_llama(old)
    if not tied:
        untie(model)
    transplant(model, old, new, TokenAdapt(embedder="char-ngrams"))
    tables = [w.detach().clone() for w in (model.get_input_embeddings().weight,
                                           model.get_output_embeddings().weight)]
    fine_tune_embeddings(model, new, FINE_TUNE_DATA, steps=3, batch_size=2, max_length=16, lr=1e-3, warmup=0,
                         schedule="constant", weight_decay=0.0, rows=rows, lazy=lazy, seed=0)
    moved = [(w.detach() - t).abs().amax(1) for w, t in zip(
        (model.get_input_embeddings().weight, model.get_output_embeddings().weight), tables)]
    return model, moved


def test_adam_moves_rows_the_data_never_uses(old, new):
    """Why the all-rows fine-tune hurt a warm start: with a tied table, AdamW moves the row of a
    token that never occurs in the data (its gradient is only the softmax's push) as far as a
    used one, ~lr per coordinate per step: every shared row's exact copy is disturbed."""
    used = {new.eos_id} | {i for e in FINE_TUNE_DATA for i in new.encode(e["text"]).ids}
    unused = [i for i in range(new.vocab_size) if i not in used]
    _, (moved, _) = fine_tuned(old, new, None)
    assert moved[unused].median() > 0.5 * moved[sorted(used)].median() > 0
    assert moved[unused].median() > 2e-3  # 3 steps at lr 1e-3: the rescaled step, not the tiny gradient


@pytest.mark.parametrize(("tied", "lazy"), [(True, True), (False, False)])
def test_new_rows_fine_tune_keeps_shared_rows_bit_identical(old, new, tied, lazy):
    """train_rows='new': shared rows stay bit-identical (tied table, untied head); lazy: of the
    new rows only those of tokens in the data move."""
    from tokensmith_tokenadapt.finetune import new_rows

    rows = new_rows(old, new)
    shared = sorted(map_shared_tokens(old, new))
    used = {new.eos_id} | {i for e in FINE_TUNE_DATA for i in new.encode(e["text"]).ids}
    assert rows and shared and set(rows).isdisjoint(shared) and set(rows) - used
    model, moved = fine_tuned(old, new, rows, tied=tied, lazy=lazy)
    for table in moved:  # the input table and the (tied or untied) head
        assert torch.equal(table[shared], torch.zeros(len(shared)))
    changed = [{i for i in rows if table[i] > 0} for table in moved]
    if lazy:
        assert changed[0] == changed[1] == set(rows) & used
    else:  # untied: the input table's gradient is sparse, the head's reaches every row
        assert changed == [set(rows) & used, set(rows)]
    assert not model.get_input_embeddings().weight._backward_hooks  # the mask is gone after the run


def curve_bench(tmp_path, new, monkeypatch, **params):
    """The transplant benchmark on tiny-llama, onto ``new``, scored on the first pieces of the
    held-out licence only (what is checked does not depend on how much text is scored)."""
    import tokensmith_tokenadapt.benchmark as benchmark

    held_out = benchmark.held_out_texts
    monkeypatch.setattr(benchmark, "held_out_texts", lambda *a, **k: (held_out(*a, **k)[0][:3], 0))
    path = tmp_path / "new"
    if not path.exists():
        new.save(str(path))
    base = {"model": "tiny-llama", "embedder": "char-ngrams", "new_tokenizer": str(path), "held_out_bytes": 1,
            "chunk_bytes": 150, "train_texts": 4, "batch_size": 2, "max_length": 16, "lr": 1e-3, "warmup": 0,
            "schedule": "constant", "threads": 1, "inits": ["fvt"]}
    return benchmark.TransplantBenchmark(**{**base, **params}).run(quick=True)


def test_learning_curve_points_are_the_shorter_runs(tmp_path, new, monkeypatch):
    """eval_at scores the held-out text inside the same fine-tune (a callback of the runner): the
    curve starts at the 'before' number and ends at the 'after' one, and at a constant learning
    rate its point after 1 step is exactly a separate 1-step run's result (the same seeded batches;
    scoring in the callback changes nothing in the training)."""
    long = curve_bench(tmp_path, new, monkeypatch, steps=2, eval_at=[1])
    short = curve_bench(tmp_path, new, monkeypatch, steps=1, reference=False)
    m, s = long.metrics, short.metrics
    assert m["fvt_bits_per_byte_at_0"] == m["fvt_bits_per_byte"] == s["fvt_bits_per_byte"]
    assert m["fvt_bits_per_byte_at_2"] == m["fvt_bits_per_byte_after"]
    assert m["fvt_bits_per_byte_at_1"] == pytest.approx(s["fvt_bits_per_byte_after"], rel=1e-6)
    assert len({m["fvt_bits_per_byte_at_0"], m["fvt_bits_per_byte_at_1"], m["fvt_bits_per_byte_at_2"]}) == 3
    assert m["original_bits_per_byte_at_0"] == m["original_bits_per_byte"]
    assert m["original_bits_per_byte_at_2"] == m["original_bits_per_byte_after"]
    curve = next(t for t in long.tables if t.title.startswith("learning curve"))
    assert curve.columns == ("init", "0 steps", "1 steps", "2 steps")
    assert [r[0] for r in curve.rows] == ["fvt", "original fine-tuned (reference)"]
    lines = {x.name for x in long.series if x.group == "learning curve"}
    assert lines == {"fvt", "original fine-tuned (reference)", "within 10% of the original"}
    assert not any(t.title.startswith("learning curve") for t in short.tables)


def test_learning_curve_steps_checked(make_registry):
    import tokensmith_tokenadapt.plugin as plugin

    registry = make_registry(plugin)
    for bad in ([0, 2], [3, 2], [2, 2]):
        with pytest.raises(ConfigError):
            registry.build("benchmark", {"type": "transplant", "eval_at": bad})
    with pytest.raises(ConfigError, match="eval_at"):  # refused before any model loads
        registry.build("benchmark", {"type": "transplant", "steps": 4, "eval_at": [2, 4]}).run()


@attrs.define
class FakeZeTT(EmbeddingProvider):
    """Stands in for tokensmith-zett's ``zett`` embedding (built by name, as the benchmark does):
    every row the mean old row, or with ``copy_shared`` the shared rows copied; records the calls."""

    name = "zett"
    calls: ClassVar[list[bool]] = []

    hypernetwork: str = attrs.field(validator=attrs.validators.instance_of(str), metadata={"doc": "path"})
    copy_shared: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool),
                                    metadata={"doc": "copy the shared rows"})
    ctx: Any = attrs.field(default=None, repr=False, eq=False)

    def build(self, model, tokenizer):
        return model.get_input_embeddings()

    def apply(self, model, tokenizer):
        FakeZeTT.calls.append(self.copy_shared)
        old = self.ctx.model_tokenizer
        if self.copy_shared:
            return install_embeddings(model, tokenizer, old_tokenizer=old, init="mean")
        table = model.get_input_embeddings().weight[: old.vocab_size].detach().mean(0)
        return install_embeddings(model, tokenizer, old_tokenizer=old,
                                  table=table.expand(tokenizer.vocab_size, -1).clone())


class FakeZeTTPlugin:
    @hookimpl
    def tokensmith_register_embeddings(self):
        return [Component("zett", FakeZeTT, "a stand-in for tokensmith-zett's zett embedding")]


def test_zett_rows_both_ways(tmp_path, new, monkeypatch, make_registry):
    """The two ZeTT rows: the 'zett' embedding built by name with copy_shared false (the paper's
    setting, every row predicted) and true ('zett + copied shared rows'), labelled, one note."""
    # the installed tokenadapt and datasets plugins and the stand-in (never the real tokensmith-zett)
    registry = make_registry(FakeZeTTPlugin(), entry_points=True,
                             env={"TOKENSMITH_LOAD_PLUGINS": "tokensmith-tokenadapt,tokensmith-datasets"})
    import tokensmith_tokenadapt.benchmark as benchmark

    held_out = benchmark.held_out_texts
    monkeypatch.setattr(benchmark, "held_out_texts", lambda *a, **k: (held_out(*a, **k)[0][:3], 0))
    (tmp_path / "hn.safetensors").write_bytes(b"")
    new.save(str(tmp_path / "new"))
    FakeZeTT.calls.clear()
    report = registry.build("benchmark", {
        "type": "transplant", "model": "tiny-llama", "new_tokenizer": str(tmp_path / "new"), "steps": 0,
        "held_out_bytes": 1, "chunk_bytes": 150, "threads": 1, "inits": ["zett", "zett-copy-shared"],
        "zett_hypernetwork": str(tmp_path / "hn.safetensors")}).run(quick=True)
    assert FakeZeTT.calls == [False, True]
    rows = {r[0]: r for r in report.tables[0].rows}
    assert list(rows) == ["zett (paper's setting: every row predicted)", "zett + copied shared rows"]
    m = report.metrics
    assert m["zett_bits_per_byte"] != m["zett-copy-shared_bits_per_byte"]
    assert sum("copy_shared = true" in n for n in report.notes) == 1
