"""The Embedding interface: build an embedding module for a (tokenizer, model) pair and
install it into the model, reporting every change."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from .records import Change, ModelReport
from .tokenizer import Tokenizer


def describe(module: Any) -> str:
    shape = getattr(getattr(module, "weight", None), "shape", None)
    return f"{type(module).__name__}{tuple(shape) if shape is not None else ''}"


class EmbeddingProvider(ABC):
    """``build`` makes the ``nn.Module`` (ids -> vectors); ``install`` puts it into the
    model's input embeddings (and output head when tied or ``tie_output``)."""

    name: str = "embedding"
    tie_output: bool = False

    @abstractmethod
    def build(self, model: Any, tokenizer: Tokenizer) -> Any: ...

    def install(self, model: Any, module: Any) -> ModelReport:
        old = model.get_input_embeddings()
        changes = []
        if module is not old:
            model.set_input_embeddings(module)
            changes.append(Change("input_embeddings", describe(old), describe(module)))
        if self.tie_output and hasattr(model, "get_output_embeddings"):
            head = model.get_output_embeddings()
            if head is not None and getattr(module, "weight", None) is not None \
                    and head.weight is not module.weight:
                head.weight = module.weight
                changes.append(Change("output_embeddings", describe(head), "tied to input embeddings"))
        return ModelReport(f"embedding '{self.name}'", tuple(changes))

    def apply(self, model: Any, tokenizer: Tokenizer) -> ModelReport:
        return self.install(model, self.build(model, tokenizer))
