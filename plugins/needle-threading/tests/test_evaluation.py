"""The evaluations end to end: an oracle that reads the prompt scores 1 on every task, a tiny
random model runs through the registry, haystacks beyond the context are refused before the
model runs, chars per token equal brute force, bad parameters are typed errors."""

from __future__ import annotations

import types

import pytest
from tokensmith_needle_threading.evaluation import NeedleThreading, UUIDCharsPerToken

from tokensmith import (
    BuildContext,
    ConfigError,
    ContextLengthError,
    InputError,
    PipelineSpec,
    Runtime,
    tiny_tokenizer,
)


def _fake_pipeline(tokenizer, context=100_000):
    lm = types.SimpleNamespace(
        tokenizer=tokenizer, counters={"forward_calls": 0}, start_ids=(0,), context_length=context
    )
    return types.SimpleNamespace(tokenizer=tokenizer, lm=lm)


@pytest.mark.parametrize("direction", ["forward", "backward", "random"])
def test_an_oracle_reading_the_prompt_scores_one_on_every_task(oracle_registry, direction):
    ev = NeedleThreading(
        lengths=(1200, 2400),
        depths=(0.0, 100.0),
        direction=direction,
        decoder="oracle",
        ctx=BuildContext(runtime=Runtime(device="cpu"), registry=oracle_registry),
    )
    report = ev.run(_fake_pipeline(tiny_tokenizer()))
    assert report.metrics["accuracy"] == 1.0 and report.metrics["exact"] == 1.0
    # depth tasks at 2 depths x 2 lengths, the others once per length
    assert report.metrics["items"] == 3 * 4 + 3 * 2
    assert {s.name for s in report.series} == set(ev.tasks)
    assert all(s.x == (1200, 2400) for s in report.series)


def test_a_tiny_model_runs_through_the_registry(installed_registry):
    pipeline = installed_registry.build_pipeline(
        PipelineSpec(model={"source": "tiny-llama", "context": 2048}, runtime={"device": "cpu"})
    )
    ev = installed_registry.build(
        "evaluation",
        {
            "type": "needle-threading",
            "lengths": [400],
            "max_new_tokens": 3,
            "tasks": ["single_needle", "threading"],
        },
    )
    report = ev.run(pipeline, quick=True)
    assert report.metrics["items"] == 2 and 0.0 <= report.metrics["accuracy"] <= 1.0
    sizes = report.tables[1]
    assert sizes.columns[:3] == ("length", "haystack chars", "prompt tokens")


def test_a_haystack_beyond_the_context_is_refused_before_the_model_runs(oracle_registry):
    ev = NeedleThreading(
        lengths=(400, 4000),
        decoder="oracle",
        tasks=("single_needle",),
        ctx=BuildContext(runtime=Runtime(device="cpu"), registry=oracle_registry),
    )
    pipeline = _fake_pipeline(tiny_tokenizer(), context=2000)
    with pytest.raises(ContextLengthError, match="4000 characters") as info:
        ev.run(pipeline)
    assert info.value.component == "evaluation 'needle-threading'" and "never truncated" in info.value.hint
    assert pipeline.lm.counters["forward_calls"] == 0


def test_lengths_too_short_and_bad_parameters_are_typed_errors(installed_registry):
    with pytest.raises(InputError, match="multi_threading places 6") as info:
        NeedleThreading(lengths=(300,)).questions()
    assert info.value.component == "evaluation 'needle-threading'"
    for bad in (
        {"conditional_character": "a"},
        {"conditional_character": "-"},
        {"lengths": [10]},
        {"depths": [150]},
        {"tasks": ["haystack"]},
        {"direction": "sideways"},
        {"lengths": []},
    ):
        with pytest.raises(ConfigError):
            installed_registry.build("evaluation", {"type": "needle-threading", **bad})


def test_chars_per_token_equals_brute_force_counts():
    tokenizer = tiny_tokenizer()
    report = UUIDCharsPerToken(lengths=(500,), sample=2).run(tokenizer)
    rows = {row[0]: row for row in report.tables[0].rows}
    import random

    from tokensmith_needle_threading.evaluation import _text

    for kind in ("uuid-json", "uuid", "hex", "digits"):
        texts = [_text(kind, 500, random.Random(f"uuid-chars-per-token:0:{kind}:500:{r}")) for r in range(2)]
        chars = sum(len(t) for t in texts)
        tokens = sum(len(tokenizer.encode(t).ids) for t in texts)
        assert rows[kind][2:4] == (chars, tokens)
        assert report.metrics[f"chars_per_token_{kind.replace('-', '_')}"] == chars / tokens


@pytest.mark.smollm2
def test_smollm2_spends_fewer_characters_per_token_on_uuids_than_on_words(smollm2):
    _, tokenizer = smollm2
    m = UUIDCharsPerToken(lengths=(2000,), sample=1).run(tokenizer).metrics
    english = "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. " * 20
    assert m["chars_per_token_uuid_json"] < len(english) / len(tokenizer.encode(english).ids)
