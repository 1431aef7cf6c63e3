"""The registered `dahsf` benchmark, quick, on a tiny random model and a tiny forest: a Report
whose numbers agree; the reply reader and the scoring on their own."""

from __future__ import annotations

import pytest
from tokensmith_dahsf import Parse, load_forest
from tokensmith_dahsf.benchmark import read_answer, same_parse, schema_prompt

from tokensmith import Registry, Report

TINY = """
name = "lamp"
description = "lamp"
[data.number]
pattern = '[0-9]+'
examples = ["3"]
[[layers]]
name = "lexicon"
[layers.rules]
ON = ["on"]
DIM = ["dim"]
[[layers]]
name = "commands"
[layers.rules]
LAMP_ON = ["ON"]
LAMP_DIM = ["DIM to=$number"]
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("forest") / "lamp.toml"
    path.write_text(TINY, encoding="utf-8")
    benchmark = Registry.from_environment().build(
        "benchmark", {"type": "dahsf", "model": "tiny-llama", "forest": str(path), "max_new_tokens": 4}
    )
    return benchmark.run(quick=True)


def test_quick_run_reports_same_run_ratios(report):
    assert isinstance(report, Report) and report.name == "dahsf"
    assert Report.from_json(report.to_json()) == report
    m = report.metrics
    assert m["commands"] == m["generated_commands"] == 4 and m["handwritten_commands"] == 0
    assert m["dahsf_accuracy_generated"] == 1.0 and m["idempotent_fraction"] == 1.0
    assert m["canonical_form_fraction"] == 1.0
    assert m["lm_over_dahsf_time"] == pytest.approx(m["lm_ms_per_command"] / m["dahsf_ms_per_command"])
    assert m["lm_over_dahsf_cpu_time"] == pytest.approx(
        m["lm_cpu_ms_per_command"] / m["dahsf_cpu_ms_per_command"]
    )
    assert m["lm_over_dahsf_memory"] == pytest.approx(m["lm_weight_bytes"] / m["forest_bytes"])
    assert m["forest_bytes"] > 0 and m["forest_trie_nodes"] == 3 + 3 + 1  # ON, DIM | LAMP_ON, DIM, $number
    sizes = next(t for t in report.tables if t.title.startswith("multiplication rule"))
    assert [row[1] for row in sizes.rows] == [5, 25, 125]  # sentences: the product
    assert [row[3] for row in sizes.rows] == [5, 25, 125]  # the phrasebook stores each one
    assert [row[2] for row in sizes.rows] == [3 + 2 * 5 * k + k for k in (1, 2, 3)]  # the forest: the sum


def test_the_reply_reader():
    names = ("SET_TIMER", "PLAY_MUSIC", "SET_TEMPERATURE", "SET")
    assert read_answer("SET_TIMER minutes=10", names) == Parse("SET_TIMER", {"minutes": "10"})
    assert read_answer("The command is:\n`PLAY_MUSIC artist=Nina Simone`", names) == Parse(
        "PLAY_MUSIC", {"artist": "Nina Simone"}
    )
    assert read_answer('SET_TEMPERATURE room=KITCHEN, degrees="21"', names) == Parse(
        "SET_TEMPERATURE", {"room": "KITCHEN", "degrees": "21"}
    )
    assert read_answer("Set it. SET", names) == Parse("SET", {})
    assert read_answer("i do not know", names) is None
    gold = Parse("LIGHTS_ON", {"room": "KITCHEN"})
    assert same_parse(Parse("LIGHTS_ON", {"room": "kitchen"}), gold)
    assert not same_parse(Parse("LIGHTS_OFF", {"room": "KITCHEN"}), gold) and not same_parse(None, gold)
    assert not same_parse(Parse("LIGHTS_ON", {}), gold)


def test_the_prompt_lists_every_command_and_category(home):
    prompt = schema_prompt(home)
    for template in home.templates:
        assert template in prompt
    assert "ROOM is one of KITCHEN, BEDROOM" in prompt and "room=<ROOM>" in prompt and "<number>" in prompt


def test_the_handwritten_commands_are_scored_honestly(home):
    from tokensmith_dahsf.benchmark import HANDWRITTEN

    for text, gold, inside in HANDWRITTEN:
        assert same_parse(home.digest(text).parse, gold) == inside, text
    assert load_forest("home") is home
