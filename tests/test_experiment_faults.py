"""The experiment layer under bad input and faults, through the public API and the CLI: each
case here was found wrong (an untyped error, a misleading blame, something silently dropped or
shown as a number it is not) and is now a typed tokensmith error naming the component, with a
hint, and exit code 2 with one line on the command line."""

from __future__ import annotations

import json
import math
import types

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

import tokensmith
from tokensmith import (
    IGNORE_INDEX,
    ArtifactError,
    Component,
    ComponentError,
    ConfigError,
    CorruptArtifactError,
    InputError,
    Loss,
    ModelLoadError,
    Recipe,
    RecipeSpec,
    Report,
    Reward,
    Series,
    TokenMask,
    TokenWeights,
    ValidationError,
    cli,
    compose,
    hookimpl,
    load_checkpoint,
    reward_funcs,
    run_recipe,
    write_all,
)
from tokensmith.adapters.models import TINY_CORPUS, tiny_llama

TEXTS = [{"text": s} for s in TINY_CORPUS.split(". ")]
PACKED = {"max_length": 16, "packing": True}


@pytest.fixture(autouse=True)
def _one_thread(torch_single_thread):
    yield


def _model(tok, hidden=16):
    return tiny_llama(tok, hidden_size=hidden, layers=1, heads=2, seed=0)[0]


def _run(tok, tmp_path, *, model=None, eval_data=None, data=PACKED, train_data=TEXTS, **arguments):
    arguments = {"steps": 2, "batch_size": 2, "lr": 3e-3, "progress": "off", "save_final": False, **arguments}
    objectives = arguments.pop("objectives", ())
    recipe = arguments.pop("recipe", None)
    callbacks = arguments.pop("callbacks", ())
    resume = arguments.pop("resume", None)
    return run_recipe(model=model or _model(tok), tokenizer=tok, train_data=train_data, eval_data=eval_data,
                      data=data, arguments=arguments, objectives=objectives, recipe=recipe,
                      callbacks=callbacks, resume=resume, output_dir=tmp_path / "run")


class _Fn:
    def __init__(self, fn, name):
        self.fn, self.name = fn, name

    def __call__(self, batch, outputs):
        return self.fn(batch, outputs)


class FnMask(_Fn, TokenMask):
    pass


class FnWeights(_Fn, TokenWeights):
    pass


class FnLoss(_Fn, Loss):
    pass


def _batch_and_outputs():
    labels = torch.tensor([[IGNORE_INDEX, 3, 4, 5], [IGNORE_INDEX, IGNORE_INDEX, 6, 7]])
    logits = torch.randn(2, 4, 11, requires_grad=True)
    return {"input_ids": labels.clamp(min=0), "labels": labels}, types.SimpleNamespace(logits=logits)


# -- objectives ------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "message"), [
    (float("nan"), "non-finite token weights"), (float("inf"), "non-finite token weights"),
    (-0.5, "negative token weight")])
def test_token_weights_must_be_finite_and_non_negative(value, message):
    batch, outputs = _batch_and_outputs()
    weights = FnWeights(lambda b, o: torch.full(b["labels"].shape, value), "bad-weights")
    with pytest.raises(ComponentError, match=message) as err:
        compose([weights])(batch, outputs)
    assert err.value.component == "weights 'bad-weights'" and err.value.hint


@pytest.mark.parametrize(("fn", "message"), [
    (lambda b, o: o.logits.mean(-1), "shape \\(2, 4\\), not a floating-point scalar"),
    (lambda b, o: 1.0, "float 1.0, not a floating-point scalar"),
    (lambda b, o: torch.tensor(3), "torch.int64 tensor"),
    (lambda b, o: torch.tensor(3.0), "does not depend on the model's outputs"),
    (lambda b, o: o.logits.sum().item(), "not a floating-point scalar")])
def test_a_loss_returns_a_differentiable_float_scalar(fn, message):
    batch, outputs = _batch_and_outputs()
    with pytest.raises(ComponentError, match=message) as err:
        compose([FnLoss(fn, "bad-loss")])(batch, outputs)
    assert err.value.component == "loss 'bad-loss'"


def test_an_objective_that_raises_is_named_not_the_recipe():
    batch, outputs = _batch_and_outputs()
    for objective in (FnMask(lambda b, o: {}["response"], "picky"), FnLoss(lambda b, o: 1 / 0, "picky")):
        with pytest.raises(ComponentError, match="computing it raised") as err:
            compose([objective])(batch, outputs)
        assert err.value.component == f"{objective.role} 'picky'"
        assert isinstance(err.value.__cause__, (KeyError, ZeroDivisionError))


def test_a_nan_loss_stops_the_run_instead_of_being_logged_as_zero(tiny_tokenizer, tmp_path):
    # transformers' default logging_nan_inf_filter logged the first NaN loss as 0.0
    nan = FnLoss(lambda b, o: o.logits.float().mean() * float("nan"), "nan-loss")
    with pytest.raises(ComponentError, match="the training loss is nan at step 1") as err:
        _run(tiny_tokenizer, tmp_path, objectives=[nan])
    assert err.value.component == "objective 'nan-loss'" and "lr" in err.value.hint
    assert not (tmp_path / "run" / "final").exists()
    with pytest.raises(ConfigError, match="logging_nan_inf_filter is set by the runner"):
        _run(tiny_tokenizer, tmp_path, arguments={"logging_nan_inf_filter": True})


@pytest.mark.needs_baselines
def test_run_recipe_takes_objectives_by_name_and_refuses_what_is_not_one(tiny_tokenizer, tmp_path):
    by_name = _run(tiny_tokenizer, tmp_path, objectives=["cross-entropy"])
    plain = _run(tiny_tokenizer, tmp_path)
    assert by_name.losses == plain.losses
    with pytest.raises(ConfigError, match="int 5 is not an objective") as err:
        _run(tiny_tokenizer, tmp_path, objectives=[5])
    assert err.value.component == "recipe runner"
    with pytest.raises(ConfigError, match="rewards/advantages") as err:
        _run(tiny_tokenizer, tmp_path, objectives=["exact-match"])
    assert err.value.component == "compose"


# -- recipes: prepare, callbacks, evaluations ----------------------------------------------

class Faulty(Recipe):
    name = "faulty"

    def __init__(self, prepare=None, callbacks=None):
        self._prepare, self._callbacks = prepare, callbacks

    def prepare(self, model, ctx):
        return self._prepare(model) if self._prepare else model

    def callbacks(self, ctx):
        return self._callbacks() if self._callbacks else []


class Raises(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        raise KeyError("boom")


def test_what_a_recipe_returns_is_checked(tiny_tokenizer, tmp_path):
    for prepare in (lambda m: None, lambda m: "model"):
        with pytest.raises(ComponentError, match="prepare returned .*, not the model") as err:
            _run(tiny_tokenizer, tmp_path, recipe=Faulty(prepare=prepare))
        assert err.value.component == "recipe 'faulty'"
    for returned in ([lambda *a: None], [object()]):
        with pytest.raises(ComponentError, match="not a transformers.TrainerCallback") as err:
            _run(tiny_tokenizer, tmp_path, recipe=Faulty(callbacks=lambda r=returned: r))
        assert err.value.component == "recipe 'faulty'"


def test_a_failing_callback_is_blamed_on_its_owner(tiny_tokenizer, tmp_path):
    with pytest.raises(ComponentError, match="KeyError") as err:
        _run(tiny_tokenizer, tmp_path, recipe=Faulty(callbacks=lambda: [Raises()]))
    assert err.value.component == "recipe 'faulty'"
    with pytest.raises(ComponentError, match="KeyError") as err:  # no recipe: not "recipe 'recipe'"
        _run(tiny_tokenizer, tmp_path, callbacks=[Raises()])
    assert err.value.component == "recipe runner"


def test_evaluations_asked_without_evaluation_data_are_an_error(tiny_tokenizer, tmp_path):
    for key, value in (("eval_at", [1]), ("eval_every", 1)):
        with pytest.raises(ConfigError, match=f"{key} asks for evaluations") as err:
            _run(tiny_tokenizer, tmp_path, **{key: value})
        assert "eval_split" in err.value.hint


# -- SFT examples that would train on nothing -------------------------------------------------

def test_sft_examples_without_a_response_token_are_refused(tiny_tokenizer, tmp_path):
    sft = {"prompt": "q", "response": "a", "max_length": 8}
    with pytest.raises(InputError, match="example 0 has an empty response 'a'"):
        _run(tiny_tokenizer, tmp_path, train_data=[{"q": "two plus two", "a": ""}],
             data={**sft, "eos": False})
    with pytest.raises(InputError, match="truncating it leaves no response token"):
        _run(tiny_tokenizer, tmp_path, train_data=[{"q": "q " * 30, "a": "four"}],
             data={**sft, "truncate": True})
    kept = _run(tiny_tokenizer, tmp_path, train_data=[{"q": "q", "a": "four " * 10}],
                data={**sft, "truncate": True}, steps=1)
    assert kept.report.metrics["train_tokens"] == 8


# -- checkpoints and resume ------------------------------------------------------------------

@pytest.fixture
def checkpointed(tiny_tokenizer, tmp_path):
    _run(tiny_tokenizer, tmp_path, save_every=2)
    return tmp_path / "run" / "checkpoint-2"


def test_resume_refuses_a_checkpoint_with_nothing_left_to_train(tiny_tokenizer, tmp_path, checkpointed):
    # transformers trained one more step past [train] steps
    for steps in (2, 1):
        with pytest.raises(ConfigError, match="is at step 2, and the run has .* nothing is left") as err:
            _run(tiny_tokenizer, tmp_path, steps=steps, resume="latest")
        assert "above 2" in err.value.hint
    assert not (tmp_path / "run" / "checkpoint-3").exists()
    assert _run(tiny_tokenizer, tmp_path, steps=3, resume="latest").steps == 3


def test_a_checkpoint_of_another_model_is_an_artifact_error(tiny_tokenizer, tmp_path, checkpointed):
    with pytest.raises(ArtifactError, match="does not fit the model: other shapes: model.embed") as err:
        _run(tiny_tokenizer, tmp_path, model=_model(tiny_tokenizer, hidden=32), steps=3, resume="latest")
    assert err.value.component == "checkpoint" and "trained from" in err.value.hint
    with pytest.raises(ModelLoadError, match="does not fit the model"):
        load_checkpoint(checkpointed, model=_model(tiny_tokenizer, hidden=32))
    with pytest.raises(ModelLoadError, match="missing"):
        load_checkpoint(checkpointed, model=torch.nn.Linear(2, 2))
    model, _, manifest = load_checkpoint(checkpointed, model=_model(tiny_tokenizer))
    assert manifest["step"] == 2


@pytest.mark.parametrize("points", [[[1]], "abc", [[1, "low", "x"]], [[True, 1.0, "x"]]])
def test_a_damaged_manifest_evaluation_list_is_a_corrupt_artifact(tiny_tokenizer, tmp_path, checkpointed,
                                                                  points):
    manifest = checkpointed / "tokensmith-checkpoint.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "evaluations": points}))
    with pytest.raises(CorruptArtifactError, match="evaluation point"):
        _run(tiny_tokenizer, tmp_path, steps=3, resume="latest")


# -- recipe files, before anything loads -------------------------------------------------------

class Pairs:
    name = "pairs"
    splits = ("train", "eval", "all")

    def examples(self, split="train"):
        return iter([{"text": "a b c"}])


class Nothing(Pairs):
    name = "nothing"

    def examples(self, split="train"):
        return iter([])


class Plugin:
    @hookimpl
    def tokensmith_register_datasets(self):
        return [Component("pairs", Pairs, "one line"), Component("nothing", Nothing, "no examples")]


BASE = {"model": {"source": "tiny-llama", "layers": 1}, "dataset": {"type": "pairs"}, "train": {"steps": 2}}


def test_recipe_spec_problems_found_before_loading(make_registry):
    registry = make_registry(Plugin())
    with pytest.raises(ConfigError, match=r"\[\[objective\]\] must be tables"):
        RecipeSpec.from_config({**BASE, "objective": 3})
    spec = RecipeSpec.from_config({**BASE, "dataset": {"type": "pairs", "split": "test", "eval_split": "dev"},
                                   "train": {"steps": 2, "eval_every": 1}})
    problems = [str(p) for p in spec.problems(registry)]
    assert any("[dataset] split = 'test' is not a split of this dataset" in p for p in problems)
    assert any("[dataset] eval_split = 'dev' is not a split" in p for p in problems)
    assert not any("eval_every" in p for p in problems)  # it has an eval_split, a wrong one
    spec = RecipeSpec.from_config({**BASE, "train": {"steps": 2, "eval_at": [0]}})
    assert any("eval_at asks for evaluations, but [dataset] has no eval_split" in str(p)
               for p in spec.problems(registry))
    with pytest.raises(ValidationError, match=r"problem\(s\) in the recipe") as err:
        tokensmith.train({**BASE, "train": {"steps": 2, "eval_at": [0]}}, registry=registry)
    assert "pipeline" not in str(err.value).splitlines()[0]


def test_a_dataset_that_yields_nothing_is_named(make_registry, tmp_path):
    registry = make_registry(Plugin())
    with pytest.raises(ConfigError, match="split 'train' has no examples") as err:
        tokensmith.train({**BASE, "dataset": {"type": "nothing"}}, registry=registry, output_dir=tmp_path)
    assert err.value.component == "dataset 'nothing'"


def test_a_non_finite_float_parameter_says_so():
    with pytest.raises(ConfigError, match=r"'lr' must be float \(a finite number\), got float nan"):
        RecipeSpec.from_config({**BASE, "train": {"steps": 2, "lr": math.nan}})


def test_the_cli_gives_one_line_and_exit_2(make_registry, monkeypatch, capsys, tmp_path):
    registry = make_registry(Plugin())
    monkeypatch.setattr(tokensmith, "default_registry", lambda: registry)
    recipe = tmp_path / "r.toml"
    recipe.write_text('objective = 3\n[model]\nsource = "tiny-llama"\n[dataset]\ntype = "pairs"\n'
                      '[train]\nsteps = 1\n')
    assert cli.main(["train", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokensmith: error: [recipe] [[objective]] must be tables")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2  # the error and its hint


# -- rewards as TRL reward functions -------------------------------------------------------------

class Returns(Reward):
    name = "returns"

    def __init__(self, value):
        self.value = value

    def __call__(self, prompts, completions, **info):
        self.check_inputs(prompts, completions, info)
        return self.value(completions) if callable(self.value) else self.value


@pytest.mark.parametrize(("value", "message"), [
    ([1.0], "returned 1 rewards for 2 completions"), (1.0, "returned float 1.0, not a list"),
    (None, "returned NoneType"), (["1.0", "2.0"], "reward 0 is str"), ([None, 1.0], "reward 0 is NoneType"),
    ([True, 1.0], "reward 0 is bool"), ([1.0, math.nan], "reward 1 is nan"),
    ([math.inf, 1.0], "reward 0 is inf"), ("ab", "returned str")])
def test_what_a_reward_returns_is_checked(value, message):
    (f,) = reward_funcs(Returns(value))
    with pytest.raises(ComponentError, match=message) as err:
        f(["p", "q"], ["a", "b"])
    assert err.value.component == "reward 'returns'" and err.value.hint


def test_rewards_as_numbers_of_any_kind_and_a_raising_reward():
    (f,) = reward_funcs(Returns(lambda c: np.array([1, 2.5])))
    assert f(["p", "q"], ["a", "b"]) == [1.0, 2.5]
    (f,) = reward_funcs(Returns(lambda c: (np.float32(0.5), 2)))
    assert f(["p", "q"], ["a", "b"]) == [0.5, 2.0]
    (f,) = reward_funcs(Returns(lambda c: [len(c[5])]))
    with pytest.raises(ComponentError, match="computing the rewards raised IndexError") as err:
        f(["p"], ["a"])
    assert err.value.component == "reward 'returns'"


# -- tokenizer trainers and reports ---------------------------------------------------------------

@pytest.mark.needs_baselines
@pytest.mark.parametrize("kind", ["byte-level-bpe", "bpe", "unigram", "wordpiece"])
def test_a_corpus_of_empty_texts_is_an_input_error(installed_registry, kind):
    trainer = installed_registry.build("tokenizer_trainer", {"type": kind, "vocab_size": 300})
    with pytest.raises(InputError, match="all 3 texts are empty"):
        trainer.train(["", "", ""], progress=False)


def test_a_report_without_series_leaves_no_stale_png(tmp_path):
    pytest.importorskip("matplotlib")
    with_plot = Report("r", {"a": 1}, series=(Series("s", (1, 2), (3, 4)),))
    assert (tmp_path / "r.png") == write_all(with_plot, tmp_path)["png"]
    paths = write_all(Report("r", {"a": 2}), tmp_path)
    assert sorted(paths) == ["json", "md"] and not (tmp_path / "r.png").exists()


# -- files, datasets, the model's tokenizer --------------------------------------------------------

def test_writing_into_a_file_as_a_folder_is_an_artifact_error(tmp_path, tiny_tokenizer):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    with pytest.raises(ArtifactError, match="cannot write .*taken/r.json") as err:
        write_all(Report("r", {"a": 1}), blocker)
    assert err.value.component == "files" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    with pytest.raises(ConfigError, match="the output directory .* is a file"):
        run_recipe(model=_model(tiny_tokenizer), tokenizer=tiny_tokenizer, train_data=TEXTS, data=PACKED,
                   arguments={"steps": 1, "progress": "off"}, output_dir=blocker)


@pytest.mark.parametrize(("record", "message"), [
    ((3, {"text": "a"}), "the key 3 \\(int\\) at 0; keys are str"),
    (("k", "a"), "str as the example of key 'k'"), ("k", "str 'k' at 0, not a \\(key, example\\) pair"),
    (("k", {}, 1), "not a \\(key, example\\) pair")])
def test_what_records_yields_is_checked(record, message):
    import attrs

    @attrs.define(kw_only=True)
    class OneRecord(tokensmith.SplitDataset):
        name = "one-record"

        def records(self):
            yield record

    with pytest.raises(ComponentError, match=message) as err:
        list(OneRecord().examples("all"))
    assert err.value.component == "dataset 'one-record'" and "str key" in err.value.hint


@pytest.mark.needs_baselines
def test_the_model_tokenizer_without_a_model_says_so(installed_registry):
    from tokensmith import BuildContext, IncompatibleComponentsError, Runtime

    with pytest.raises(IncompatibleComponentsError, match="no loaded model"):
        ctx = BuildContext(runtime=Runtime(), registry=installed_registry)
        installed_registry.build("tokenizer", "model", ctx)


@pytest.mark.needs_baselines
def test_a_vocab_size_too_large_to_reserve_is_refused_not_a_crash(installed_registry):
    # tokenizers reserves ~70 bytes per id up front: vocab_size 10**9 aborted the process (Rust OOM)
    for kind in ("byte-level-bpe", "bpe", "unigram", "wordpiece"):
        with pytest.raises(ConfigError, match="is above the 16,777,216 ids a trainer accepts"):
            installed_registry.build("tokenizer_trainer", {"type": kind, "vocab_size": 10**9})


def test_saving_a_tokenizer_to_what_is_not_a_path(tiny_tokenizer):
    for path in (3, None, ""):
        with pytest.raises(InputError, match="saved to a path"):
            tiny_tokenizer.save(path)


@pytest.mark.needs_baselines
def test_a_tuple_column_of_the_wrong_length_is_an_input_error(installed_registry):
    # only lists were checked: exact-match zipped a short tuple and returned 1 reward for 2
    exact = installed_registry.build("objective", "exact-match")
    with pytest.raises(InputError, match="column 'answer' has 1 values for 2 completions"):
        exact(["a", "b"], ["4", "5"], answer=("4",))
    assert exact(["a", "b"], ["4", "5"], answer=("4", "6")) == [1.0, 0.0]
