"""Bad input is a typed error naming the component: malformed forests (every problem at once),
text with special-token strings, empty text, text that is no command."""

from __future__ import annotations

import types

import pytest
from tokensmith_dahsf import DAHSFStage, Forest

from tokensmith import ConfigError, InputError, Registry


def forest(rules_by_layer, **extra):
    layers = [{"name": f"l{i}", "rules": rules} for i, rules in enumerate(rules_by_layer)]
    return Forest.from_dict({"layers": layers, **extra}, name="t")


LEXICON = {"ON": ["on"], "LIGHT": ["light", "lamp"], "KITCHEN": ["kitchen"]}


def test_a_small_forest_digests():
    f = forest([LEXICON, {"ROOM": ["KITCHEN"]}, {"LIGHTS_ON": ["ON LIGHT room=ROOM", "room=ROOM LIGHT ON"]}])
    assert f.parse("kitchen lamp on").slots == {"room": "KITCHEN"}
    assert f.normalize("kitchen lamp on") == "on light kitchen"


def test_malformed_toml_names_the_forest_and_the_error(tmp_path):
    with pytest.raises(ConfigError, match="invalid TOML") as err:
        Forest.from_toml("[[layers]\nname = 1", name="broken")
    assert "dahsf forest 'broken'" in str(err.value)
    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError, match="not UTF-8"):
        Forest.from_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        Forest.from_file(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="directory"):
        Forest.from_file(tmp_path)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        forest(
            [
                {"ON": ["on"], "LIGHT": ["light", ""], "lower": ["x"]},
                {"ROOM": ["KITCHN"], "LOOP": ["LOOP ON"], "UP": ["HIGHER"]},
                {"HIGHER": ["ON"], "CMD": ["ON n=$number"]},
            ],
            colour="red",
        )
    message = str(err.value)
    for expected in (
        "empty alternative ''",
        "symbol 'lower' must be upper case",
        "unknown symbol 'KITCHN'",
        "LOOP is in layer 'l1'",
        "HIGHER is in layer 'l2'",
        "cycle between layers",
        "unknown data class '$number'",
        "unknown key 'colour'",
    ):
        assert expected in message, expected
    assert "problems in the forest" in message and "dahsf forest 't'" in message


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([LEXICON, {"A": ["ON LIGHT"], "B": ["ON LIGHT"]}], "digestion could not choose"),
        (
            [{"ON": ["on"], "LAMP": ["ON"]}, {"C": ["ON"]}],
            "digestion could not choose",
        ),  # layer 0: words, casefolded
        ([LEXICON, {"ROOM": ["KITCHEN", "ON LIGHT"]}, {"C": ["room=ROOM"]}], "must be one symbol"),
        ([LEXICON, {"ROOM": ["KITCHEN"]}, {"C": ["ROOM ON"], "D": ["room=ROOM"]}], "without a slot"),
        ([LEXICON, {"C": ["ON x=ON"]}], "cannot be captured"),
        ([LEXICON, {"ROOM": ["KITCHEN"]}, {"C": ["ON room=ROOM", "ON LIGHT"]}], "must fill the same slots"),
        (
            [LEXICON, {"ROOM": ["KITCHEN"]}, {"C": ["room=ROOM LIGHT room=ROOM"]}],
            "fills the slot 'room' twice",
        ),
        ([LEXICON, {"C": ["ON $text"]}], "must be captured into a slot"),
        ([LEXICON, {"C": ["ON name=$text"]}], "give [data.text] examples"),
        ([{"SPECIAL": ["<|im_start|>"]}, {"C": ["SPECIAL"]}], "special-token string"),
    ],
)
def test_structural_problems(rules, expected):
    with pytest.raises(ConfigError) as err:
        forest(rules)
    assert expected in str(err.value)


def test_data_classes_are_checked():
    rules = [LEXICON, {"C": ["ON n=$number"]}]
    with pytest.raises(ConfigError, match="invalid pattern"):
        forest(rules, data={"number": {"pattern": "[0-9", "examples": ["1"]}})
    with pytest.raises(ConfigError, match="is classified as 'text'"):
        forest(rules, data={"number": {"pattern": "[0-9]+", "examples": ["one"]}})
    with pytest.raises(ConfigError, match="needs a pattern"):
        forest(rules, data={"number": {"examples": ["1"]}})
    assert forest(rules, data={"number": {"pattern": "[0-9]+", "examples": ["7"]}}).parse("on 42").slots == {
        "n": "42"
    }


def test_a_canonical_form_that_does_not_digest_back_is_refused():
    # the canonical phrase of ON is "turn on", but "turn on light" is a longer phrase of another symbol
    rules = [
        {"ON": ["turn on", "on"], "LIGHT": ["light"], "LIGHTS": ["turn on light"]},
        {"C": ["ON LIGHT"], "D": ["LIGHTS"]},
    ]
    with pytest.raises(ConfigError, match="canonical form 'turn on light' digests to D"):
        forest(rules)


@pytest.mark.parametrize(
    "text",
    ["<|im_start|>user turn on the lights", "turn on <|endoftext|>", "</s> kitchen", "[CLS] lights on"],
)
def test_special_token_strings_are_refused(home, text):
    stage = DAHSFStage()
    for call in (stage.normalize, stage.parse, home.parse, home.digest):
        with pytest.raises(InputError, match="special-token string"):
            call(text)
    with pytest.raises(InputError) as err:
        stage.normalize(text)
    assert "tokenizer_stage 'dahsf'" in str(err.value)


def test_the_pipeline_tokenizers_special_tokens_are_refused_too():
    ctx = types.SimpleNamespace(tokenizer=types.SimpleNamespace(special_tokens={0: "[[STOP]]"}))
    stage = DAHSFStage(ctx=ctx)
    with pytest.raises(InputError, match=r"\[\[STOP\]\]"):
        stage.normalize("turn on the lights [[STOP]]")
    assert DAHSFStage().normalize("turn on the lights [[STOP]]") == "turn on the lights [[STOP]]"


def test_empty_text_and_non_commands(home):
    stage = DAHSFStage()
    for empty in ("", "   "):
        with pytest.raises(InputError, match="empty text") as err:
            stage.parse(empty)
        assert "tokenizer_stage 'dahsf'" in str(err.value)
    with pytest.raises(InputError, match="digests to nothing"):
        stage.parse("please!")
    assert stage.normalize("") == "" and stage.normalize("  ") == ""
    with pytest.raises(InputError, match="does not digest to one command"):
        stage.parse("turn on the radio")
    with pytest.raises(InputError, match="does not digest to one command"):
        DAHSFStage(require_command=True).normalize("turn on the radio")
    with pytest.raises(InputError, match="str"):
        stage.normalize(b"turn on")
    with pytest.raises(InputError, match="surrogate"):
        stage.normalize("lights on \udce9")


def test_the_registry_checks_the_forest_parameter(tmp_path):
    registry = Registry.from_environment()
    with pytest.raises(ConfigError, match="unknown forest 'hom'"):
        registry.build("tokenizer_stage", {"type": "dahsf", "forest": "hom"})
    with pytest.raises(ConfigError, match="does not exist"):
        registry.build("tokenizer_stage", {"type": "dahsf", "forest": str(tmp_path / "nope.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[[layers]]\nname = 'only'\n[layers.rules]\nON = ['on']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="at least two layers") as err:
        registry.build("tokenizer_stage", {"type": "dahsf", "forest": str(bad)})
    assert "tokenizer_stage 'dahsf'" in str(err.value)
