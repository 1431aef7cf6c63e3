"""A tiny WordPiece tokenizer and a tiny random BERT for the DupMAE tests."""

from __future__ import annotations

import pytest

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a tokenizer turns text into tokens and an encoder reads them",
    "retrieval models encode questions and passages into vectors",
    "unbelievable tokenization makes embeddings of sentences",
    "the dog sleeps while the fox runs through the forest",
    "masked auto encoders reconstruct the input from a sentence embedding",
]


def tiny_wordpiece():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from tokensmith import HFTokenizer

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    backend.train_from_iterator(CORPUS, trainer)
    return HFTokenizer(backend, name="tiny-wordpiece", pad_token="[PAD]", unk_token="[UNK]", strict=False)


def tiny_bert(tokenizer, seed=0, hidden=32, layers=2):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    return BertModel(config)


@pytest.fixture(scope="session")
def wordpiece():
    return tiny_wordpiece()


@pytest.fixture
def dupmae(wordpiece):
    from tokensmith_dupmae.model import dupmae_model

    return dupmae_model(tiny_bert(wordpiece), wordpiece)


@pytest.fixture
def batch(wordpiece):
    import torch

    rows = [list(wordpiece.encode(t).ids) for t in CORPUS[:4]]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.clone()}


@pytest.fixture
def make_bert():
    return tiny_bert


@pytest.fixture
def corpus():
    return list(CORPUS)
