"""The dupmae recipe and loss through the core recipe runner, by name; the benchmark's scoring."""

from __future__ import annotations

import math

import pytest
import torch
from tokensmith_dupmae.model import DupMAEModel

import tokensmith
from tokensmith import ConfigError, Registry


def _train(bert, wordpiece, corpus, tmp_path, **arguments):
    return tokensmith.run_recipe(
        model=bert,
        tokenizer=wordpiece,
        train_data=[{"text": t} for t in corpus],
        eval_data=[{"text": t} for t in corpus[:2]],
        objectives=[{"type": "dupmae", "bow_weight": 0.1}],
        recipe=Registry.from_environment().build(
            "recipe", {"type": "dupmae", "encoder_mask_ratio": 0.3, "decoder_mask_ratio": 0.5}
        ),
        data={"max_length": 32, "bos": False, "eos": False},
        arguments={
            "steps": 4,
            "batch_size": 3,
            "lr": 3e-3,
            "progress": "off",
            "save_final": False,
            "seed": 0,
            **arguments,
        },
        output_dir=tmp_path / "run",
    )


def test_the_recipe_trains_a_bert_encoder_through_the_runner(make_bert, wordpiece, corpus, tmp_path):
    result = _train(make_bert(wordpiece), wordpiece, corpus, tmp_path, eval_at=[0], save_final=True)
    assert isinstance(result.model, DupMAEModel)
    assert len(result.losses) == 4 and all(math.isfinite(v) for _, v in result.losses)
    assert [e.label for e in result.evaluations][-1] == "end"
    assert result.evaluations[-1].loss < result.evaluations[0].loss  # it learns the six sentences
    assert (tmp_path / "run" / "train.json").is_file()
    # the final weights (a plain nn.Module's state_dict, the tied head stored once) load back exactly
    final = tmp_path / "run" / "final" / "model.safetensors"
    from safetensors.torch import load_model

    fresh = (
        Registry.from_environment()
        .build("recipe", "dupmae")
        .prepare(make_bert(wordpiece, seed=1), _Ctx(wordpiece))
    )
    load_model(fresh, str(final))
    assert all(
        torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), result.model.state_dict().values())
    )


class _Ctx:
    def __init__(self, tokenizer):
        self.tokenizer, self.settings = tokenizer, None


def test_gradient_accumulation_is_refused(make_bert, wordpiece, corpus, tmp_path):
    with pytest.raises(ConfigError, match="grad_accumulation"):
        _train(make_bert(wordpiece), wordpiece, corpus, tmp_path, grad_accumulation=2)


def test_components_are_registered_with_their_parameters():
    registry = Registry.from_environment()
    assert registry.get("objective", "dupmae").distribution == "tokensmith-dupmae"
    assert registry.get("recipe", "dupmae").distribution == "tokensmith-dupmae"
    assert registry.get("benchmark", "dupmae-retrieval").distribution == "tokensmith-dupmae"
    with pytest.raises(ConfigError, match="encoder_mask_ratio"):
        registry.build("recipe", {"type": "dupmae", "encoder_mask_ratio": 1.5})
    with pytest.raises(ConfigError, match="bow_weight"):
        registry.build("objective", {"type": "dupmae", "bow_weight": -1})


def test_retrieval_scores_match_brute_force():
    from tokensmith_dupmae.benchmark import retrieval_scores

    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(12, 5), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(12, 5), dim=-1)
    ranks = []
    for i in range(12):
        order = sorted(range(12), key=lambda j: -float(q[i] @ p[j]))
        ranks.append(order.index(i) + 1)
    got = retrieval_scores(q, p)
    assert got["recall@1"] == pytest.approx(sum(r == 1 for r in ranks) / 12)
    assert got["recall@5"] == pytest.approx(sum(r <= 5 for r in ranks) / 12)
    assert got["mrr"] == pytest.approx(sum(1 / r for r in ranks) / 12)
    assert retrieval_scores(p, p) == {"recall@1": 1.0, "recall@5": 1.0, "mrr": 1.0}


def test_the_report_has_every_method_and_the_gains():
    from tokensmith_dupmae.benchmark import FULL, METHODS, to_report

    results = {m: {"recall@1": 0.5, "recall@5": 0.8, "mrr": 0.6 + 0.01 * i} for i, m in enumerate(METHODS)}
    setup = {
        **FULL,
        "train_texts": 10,
        "leaked_passages": 0,
        "batch_size": 8,
        "max_length": 64,
        "encode_length": 128,
        "lr": 5e-5,
        "bow_weight": 0.1,
        "encoder_mask_ratio": 0.3,
        "decoder_mask_ratio": 0.5,
        "top_k": 256,
    }
    report = to_report(results, [(1, 9.0), (2, 8.0)], setup)
    assert report.metrics["mrr_ratio[dupmae cls+ot / minilm mean]"] == pytest.approx(0.65 / 0.61)
    assert [row[0] for row in report.tables[0].rows] == list(METHODS)


@pytest.mark.minilm
def test_minilm_becomes_a_dupmae_model_with_a_tied_head(minilm):
    from tokensmith_dupmae.model import dupmae_model

    encoder, tokenizer = minilm
    model = dupmae_model(encoder, tokenizer)
    head = model.mlm.cls.predictions.decoder.weight
    assert head is model.mlm.bert.embeddings.word_embeddings.weight
    assert torch.equal(
        model.mlm.bert.encoder.layer[0].attention.self.query.weight,
        encoder.encoder.layer[0].attention.self.query.weight,
    )
    ids = torch.tensor([tokenizer.encode("Which river flows through Paris?").ids])
    reps = model.representations(ids)
    assert reps["aggregated"].shape == (1, 384 + 30522)
    vanilla = encoder(input_ids=torch.tensor([[101, *ids[0].tolist(), 102]])).last_hidden_state
    assert torch.allclose(reps["cls"], vanilla[:, 0], atol=1e-5)  # unmasked encoding is MiniLM's own


def test_the_shipped_recipe_file_validates():
    from pathlib import Path

    from tokensmith import RecipeSpec

    spec = RecipeSpec.from_toml(Path(__file__).parents[1] / "recipes" / "dupmae-minilm.toml")
    assert spec.problems(Registry.from_environment()) == []
