"""RecipeSpec: read from TOML or a dict, every problem reported at once before anything loads,
and ``RecipeSpec.from_config(spec.to_config()) == spec``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import (
    Component,
    ConfigError,
    DataSettings,
    Loss,
    ParameterTypeError,
    RecipeSpec,
    Reward,
    TrainSettings,
    UnknownComponentError,
    ValidationError,
    hookimpl,
)

ROOT = Path(__file__).resolve().parents[1]
BASE = {"model": {"source": "tiny-llama", "layers": 1}, "dataset": {"type": "lines"},
        "train": {"steps": 4}}


class Lines:
    name = "lines"

    def __init__(self, count: int = 3):
        self.count = count

    def examples(self, split="train"):
        return iter({"text": f"line {i}"} for i in range(self.count))


class Splitter(Lines):
    def __init__(self, split: str = "a"):
        super().__init__()


class CE(Loss):
    name = "ce"

    def __call__(self, batch, outputs):
        return 0.0


class Length(Reward):
    name = "length"

    def __call__(self, prompts, completions, **info):
        return [float(len(c)) for c in completions]


class Plugin:
    @hookimpl
    def tokensmith_register_datasets(self):
        return [Component("lines", Lines, "numbered lines"), Component("splitter", Splitter, "bad params")]

    @hookimpl
    def tokensmith_register_objectives(self):
        return [Component("ce", CE, "a loss"), Component("ce2", CE, "another loss"),
                Component("length", Length, "a reward")]


@pytest.fixture
def registry(make_registry):
    return make_registry(Plugin())


globs = st.lists(st.text("abcxyz.*_0123456789", min_size=1, max_size=12), max_size=3)
train_tables = st.fixed_dictionaries(
    {"steps": st.integers(20, 10_000)},
    optional={"batch_size": st.integers(1, 64), "grad_accumulation": st.integers(1, 8),
              "lr": st.floats(0, 1), "warmup": st.integers(0, 20), "weight_decay": st.floats(0, 1),
              "grad_clip": st.floats(0, 10), "seed": st.integers(0, 2**40), "trainable": globs.filter(bool),
              "frozen": globs, "eval_every": st.integers(0, 100), "eval_at": st.lists(st.integers(0, 20)),
              "save_every": st.integers(0, 100), "save_total_limit": st.integers(1, 5),
              "save_final": st.booleans(), "output_dir": st.sampled_from(["runs/a", "/tmp/x y"]),
              "logging_steps": st.integers(1, 50),
              "progress": st.sampled_from(["auto", "bar", "plain", "off"]),
              "shuffle": st.booleans(), "schedule": st.sampled_from(["linear", "cosine", "constant"]),
              "arguments": st.dictionaries(st.sampled_from(["adam_beta2", "optim"]),
                                           st.one_of(st.floats(0, 1), st.text(max_size=5)), max_size=2)})
data_tables = st.one_of(
    st.fixed_dictionaries({}, optional={"text": st.text(min_size=1, max_size=5), "packing": st.booleans(),
                                        "max_length": st.integers(1, 4096), "bos": st.booleans(),
                                        "eos": st.booleans(), "max_examples": st.integers(1, 10)}),
    st.fixed_dictionaries({"prompt": st.just("question"), "response": st.just("answer")},
                          optional={"truncate": st.booleans()}))


@settings(max_examples=60, deadline=None)
@given(train_tables, data_tables, st.dictionaries(st.sampled_from(["hidden_size", "layers"]),
                                                  st.integers(1, 64)),
       st.lists(st.sampled_from([{"type": "ce"}, {"type": "ce", "scale": 2.0}, "ce"]), max_size=2),
       st.one_of(st.none(), st.just({"type": "probe", "when": [1, 2]})),
       st.fixed_dictionaries({"type": st.just("lines")}, optional={"count": st.integers(1, 9),
                                                                    "split": st.just("dev"),
                                                                    "eval_split": st.just("test")}))
def test_to_config_round_trips_through_dicts_and_toml(train, data, model, objectives, recipe, dataset):
    config = {"model": {"source": "tiny-llama", **model}, "dataset": dataset, "train": train, "data": data,
              "objective": objectives, "runtime": {"device": "cpu", "seed": 3}}
    if recipe is not None:
        config["recipe"] = recipe
    spec = RecipeSpec.from_config(config)
    assert RecipeSpec.from_config(spec.to_config()) == spec
    assert RecipeSpec.from_config(tomllib.loads(spec.to_toml())) == spec
    assert spec.train.steps == train["steps"] and spec.data.sft == ("prompt" in data)


def test_every_problem_is_reported_at_once():
    config = {"modle": {}, "dataset": {"type": "lines", "split": 3},
              "train": {"stpes": 3, "lr": "fast", "eval_at": [1, -2], "progress": "loud",
                        "trainable": "model.*", "min_lr": 0.1},
              "data": {"prompt": "q", "max_length": 0}, "runtime": {"device": "tpu"}}
    with pytest.raises(ValidationError) as err:
        RecipeSpec.from_config(config)
    text = str(err.value)
    for expected in ("unknown recipe table [modle] (did you mean [model]?)",
                     "the recipe has no [model] table", "[dataset] split must be a split name",
                     "unknown parameter 'stpes' (did you mean 'steps'?)",
                     "'steps' (int) is required", "'lr' must be float", "eval_at", "'progress' must be",
                     "'trainable' must be tuple[str, ...]", "max_length", "unknown device 'tpu'"):
        assert expected in text, expected
    assert len(err.value.problems) >= 10


def test_cross_checks_of_the_tables():
    def problem(table, **values):
        with pytest.raises(ConfigError) as err:
            RecipeSpec.from_config({**BASE, table: {**BASE.get(table, {}), **values}})
        return str(err.value)

    assert "prompt and response go together" in problem("data", prompt="q")
    assert "both text and prompt/response" in problem("data", text="t", prompt="q", response="a")
    assert "packing and truncate exclude" in problem("data", packing=True, truncate=True)
    assert "eval_at has steps after the last one (4): [5]" in problem("train", eval_at=[5])
    assert "min_lr needs schedule = 'cosine_with_min_lr'" in problem("train", min_lr=0.0)
    assert "min_lr must be in [0, lr" in problem("train", min_lr=1.0, schedule="cosine_with_min_lr", lr=0.1)
    assert "warmup (9) is longer than the run" in problem("train", warmup=9)
    spec = RecipeSpec.from_config({**BASE, "train": {"steps": 4, "schedule": "cosine_with_min_lr",
                                                     "min_lr": 1e-6, "lr": 1e-3}})
    assert spec.train.min_lr == 1e-6


def test_settings_built_in_python_raise_typed_errors():
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        TrainSettings(steps=0)
    with pytest.raises(ParameterTypeError):
        TrainSettings(steps=1.5)
    with pytest.raises(ConfigError, match="glob"):
        TrainSettings(steps=2, trainable=("",))
    with pytest.raises(ConfigError):
        DataSettings(max_length=-1)
    train = TrainSettings(steps=3, trainable=["model.*"], frozen=["*.bias"])
    assert train.trains("model.layers.0.mlp.weight") and not train.trains("model.layers.0.mlp.bias")
    assert not train.trains("lm_head.weight")
    (problem,) = train.unmatched(["model.layers.0.weight", "lm_head.weight"])
    assert "'*.bias' matches no parameter" in str(problem)


def test_problems_a_registry_finds_before_anything_loads(registry):
    spec = RecipeSpec.from_config({
        "model": {"source": "tiny-llama", "layer": 2}, "runtime": {"device": "cpu"},
        "dataset": {"type": "line", "count": 2}, "train": {"steps": 2},
        "objective": [{"type": "ce"}, {"type": "ce2"}, {"type": "length"}, {"type": "ce", "scale": 1}],
        "recipe": {"type": "nothing"}})
    problems = spec.problems(registry)
    text = "\n".join(map(str, problems))
    assert "unknown parameter 'layer' (did you mean 'layers'?)" in text
    assert any(isinstance(p, UnknownComponentError) and "dataset 'line'" in str(p) and "'lines'" in str(p)
               for p in problems)
    assert "is a reward; a supervised recipe composes losses" in text
    assert "unknown parameter 'scale'" in text
    assert "3 losses given" in text
    assert "recipe 'nothing'" in text
    clash = RecipeSpec.from_config({**BASE, "dataset": {"type": "splitter"}})
    assert "declares parameters ['split']" in "\n".join(map(str, clash.problems(registry)))
    assert RecipeSpec.from_config({**BASE, "objective": [{"type": "ce"}]}).problems(registry) == []


def test_train_refuses_a_bad_recipe_before_loading_the_model(make_registry):
    from tokensmith import ModelInfo, train

    loads = []

    class Counting(Plugin):
        @hookimpl
        def tokensmith_describe_model(self, source):
            return ModelInfo("counting", ()) if source.source == "counting" else None

        @hookimpl
        def tokensmith_load_model(self, source, runtime):
            loads.append(source)

    registry = make_registry(Counting())
    spec = {"model": "counting", "dataset": {"type": "lines", "count": "two"},
            "train": {"steps": 2, "schedule": "cosin", "arguments": {"adam_beta3": 0.9}}}
    with pytest.raises(ValidationError) as err:
        train(spec, registry=registry)
    text = str(err.value)
    assert "parameter 'count' must be int" in text and "schedule 'cosin'" in text
    assert "'adam_beta3' is not a TrainingArguments field (did you mean 'adam_beta2'" in text
    assert loads == []
    with pytest.raises(ConfigError, match="eval_at has steps after the last one"):
        train({**spec, "train": {"steps": 9, "eval_at": [5]}}, registry=registry, max_steps=2)
    assert loads == []


def test_recipe_files(tmp_path, installed_registry):
    example = RecipeSpec.from_toml(ROOT / "examples" / "tiny-recipe.toml")
    assert example.model.source == "tiny-llama" and example.train.steps > 0
    if "stdlib-code" in {c.name for c in installed_registry.components("dataset")}:
        assert example.problems(installed_registry) == []  # its dataset's parameters too
    path = tmp_path / "r.toml"
    path.write_text(attrs.evolve(example, train=attrs.evolve(example.train, steps=7)).to_toml())
    assert RecipeSpec.from_toml(path).train.steps == 7
    for content, message in ((None, "does not exist"), ("[model\n", "invalid TOML"),
                             (b"\xff\xfe", "invalid TOML")):
        bad = tmp_path / "bad.toml"
        bad.unlink(missing_ok=True)
        if content is not None:
            bad.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(ConfigError, match=message):
            RecipeSpec.from_toml(bad)
    with pytest.raises(ConfigError, match="is a directory"):
        RecipeSpec.from_toml(tmp_path)
    with pytest.raises(ConfigError, match="a recipe is a table"):
        RecipeSpec.from_config(["model"])
