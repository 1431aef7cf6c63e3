"""Fixtures: a tiny byte-level tokenizer with the ChatML markers, and a registry whose
``oracle`` decoder answers every CharBench prompt from its text alone."""

from __future__ import annotations

import re

import pytest

from tokensmith import Component, Decoder, hookimpl


@pytest.fixture(autouse=True, scope="session")
def _one_thread(torch_single_thread):
    """Tiny tensors: one torch thread for every test here (tokensmith.testing fixture)."""
    yield


@pytest.fixture(scope="session")
def chat_tokenizer():
    from tokenizers import Tokenizer

    from tokensmith import HFTokenizer, tiny_tokenizer

    backend = Tokenizer.from_str(tiny_tokenizer().to_json())
    backend.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    return HFTokenizer(backend, name="tiny-chatml", bos_token="<|endoftext|>", eos_token="<|im_end|>")


def solve(prompt: str) -> int:
    """The answer to a CharBench prompt, worked out from its text with plain loops (not the
    generator's str methods): a brute-force reader of the question."""
    word = re.search(r"in the string '([A-Za-z]+)'", prompt).group(1)
    character = re.search(r"the character '([A-Za-z])'", prompt)
    c = character.group(1) if character else None
    if "How many unique" in prompt:
        seen = []
        for letter in word:
            if letter not in seen:
                seen.append(letter)
        return len(seen)
    positions = [i for i in range(len(word)) if word[i] == c]
    if "How many times" in prompt:
        return len(positions)
    return positions[0] if "first occurrence" in prompt else positions[-1]


class Oracle(Decoder):
    """Answers with the right number (and records every prompt it saw)."""

    name = "oracle"
    prompts: list[str] = []

    def generate(self, lm, prompt, *, max_new_tokens=32, constraint=None, seed=None):
        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        Oracle.prompts.append(prompt)
        text = f" {solve(prompt)}\n"
        return request.generation(lm.tokenizer.encode(text).ids, text.encode(), finish_reason="stop")


class _OraclePlugin:
    @hookimpl
    def tokensmith_register_decoders(self):
        return [Component("oracle", Oracle, "answers CharBench prompts correctly (tests)")]


@pytest.fixture
def oracle_registry(make_registry):
    Oracle.prompts.clear()
    return make_registry(_OraclePlugin())
