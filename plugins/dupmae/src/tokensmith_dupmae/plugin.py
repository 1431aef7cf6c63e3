"""Hook implementations of tokensmith-dupmae (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_dupmae"


@hookimpl
def tokensmith_register_objectives():
    return [
        Component(
            "dupmae",
            f"{_M}.objectives:DupMAELoss",
            "loss: DupMAE's L_cls ([CLS] reconstruction by the one-layer enhanced decoder) + "
            "bow_weight * L_bow (max-pooled OT logits vs the input's bag of words) + L_enc (MLM)",
        )
    ]


@hookimpl
def tokensmith_register_recipes():
    return [
        Component(
            "dupmae",
            f"{_M}.recipe:DupMAERecipe",
            "wraps a BERT encoder (MiniLM) in the DupMAE model: MLM head, one-layer [CLS] decoder, "
            "whole-word encoder mask and per-row decoder masks drawn each batch",
        )
    ]


@hookimpl
def tokensmith_register_benchmarks():
    return [
        Component(
            "dupmae-retrieval",
            f"{_M}.benchmark:DupMAERetrieval",
            "MiniLM pre-trained with DupMAE (recipe runner) vs vanilla MiniLM CLS / mean pooling: "
            "recall@1/@5 and MRR on held-out squad-shifts question -> paragraph pairs",
        )
    ]
