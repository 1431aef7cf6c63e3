"""Fixtures: the toy Markov LM (exact float64 brute force) and tiny float64 HF models."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread(torch_single_thread):
    """Tiny tensors: one torch thread for every test here (tokensmith.testing fixture)."""
    yield


@pytest.fixture(scope="session")
def toy_lm():
    from tokensmith_byteprob.toy import MarkovLM, ToyTokenizer

    return MarkovLM(ToyTokenizer(), seed=1)


@pytest.fixture(scope="session")
def toy_lm_prefixed():
    """Like SentencePiece: every text is encoded with a leading space that decode strips."""
    from tokensmith_byteprob.toy import MarkovLM, ToyTokenizer

    return MarkovLM(ToyTokenizer(prefix_bytes=b" "), seed=2)


def _tiny_lm(kind: str):
    from tokensmith import HFCausalLM, Runtime
    from tokensmith.testing import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer(kind)
    model, _ = tiny_llama(tok, dtype="float64", seed=3)
    return HFCausalLM(model, tok, Runtime(device="cpu", dtype="float64"), name=f"tiny-{kind}")


@pytest.fixture(scope="session")
def tiny_byte_level_lm():
    return _tiny_lm("byte_level")


@pytest.fixture(scope="session")
def tiny_byte_fallback_lm():
    return _tiny_lm("byte_fallback")
