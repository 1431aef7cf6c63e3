"""A third-party plugin for the tests: an initializer this plugin does not know, found by name."""

from __future__ import annotations

import pytest

from tokensmith import Component, EmbeddingProvider, ModelReport, hookimpl


class LastPiece(EmbeddingProvider):
    """A third-party initializer: a new token is embedded as its last sub-token (and counted)."""

    name = "last-piece"
    calls: list = []

    def build(self, model, tokenizer):
        return model.get_input_embeddings()

    def apply(self, model, tokenizer):
        return ModelReport("embedding 'last-piece'", ())

    def embed_tokens(self, model, tokenizer, pieces, *, output=False):
        LastPiece.calls.append((output, list(pieces)))
        import torch

        weight = (model.get_output_embeddings() if output else model.get_input_embeddings()).weight
        return torch.stack([weight[p[-1]] for p in pieces]).detach()


class NoInitializer(EmbeddingProvider):
    name = "plain-embedding"

    def build(self, model, tokenizer):
        return model.get_input_embeddings()


class ThirdParty:
    LastPiece = LastPiece

    @hookimpl
    def tokensmith_register_embeddings(self):
        return [
            Component("last-piece", LastPiece, "embed a merged token as its last sub-token"),
            Component("plain-embedding", NoInitializer, "an embedding without embed_tokens"),
        ]


@pytest.fixture(scope="session")
def third_party():
    return ThirdParty()
