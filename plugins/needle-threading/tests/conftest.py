"""Fixtures: one torch thread, and a registry whose ``oracle`` decoder answers every Needle
Threading prompt by reading the haystack JSON in the prompt (a brute-force solver)."""

from __future__ import annotations

import json
import re

import pytest

from tokensmith import Component, Decoder, hookimpl


@pytest.fixture(autouse=True, scope="session")
def _one_thread(torch_single_thread):
    yield


def solve(prompt: str) -> list[str]:
    """The answer(s) to a prompt, from its text alone: parse the JSON, follow the question."""
    haystack, question = prompt.split("\n", 1)
    pairs = json.loads(haystack, object_pairs_hook=list)
    table = dict(pairs)
    quoted = re.findall(r'"([^"]+)"', question)
    if question.startswith("Extract the value corresponding"):
        return [table[quoted[0]]]
    if question.startswith("Extract the values corresponding to the specified"):
        return [table[k] for k in quoted]
    if question.startswith("Extract the values corresponding to every key"):
        return [v for k, v in pairs if quoted[0] in k]
    if "several keys can have the same value" in question:
        steps = int(re.search(r"(\d+) steps in all", question).group(1))
        frontier = [quoted[-1]]
        for _ in range(steps):
            frontier = [k for k, v in pairs if v in frontier]
        return frontier
    out = []
    for key in quoted:
        while key in table:
            key = table[key]
        out.append(key)
    return out


class Oracle(Decoder):
    name = "oracle"

    def generate(self, lm, prompt, *, max_new_tokens=32, constraint=None, seed=None):
        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        body = prompt.split("<|im_start|>user\n", 1)[-1].rsplit("<|im_end|>", 1)[0]
        text = ", ".join(solve(body))
        return request.generation((), text.encode(), finish_reason="stop")


class _OraclePlugin:
    @hookimpl
    def tokensmith_register_decoders(self):
        return [Component("oracle", Oracle, "answers Needle Threading prompts (tests)")]


@pytest.fixture
def oracle_registry(make_registry):
    return make_registry(_OraclePlugin())
