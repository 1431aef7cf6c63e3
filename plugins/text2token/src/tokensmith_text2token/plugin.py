"""Hook implementations of tokensmith-text2token (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_text2token"


@hookimpl
def tokensmith_register_objectives():
    return [Component("text2token", f"{_M}.objectives:Text2Token",
                      "loss: Text2Token's token target prediction, KL(pi || softmax(W_U e(x))) of the "
                      "pooled embedding; pi = TF-IDF-filtered own tokens (stage 1), mixed with a frozen "
                      "model's top-k (stage 2)")]


@hookimpl
def tokensmith_register_recipes():
    return [Component("text2token", f"{_M}.objectives:Text2TokenRecipe",
                      "Text2Token's two stages: fits the data-driven filter on the training sequences, then "
                      "at stage1_steps freezes the model as the source of the model-derived targets")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("text2token", f"{_M}.benchmark:Text2TokenBenchmark",
                      "SmolLM2 trained by the two-stage Text2Token recipe vs untrained mean/last-token "
                      "pooling and TF-IDF: Lee similarity (Spearman), SQuAD question->paragraph retrieval "
                      "(R@1, MRR), token alignment")]
