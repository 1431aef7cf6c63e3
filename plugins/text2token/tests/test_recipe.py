"""The two-stage Text2Token recipe through the core runner on a tiny Llama (the recipe file and
registry-built components), the stage-2 targets from a frozen copy of the stage-1 model, the
pooled embedding's invariance to padding, the registered components and the benchmark's
metrics against brute force."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_text2token.benchmark import METHODS, retrieval, spearman, to_report
from tokensmith_text2token.embed import embed
from tokensmith_text2token.targets import model_derived_targets, pool_logits

import tokensmith
from tokensmith import ConfigError, ContextLengthError, IncompatibleComponentsError, InputError, Report
from tokensmith import average_ranks as ranks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TEXTS = ["Bushfires burn across New South Wales as crews fight the flames.",
         "The cricket team won the test match in Adelaide.",
         "Rain helps firefighters contain the blaze near Sydney.",
         "Share prices fell on the stock market today.",
         "Militants attacked a police station overnight.",
         "The minister announced a new budget for hospitals.",
         "Scientists found water ice on a distant moon.",
         "Farmers hope the drought will break this summer."]


@pytest.fixture
def plugin_registry(make_registry):
    import tokensmith_text2token.plugin as plugin

    return make_registry(plugin)


def test_the_recipe_file_trains_through_the_runner(installed_registry, tmp_path):
    pytest.importorskip("tokensmith_datasets")
    result = tokensmith.train(EXAMPLES / "text2token-tiny.toml", output_dir=tmp_path / "run",
                              registry=installed_registry)
    assert result.steps == 4 and [s for s, _ in result.losses] == [1, 2, 3, 4]
    assert all(v >= 0 and v == v for _, v in result.losses)
    assert result.report.metrics["train_sequences"] == 16


def test_stage_two_targets_come_from_the_frozen_stage_one_model(plugin_registry, tiny_llama, tmp_path):
    from transformers import TrainerCallback

    model, tokenizer = tiny_llama
    ctx = tokensmith.BuildContext(runtime=tokensmith.Runtime(), model=model, tokenizer=tokenizer,
                                  registry=plugin_registry)
    loss = plugin_registry.build("objective", {"type": "text2token", "top_k": 8, "max_df": 0.9}, ctx)
    recipe = plugin_registry.build("recipe", {"type": "text2token", "stage1_steps": 2}, ctx)
    snapshots = {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            snapshots[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            snapshots[f"stage@{state.global_step}"] = loss.stage

    result = tokensmith.run_recipe(
        model=model, tokenizer=tokenizer, train_data=[{"text": t} for t in TEXTS], objectives=[loss],
        recipe=recipe, data={"max_length": 96, "bos": False, "eos": False},
        arguments={"steps": 4, "batch_size": 4, "lr": 1e-2, "progress": "off", "save_final": False,
                   "shuffle": False}, callbacks=[Snapshot()], output_dir=tmp_path / "run")
    assert loss.fitted and loss.n_documents == len(TEXTS)          # fitted on the run's sequences
    assert [snapshots[f"stage@{s}"] for s in (1, 2, 3, 4)] == [1, 1, 2, 2]
    frozen = loss.frozen
    # the frozen model is the model after step 2, untouched by steps 3-4 and without gradients
    for name, value in frozen.state_dict().items():
        assert torch.equal(value, snapshots[2][name]), name
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.grad is None for p in frozen.parameters())
    trained = result.model.state_dict()
    assert any(not torch.equal(trained[k], snapshots[2][k]) for k in snapshots[2])
    # the model-derived targets: the frozen model's pooled top-k, no gradient, blind to the live model
    rows = [list(tokenizer.encode(t).ids) for t in TEXTS[:3]]
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    batch = {"input_ids": ids, "attention_mask": mask}
    got = loss.model_targets(batch)
    with torch.no_grad():
        pooled = pool_logits(frozen(input_ids=ids, attention_mask=mask).logits, mask)
    expected = model_derived_targets(pooled, 8)
    assert torch.allclose(got, expected, atol=1e-6) and not got.requires_grad
    before = loss.targets(batch)
    with torch.no_grad():
        for p in result.model.parameters():
            p.add_(torch.randn_like(p))
    assert torch.equal(loss.targets(batch), before)
    assert torch.allclose(before, 0.5 * loss.data_targets(batch) + 0.5 * got, atol=1e-6)


def test_the_recipe_refuses_what_it_cannot_train(plugin_registry, tiny_llama):
    model, tokenizer = tiny_llama
    recipe = plugin_registry.build("recipe", {"type": "text2token", "stage1_steps": 9})
    settings_ = tokensmith.TrainSettings(steps=4)
    ctx = tokensmith.TrainContext(runtime=tokensmith.Runtime(), model=model, tokenizer=tokenizer,
                                  settings=settings_)
    with pytest.raises(ConfigError, match="stage1_steps = 9"):
        recipe.prepare(model, ctx)
    ctx.settings = tokensmith.TrainSettings(steps=4, grad_accumulation=2)
    with pytest.raises(ConfigError, match="grad_accumulation"):
        plugin_registry.build("recipe", {"type": "text2token"}).prepare(model, ctx)
    model.lm_head.bias = torch.nn.Parameter(torch.zeros(model.lm_head.out_features))
    ctx.settings = settings_
    with pytest.raises(IncompatibleComponentsError, match="bias"):
        plugin_registry.build("recipe", {"type": "text2token"}).prepare(model, ctx)
    with pytest.raises(ConfigError):
        plugin_registry.build("objective", {"type": "text2token", "pooling": "max"})


@pytest.fixture(scope="module")
def frozen_llama(tiny_tokenizer):
    from tokensmith.testing import tiny_llama

    return tiny_llama(tiny_tokenizer, seed=3)


@settings(max_examples=6, deadline=None)
@given(pick=st.lists(st.integers(0, len(TEXTS) - 1), min_size=1, max_size=4, unique=True),
       batch_size=st.integers(1, 4))
def test_the_pooled_embedding_does_not_depend_on_padding_or_batch_company(frozen_llama, pick, batch_size):
    model, tokenizer = frozen_llama
    texts = [TEXTS[i] for i in pick]
    for pooling in ("mean", "last"):
        alone = [embed(model, tokenizer, [t], poolings=(pooling,))[pooling] for t in texts]
        for side in ("right", "left"):
            together = embed(model, tokenizer, texts, poolings=(pooling,), batch_size=batch_size,
                             padding_side=side)[pooling]
            for i, (e, z) in enumerate(alone):
                assert torch.allclose(together[0][i], e[0], atol=1e-5)
                assert torch.allclose(together[1][i], z[0], atol=1e-4)


def test_embedding_refuses_empty_and_too_long_texts(tiny_llama):
    model, tokenizer = tiny_llama
    with pytest.raises(InputError, match="text 1 is empty"):
        embed(model, tokenizer, ["fine", ""])
    with pytest.raises(ContextLengthError, match="text 0 has"):
        embed(model, tokenizer, [TEXTS[0]], max_length=4)
    with pytest.raises(InputError, match="not str"):
        embed(model, tokenizer, [3])


@settings(max_examples=30, deadline=None)
@given(x=st.lists(st.integers(-5, 5), min_size=3, max_size=12), seed=st.integers(0, 1000))
def test_spearman_is_pearson_of_tie_averaged_ranks(x, seed):
    import random

    y = list(x)
    random.Random(seed).shuffle(y)
    r = ranks(x)
    assert sorted(r) == pytest.approx(sorted(ranks(list(range(len(x)))))) or len(set(x)) < len(x)
    for i in range(len(x)):   # brute force rank: 1 + smaller + (ties - 1) / 2
        assert r[i] == 1 + sum(v < x[i] for v in x) + (sum(v == x[i] for v in x) - 1) / 2
    if len(set(x)) > 1 and len(set(y)) > 1:
        assert spearman(x, x) == pytest.approx(1.0)
        assert spearman(x, [-v for v in x]) == pytest.approx(-1.0)
        assert -1 - 1e-9 <= spearman(x, y) <= 1 + 1e-9


def test_retrieval_counts_ties_against_the_gold_document():
    queries = torch.eye(3)
    assert retrieval(queries, torch.eye(3)) == (1.0, 1.0)
    r1, mrr = retrieval(queries, torch.ones(3, 3))          # every document ties: rank 3
    assert r1 == 0.0 and mrr == pytest.approx(1 / 3)
    documents = torch.tensor([[0.0, 1, 0], [1.0, 0, 0], [0.0, 0, 1]])   # 0 and 1 swapped
    r1, mrr = retrieval(queries, documents)
    # queries 0 and 1: the gold scores 0 and ties two others (rank 3); query 2 rank 1
    assert r1 == pytest.approx(1 / 3) and mrr == pytest.approx((1 / 3 + 1 / 3 + 1) / 3)


def test_the_report_holds_every_method(plugin_registry):
    scores = {"spearman": 0.1, "recall@1": 0.2, "mrr": 0.3, "alignment": 0.4}
    results = {"setup": {"steps": 4, "batch": 4, "max_length": 64, "train_texts": 8, "squad_pairs": 8,
                         "lee_docs": 5},
               "seed": 0, "lr": 1e-4, "quick": True, "threads": 1, "model": "tiny-llama",
               "before": {"mean": scores, "last": {**scores, "mrr": 0.25}},
               "after": {"mean": {**scores, "spearman": 0.3}},
               "tfidf": {"spearman": 0.5, "recall@1": 0.6, "mrr": 0.7}, "losses": [(1, 2.0), (2, 1.5)],
               "train_seconds": 1.0, "eval_seconds": 1.0, "truncated": 3, "train_texts": 8, "lee_pairs": 10,
               "stage1_steps": 2, "trainable_parameters": 100, "documents_fitted": 8, "train_layers": 1}
    report = to_report(results)
    assert Report.from_json(report.to_json()) == report
    assert report.metrics["gain_spearman[text2token vs untrained mean]"] == pytest.approx(0.2)
    assert [row[0] for row in report.tables[0].rows] == list(METHODS)
    assert report.tables[0].rows[2][4] is None                     # tf-idf has no vocabulary projection
    record = plugin_registry.get("benchmark", "text2token")
    assert {p.name for p in plugin_registry.parameters(record).parameters} == {
        "steps", "lr", "train_layers", "model", "seed", "threads"}
