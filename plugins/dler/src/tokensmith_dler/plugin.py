"""Hook implementations of tokensmith-dler (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_dler"


@hookimpl
def tokensmith_register_objectives():
    return [
        Component(
            "truncation-penalty",
            f"{_M}.objectives:TruncationPenalty",
            "reward: DLER's truncation length penalty (correct and EOS within L(q), else x penalty_coef)",
        ),
        Component(
            "batch-whitened",
            f"{_M}.objectives:BatchWhitened",
            "advantage: DLER's batch-wise normalisation (group mean out, whitened over the batch's tokens)",
        ),
        Component(
            "correct-sample-boost",
            f"{_M}.objectives:CorrectSampleBoost",
            "advantage: another advantage plus a constant on correct samples (DLER's boost)",
        ),
        Component(
            "clip-higher",
            f"{_M}.objectives:ClipHigher",
            "loss: asymmetric clip-higher PPO objective with dual clip, token-mean (DAPO/DLER)",
        ),
    ]


@hookimpl
def tokensmith_register_recipes():
    return [
        Component(
            "dler-merge",
            f"{_M}.merge:UpdateSelectiveMerge",
            "update-selective merge of the trained model into its base (largest-|delta| share kept)",
        )
    ]


@hookimpl
def tokensmith_register_benchmarks():
    return [
        Component(
            "dler",
            f"{_M}.benchmark:DLERBenchmark",
            "DLER vs naive GRPO with the same truncation (TRL's GRPOTrainer, tiny Llama on additions): "
            "accuracy and response length over training",
        )
    ]
