"""The provider and recipe: the embedding contract, a table bit-identical after a training run
through the core runner (while the head trains), pipelines by name, and saved tables bound to
their tokenizer. (The trainable twin of the benchmark is the model whose table moves.)"""

from __future__ import annotations

import pytest
import torch
from tokensmith_glyph_embeddings.embedding import GlyphEmbeddings, GlyphEmbeddingsRecipe
from tokensmith_glyph_embeddings.table import save_table

from tokensmith import IncompatibleComponentsError, PipelineSpec, run_recipe
from tokensmith.testing import TINY_CORPUS, EmbeddingContract, tiny_llama, tiny_tokenizer


class TestGlyphEmbeddings(EmbeddingContract):
    @pytest.fixture
    def embedding_provider(self, bank):
        return GlyphEmbeddings()

    @pytest.fixture
    def model_and_tokenizer(self):
        return tiny_llama(tiny_tokenizer(), hidden_size=16, layers=1)


def _train(recipe, steps=2):
    tokenizer = tiny_tokenizer()
    model, _ = tiny_llama(tokenizer, hidden_size=16, layers=1)
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied before
    head_before = model.lm_head.weight.detach().clone()
    examples = [{"text": s} for s in TINY_CORPUS.split(". ")]
    result = run_recipe(model=model, tokenizer=tokenizer, train_data=examples, recipe=recipe,
                        data={"max_length": 16, "packing": True},
                        arguments={"steps": steps, "batch_size": 2, "lr": 1e-2, "weight_decay": 0.1,
                                   "progress": "off", "save_final": False}, output_dir=None)
    return tokenizer, result, head_before


def test_the_table_is_bit_identical_after_training_and_the_head_trains(bank, registry, tmp_path):
    recipe = GlyphEmbeddingsRecipe()
    tokenizer, result, head_before = _train(recipe)
    table = recipe.table_for(tokenizer, 16, registry).table
    model = result.model
    weight = model.get_input_embeddings().weight
    assert torch.equal(weight, table) and not weight.requires_grad
    assert torch.allclose(weight.norm(dim=1), torch.ones(len(weight)), atol=1e-6)
    assert model.lm_head.weight is not weight and not model.config.tie_word_embeddings
    assert not torch.equal(model.lm_head.weight, head_before)  # the output head trained
    assert result.report.metrics["trainable_parameters"] < result.report.metrics["parameters"]


def test_frozen_false_installs_the_table_as_a_trainable_init(bank):
    model, tokenizer = tiny_llama(tiny_tokenizer(), hidden_size=16, layers=1)
    GlyphEmbeddings(frozen=False).apply(model, tokenizer)
    weight = model.get_input_embeddings().weight
    assert weight.requires_grad and model.lm_head.weight is not weight


def test_a_pipeline_installs_it_by_name(bank, registry):
    pipeline = registry.build_pipeline(PipelineSpec(
        model={"source": "tiny-llama", "hidden_size": 16, "layers": 1}, embedding="glyph-embeddings",
        runtime={"device": "cpu", "seed": 0}))
    weight = pipeline.model.get_input_embeddings().weight
    assert not weight.requires_grad and torch.allclose(weight.norm(dim=1), torch.ones(len(weight)), atol=1e-6)
    report = pipeline.reports[0]
    assert any(c.path == "input_embeddings.weight.requires_grad" for c in report.changes)
    assert any("PCA keeps" in note for note in report.notes)
    ids = torch.tensor([pipeline.tokenizer.encode("The glyphs").ids])
    assert torch.isfinite(pipeline.model(input_ids=ids).logits).all()


def test_a_saved_table_installs_only_for_its_tokenizer_and_width(bank, registry, tmp_path):
    tokenizer = tiny_tokenizer()
    glyphs = GlyphEmbeddings().table_for(tokenizer, 16, registry)
    path = save_table(tmp_path / "table.safetensors", glyphs)
    model, _ = tiny_llama(tokenizer, hidden_size=16, layers=1)
    GlyphEmbeddings(path=path).apply(model, tokenizer)
    assert torch.equal(model.get_input_embeddings().weight, glyphs.table)
    other = tiny_tokenizer("byte_level", vocab_size=300, corpus=["other merges, other ids"] * 4)
    with pytest.raises(IncompatibleComponentsError, match="made for tokenizer"):
        GlyphEmbeddings(path=path).apply(tiny_llama(other, hidden_size=16, layers=1)[0], other)
    wide, _ = tiny_llama(tokenizer, hidden_size=32, layers=1)
    with pytest.raises(IncompatibleComponentsError, match="16 wide"):
        GlyphEmbeddings(path=path).apply(wide, tokenizer)
