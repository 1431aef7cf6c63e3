"""The model's own tokenizer and embeddings, a tokenizer file, and identity normalization."""

from __future__ import annotations

from typing import Any

import attrs

from tokensmith import BuildContext, EmbeddingProvider, ModelReport, NormalizationProvider, NormLayer
from tokensmith.core.normalization import find_norm_layers


def model_tokenizer(config: None, ctx: BuildContext):
    return ctx.tokenizer


@attrs.frozen
class HFFileConfig:
    path: str
    strict: bool = True


def file_tokenizer(config: HFFileConfig, ctx: BuildContext):
    from tokensmith.adapters.hf_tokenizer import HFTokenizer

    return HFTokenizer.from_file(config.path, strict=config.strict)


class ModelEmbedding(EmbeddingProvider):
    """Keeps the model's input embeddings: ``build`` returns them, ``install`` changes nothing."""

    name = "model"

    def __init__(self, config: None = None, ctx: BuildContext | None = None) -> None:
        pass

    def build(self, model: Any, tokenizer: Any) -> Any:
        return model.get_input_embeddings()


class IdentityNormalization(NormalizationProvider):
    """Leaves every norm layer in place; the report lists what it saw."""

    name = "identity"

    def __init__(self, config: None = None, ctx: BuildContext | None = None) -> None:
        pass

    def make(self, layer: NormLayer) -> Any:
        return layer.module

    def replace(self, model: Any, *, inplace: bool = True) -> tuple[Any, ModelReport]:
        supported, _ = find_norm_layers(model)
        return model, ModelReport(f"normalization '{self.name}'", (),
                                  (f"{len(supported)} norm layer(s) kept",))
