"""The model's own tokenizer and embeddings, a tokenizer file, and identity normalization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokensmith import (
    BuildContext,
    EmbeddingProvider,
    HFTokenizer,
    IncompatibleComponentsError,
    ModelReport,
    NormalizationProvider,
    NormLayer,
    find_norm_layers,
)


def model_tokenizer(ctx: BuildContext):
    """The loaded model's own tokenizer (its byte view was checked when it loaded)."""
    if ctx.tokenizer is None:
        raise IncompatibleComponentsError(
            "there is no loaded model whose tokenizer this could be", component="tokenizer 'model'",
            hint="give a model (--model SOURCE, --pipeline TOML), or a tokenizer file: "
            '{"type": "hf-file", "path": "tokenizer.json"}')
    return ctx.tokenizer


def file_tokenizer(path: Path, strict: bool = True):
    """A Hugging Face ``tokenizer.json`` file; ``strict`` refuses text it would lose."""
    return HFTokenizer.from_file(path, strict=strict)


class ModelEmbedding(EmbeddingProvider):
    """Keeps the model's input embeddings: ``build`` returns them, ``install`` changes nothing."""

    name = "model"

    def build(self, model: Any, tokenizer: Any) -> Any:
        return model.get_input_embeddings()


class IdentityNormalization(NormalizationProvider):
    """Leaves every norm layer in place; the report lists what it saw."""

    name = "identity"

    def make(self, layer: NormLayer) -> Any:
        return layer.module

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        supported, _ = find_norm_layers(model)
        return model, ModelReport(f"normalization '{self.name}'", (),
                                  (f"{len(supported)} norm layer(s) kept",))
