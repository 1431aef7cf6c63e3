"""Hook implementations of tokensmith-baselines (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_baselines"


@hookimpl
def tokensmith_register_tokenizers():
    return [
        Component("model", f"{_M}.components:model_tokenizer",
                  "the loaded model's own tokenizer (byte view checked at load)"),
        Component("hf-file", f"{_M}.components:file_tokenizer",
                  "a Hugging Face tokenizer.json file (byte view checked at load)"),
    ]


@hookimpl
def tokensmith_register_tokenizer_trainers():
    return [
        Component("byte-level-bpe", f"{_M}.trainers:ByteLevelBPE",
                  "GPT-2 style byte-level BPE over all 256 bytes (HF tokenizers)"),
        Component("bpe", f"{_M}.trainers:CharBPE",
                  "SentencePiece-style character BPE with byte fallback (HF tokenizers)"),
        Component("unigram", f"{_M}.trainers:Unigram", "SentencePiece-style Unigram LM (HF tokenizers)"),
        Component("wordpiece", f"{_M}.trainers:WordPiece", "BERT-style WordPiece (HF tokenizers)"),
    ]


@hookimpl
def tokensmith_register_embeddings():
    return [Component("model", f"{_M}.components:ModelEmbedding",
                      "keep the model's own input embeddings (no change)")]


@hookimpl
def tokensmith_register_normalizations():
    return [Component("identity", f"{_M}.components:IdentityNormalization",
                      "keep the model's norm layers as they are (no surgery)")]


@hookimpl
def tokensmith_register_decoders():
    return [
        Component("greedy", f"{_M}.decoding:GreedyDecoder",
                  "argmax decoding with KV cache; optional token healing"),
        Component("sample", f"{_M}.decoding:SamplingDecoder",
                  "ancestral sampling with temperature, top-k, top-p; optional token healing"),
    ]


@hookimpl
def tokensmith_register_objectives():
    return [
        Component("cross-entropy", f"{_M}.objectives:TokenCrossEntropy",
                  "next-token cross-entropy (the model's own loss; honours token weights)"),
        Component("response-only", f"{_M}.objectives:ResponseOnly",
                  "mask: every response token (response_mask, else the predicted labels)"),
        Component("random-fraction", f"{_M}.objectives:RandomFraction",
                  "mask: a seeded random share of the response tokens (the random-selection baseline)"),
        Component("uniform", f"{_M}.objectives:Uniform", "weights: 1 on every response token"),
        Component("exact-match", f"{_M}.objectives:ExactMatch",
                  "reward: 1 when the completion's final answer equals info['answer']"),
        Component("group-normalized", f"{_M}.objectives:GroupNormalized",
                  "advantage: GRPO's (r - group mean) / (std + eps), scaled by group, batch or none"),
    ]


@hookimpl
def tokensmith_register_demos():
    return [Component("baselines", f"{_M}.demo:BaselineDemo",
                      "greedy vs sampling vs token healing on prompts cut mid-word")]


@hookimpl
def tokensmith_register_evaluations():
    return [Component("tokenizer-metrics", f"{_M}.tokenizer_metrics:TokenizerMetrics",
                      "bytes/token, fertility, parity, Rényi/Shannon efficiency, coverage of any tokenizer")]
