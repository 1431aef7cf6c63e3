"""The recipe runner on transformers' Trainer: losses equal the model's own, gradient
accumulation normalises like one batch, resume is exact, checkpoints are verified and reload,
freeze/train globs, SFT masks, packing, recipes' prepare/callbacks and evaluation points."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import Trainer, TrainerCallback

from tokensmith import (
    IGNORE_INDEX,
    ArtifactError,
    Component,
    ConfigError,
    CorruptArtifactError,
    InputError,
    Loss,
    Recipe,
    TokenMask,
    hookimpl,
    load_artifact,
    token_cross_entropy,
)
from tokensmith.adapters import checkpoints as ckpt
from tokensmith.adapters.models import TINY_CORPUS, tiny_llama
from tokensmith.adapters.training import (
    PadCollator,
    build_sequences,
    run_recipe,
    training_arguments,
    training_kwargs,
)
from tokensmith.core.recipe_spec import DataSettings, TrainSettings

TEXTS = [{"text": s} for s in TINY_CORPUS.split(". ")]
PACKED = {"max_length": 16, "packing": True}


@pytest.fixture(autouse=True)
def _one_thread(torch_single_thread):
    yield


def _model(tok, seed=0):
    return tiny_llama(tok, hidden_size=16, layers=1, heads=2, seed=seed)[0]


def _run(tok, tmp_path, name, *, model=None, **kw):
    arguments = {"steps": 4, "batch_size": 2, "lr": 3e-3, "progress": "off", "save_final": False,
                 **kw.pop("arguments", {})}
    return run_recipe(model=model or _model(tok), tokenizer=tok, train_data=kw.pop("train_data", TEXTS),
                      data=kw.pop("data", PACKED), arguments=arguments, output_dir=tmp_path / name, **kw)


def _weights(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


class StopAt(TrainerCallback):
    """Ends the run after ``step`` (as if the job were killed right after its checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_losses_are_the_model_s_own_loss_on_a_plain_trainer(tiny_tokenizer, tmp_path):
    """No objective: the composed cross-entropy gives, step by step, exactly the losses of a
    plain Trainer on the model's own loss (same model, data, seed, arguments)."""
    train = TrainSettings(steps=5, batch_size=2, lr=3e-3, grad_accumulation=2, progress="off",
                          save_final=False)
    ours = _run(tiny_tokenizer, tmp_path, "ours", arguments=attrs_dict(train))
    from tokensmith import Runtime

    rows = build_sequences(TEXTS, tiny_tokenizer, DataSettings(**PACKED))
    plain = Trainer(model=_model(tiny_tokenizer), train_dataset=rows, data_collator=PadCollator(0),
                    args=training_arguments(train, Runtime(), tmp_path / "plain", evaluates=False))
    plain.train()
    theirs = [h["loss"] for h in plain.state.log_history if "loss" in h]
    assert [loss for _, loss in ours.losses] == theirs
    assert len(theirs) == 5 and all(torch.isfinite(torch.tensor(theirs)))


def attrs_dict(train):
    return train.to_config()


def test_gradient_accumulation_normalises_like_one_batch(tiny_tokenizer, tmp_path):
    """2 micro-batches of 2 sequences of unequal length = 1 batch of 4: same loss, same step."""
    texts = [{"text": t} for t in ("The quick brown fox", "A tokenizer", "def fibonacci(n): return n",
                                   "Paris and Rome are capitals of two countries")]
    common = {"steps": 1, "shuffle": False, "lr": 1.0, "arguments": {"optim": "sgd"}}  # step = -gradient
    one = _run(tiny_tokenizer, tmp_path, "one", train_data=texts, data={"max_length": 32},
               arguments={**common, "batch_size": 4})
    two = _run(tiny_tokenizer, tmp_path, "two", train_data=texts, data={"max_length": 32},
               arguments={**common, "batch_size": 2, "grad_accumulation": 2})
    assert one.losses[0][1] == pytest.approx(two.losses[0][1], abs=1e-6)
    for name, weight in _weights(one.model).items():
        assert torch.allclose(weight, _weights(two.model)[name], atol=1e-6), name


def test_resume_gives_the_same_next_step_loss_and_final_weights(tiny_tokenizer, tmp_path):
    """Shuffled data over several epochs, accumulation, warm-up + cosine, weight decay and
    clipping: 8 steps straight, or 4 + a checkpoint + a fresh process-like resume."""
    arguments = {"steps": 8, "grad_accumulation": 2, "schedule": "cosine", "warmup": 2, "weight_decay": 0.1,
                 "save_every": 4}
    straight = _run(tiny_tokenizer, tmp_path, "straight", arguments=arguments)
    _run(tiny_tokenizer, tmp_path, "split", arguments=arguments, callbacks=[StopAt(4)])
    assert (tmp_path / "split" / "checkpoint-4" / ckpt.MANIFEST).is_file()
    assert not (tmp_path / "split" / "checkpoint-8").exists()
    resumed = _run(tiny_tokenizer, tmp_path, "split", model=_model(tiny_tokenizer, seed=1),
                   arguments=arguments, resume="latest")
    assert resumed.losses[4] == straight.losses[4]  # step 5, the first after the checkpoint
    assert resumed.losses == straight.losses
    final = _weights(resumed.model)
    assert all(torch.equal(w, final[n]) for n, w in _weights(straight.model).items())
    assert any("resumed from" in note for note in resumed.report.notes)


def test_a_run_writes_its_report_checkpoints_and_final_model(tiny_tokenizer, tmp_path):
    result = _run(tiny_tokenizer, tmp_path, "run", eval_data=TEXTS[:3],
                  arguments={"steps": 4, "eval_at": [0, 2], "save_every": 2, "save_final": True})
    assert [(e.step, e.label) for e in result.evaluations] == [(0, "start"), (2, "step"), (4, "end")]
    assert [p.name for p in result.checkpoints] == ["checkpoint-2", "checkpoint-4", "final"]
    out = tmp_path / "run"
    data = json.loads((out / "train.json").read_text())
    assert data["metrics"]["steps"] == 4 and data["metrics"]["world_size"] == 1
    assert data["metrics"]["final_train_loss"] == result.losses[-1][1]
    assert data["metrics"]["final_eval_loss"] == result.evaluations[-1].loss
    series = {s["name"]: s for s in data["series"]}
    assert series["train loss"]["x"] == [1.0, 2.0, 3.0, 4.0]
    assert series["eval loss"]["x"] == [0.0, 2.0, 4.0]
    assert data["provenance"]["seed"] == 0 and "tokensmith" in data["provenance"]["plugins"]
    assert (out / "train.md").is_file()
    if "no loss-curve PNG" not in " ".join(data["notes"]):
        assert (out / "train.png").read_bytes()[:4] == b"\x89PNG"
    manifest = ckpt.verify_checkpoint(out / "checkpoint-2", resume=True)
    assert manifest["step"] == 2 and manifest["tokenizer_sha256"] == ckpt.tokenizer_hash(tiny_tokenizer)
    assert [e[:2] for e in manifest["evaluations"]] == [[0, result.evaluations[0].loss], [2, manifest[
        "evaluations"][1][1]]]
    assert not list(out.rglob("training_args.bin"))


@pytest.mark.parametrize("files, written", [("text", {"train.json", "train.md"}), ("none", set())])
def test_report_files_text_or_none_write_less_and_return_the_same_report(tiny_tokenizer, tmp_path, files,
                                                                         written):
    result = _run(tiny_tokenizer, tmp_path, files, arguments={"steps": 2, "report_files": files})
    assert {p.name for p in (tmp_path / files).iterdir() if p.is_file()} == written
    assert result.report.metrics["steps"] == 2 and result.report.series


def test_checkpoints_reload_into_a_model(tiny_tokenizer, tmp_path, make_registry):
    result = _run(tiny_tokenizer, tmp_path, "run", arguments={"save_final": True})
    model, tok, manifest = ckpt.load_checkpoint(result.final_dir)
    ids = torch.tensor([list(tiny_tokenizer.encode("The quick brown fox").ids)])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, result.model.eval()(input_ids=ids).logits)
    assert tok.encode("crème brûlée").ids == tiny_tokenizer.encode("crème brûlée").ids
    assert manifest["tokenizer_sha256"] == ckpt.tokenizer_hash(tok)
    _, meta = load_artifact(result.final_dir / "model.safetensors")  # the content hash verifies
    assert meta["plugin"] == "tokensmith" and meta["config"]["step"] == 4
    assert meta["config"]["tokenizer_sha256"] == manifest["tokenizer_sha256"]
    from tokensmith import ModelSource, Runtime

    loaded, _ = make_registry().load_model(ModelSource(str(result.final_dir)), Runtime())
    assert all(torch.equal(p, q) for p, q in zip(loaded.parameters(), model.parameters(), strict=True))


def test_damaged_or_missing_checkpoint_files_are_typed_errors(tiny_tokenizer, tmp_path):
    _run(tiny_tokenizer, tmp_path, "run", arguments={"steps": 2, "save_every": 2, "save_final": True})
    out = tmp_path / "run"
    with pytest.raises(ArtifactError, match="no training state"):
        ckpt.verify_checkpoint(out / "final", resume=True)
    with pytest.raises(ArtifactError, match="no finished checkpoint"):
        ckpt.latest_checkpoint(tmp_path / "elsewhere")
    with pytest.raises(ArtifactError, match="does not exist"):
        _run(tiny_tokenizer, tmp_path, "run", resume=tmp_path / "nowhere")
    checkpoint = out / "checkpoint-2"
    optimizer = checkpoint / "optimizer.pt"
    intact = optimizer.read_bytes()
    data = bytearray(intact)
    data[len(data) // 2] ^= 0xFF
    optimizer.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifactError, match="optimizer.pt"):
        _run(tiny_tokenizer, tmp_path, "run", resume="latest")
    optimizer.write_bytes(intact)
    ckpt.verify_checkpoint(checkpoint, resume=True)
    (checkpoint / "scheduler.pt").unlink()
    with pytest.raises(ArtifactError, match="lacks scheduler.pt"):
        ckpt.verify_checkpoint(checkpoint)
    (checkpoint / ckpt.MANIFEST).write_text("{not json")
    with pytest.raises(CorruptArtifactError):
        ckpt.verify_checkpoint(checkpoint)
    (checkpoint / ckpt.MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="save did not finish"):
        ckpt.verify_checkpoint(checkpoint)
    with pytest.raises(ArtifactError, match="no finished checkpoint"):
        ckpt.latest_checkpoint(out)


def test_resuming_with_another_tokenizer_is_refused(tiny_tokenizer, tiny_byte_fallback_tokenizer, tmp_path):
    _run(tiny_tokenizer, tmp_path, "run", arguments={"steps": 2, "save_every": 2})
    with pytest.raises(ArtifactError, match="another tokenizer"):
        _run(tiny_byte_fallback_tokenizer, tmp_path, "run", model=_model(tiny_byte_fallback_tokenizer),
             arguments={"steps": 2, "save_every": 2}, resume="latest")


def test_frozen_globs_keep_weights_and_unmatched_globs_name_close_parameters(tiny_tokenizer, tmp_path):
    model = _model(tiny_tokenizer)
    before = _weights(model)
    result = _run(tiny_tokenizer, tmp_path, "run", model=model,
                  arguments={"trainable": ["model.*"], "frozen": ["model.embed_tokens.*", "*.mlp.*"]})
    after = _weights(result.model)
    for name in before:
        frozen = name.startswith("model.embed_tokens") or ".mlp." in name or name.startswith("lm_head")
        assert torch.equal(before[name], after[name]) == frozen, name
    assert all(p.requires_grad for p in model.parameters())
    assert result.report.metrics["trainable_parameters"] < result.report.metrics["parameters"]
    with pytest.raises(ConfigError, match="'model.layer.*'") as err:
        _run(tiny_tokenizer, tmp_path, "bad", arguments={"trainable": ["model.layer.*"]})
    assert "model.layers.0" in str(err.value)
    with pytest.raises(ConfigError, match="no parameter to train"):
        _run(tiny_tokenizer, tmp_path, "bad", arguments={"frozen": ["*"]})


class Recorded(Loss):
    """Cross-entropy that records the keys of every batch it sees."""

    name = "recorded"

    def __init__(self):
        self.keys = []
        self.response_only = []

    def __call__(self, batch, outputs, *, num_items=None):
        self.keys.append(sorted(batch))
        if "response_mask" in batch:
            kept = batch["labels"] != IGNORE_INDEX
            self.response_only.append(bool((kept <= batch["response_mask"]).all()))
        return token_cross_entropy(batch, outputs, num_items=num_items)


class ResponseOnly(TokenMask):
    name = "response-only"

    def __call__(self, batch, outputs):
        return batch["response_mask"]


def test_sft_labels_the_response_only_and_objectives_see_the_mask(tiny_tokenizer, tmp_path):
    examples = [{"question": "The capital of France?", "answer": " Paris."},
                {"question": "def fibonacci(n):", "answer": " return n"}]
    data = DataSettings(prompt="question", response="answer", max_length=64)
    rows = build_sequences(examples, tiny_tokenizer, data)
    for row, ex in zip(rows, examples, strict=True):
        prompt = [tiny_tokenizer.bos_id] + list(tiny_tokenizer.encode(ex["question"]).ids)
        response = list(tiny_tokenizer.encode(ex["answer"]).ids) + [tiny_tokenizer.eos_id]
        assert row["input_ids"] == prompt + response
        assert row["labels"] == [IGNORE_INDEX] * len(prompt) + response
        assert row["response_mask"] == [0] * len(prompt) + [1] * len(response)
    loss = Recorded()
    result = _run(tiny_tokenizer, tmp_path, "sft", train_data=examples, data=data,
                  objectives=[loss, ResponseOnly()], arguments={"steps": 2})
    assert loss.keys and all(k == ["attention_mask", "input_ids", "labels", "response_mask"]
                             for k in loss.keys), loss.keys
    assert loss.response_only == [True] * len(loss.keys)  # the mask reached the loss
    assert result.steps == 2


def test_text_that_does_not_fit_is_refused_not_cut(tiny_tokenizer):
    long = [{"text": TINY_CORPUS}]
    with pytest.raises(InputError, match="max_length = 16"):
        build_sequences(long, tiny_tokenizer, DataSettings(max_length=16))
    cut = build_sequences(long, tiny_tokenizer, DataSettings(max_length=16, truncate=True))
    assert len(cut[0]["input_ids"]) == 16
    with pytest.raises(InputError, match="no field 'text'"):
        build_sequences([{"body": "x"}], tiny_tokenizer, DataSettings())
    with pytest.raises(InputError, match="not a mapping"):
        build_sequences(["just a string"], tiny_tokenizer, DataSettings())
    with pytest.raises(ConfigError, match="no examples"):
        build_sequences([], tiny_tokenizer, DataSettings())
    with pytest.raises(InputError, match="embedding rows"):
        build_sequences([{"input_ids": [1, 400]}], None, DataSettings(), vocab_rows=320)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 99), min_size=1, max_size=30), min_size=1, max_size=8),
       st.integers(1, 20))
def test_packing_keeps_every_token_in_order(sequences, length):
    rows = build_sequences([{"input_ids": s} for s in sequences], None,
                           DataSettings(max_length=length, packing=True))
    assert [t for r in rows for t in r["input_ids"]] == [t for s in sequences for t in s]
    assert all(len(r["input_ids"]) == length for r in rows[:-1]) and 0 < len(rows[-1]["input_ids"]) <= length
    assert all(r["labels"] == r["input_ids"] for r in rows)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 99), min_size=1, max_size=12), min_size=1, max_size=6))
def test_the_collator_pads_without_changing_a_token(sequences):
    batch = PadCollator(7)([{"input_ids": s, "labels": s} for s in sequences])
    for i, s in enumerate(sequences):
        n = len(s)
        assert batch["input_ids"][i, :n].tolist() == s and batch["attention_mask"][i].sum() == n
        assert (batch["input_ids"][i, n:] == 7).all() and (batch["labels"][i, n:] == IGNORE_INDEX).all()


class FreezeEmbeddingsAndProbe(Recipe):
    """A recipe: prepare freezes the embeddings; a callback evaluates at step 2 with a label."""

    name = "probe"

    def prepare(self, model, ctx):
        assert ctx.trainer is None and ctx.settings.steps >= 2
        model.model.embed_tokens.weight.requires_grad_(False)
        self.embeddings = model.model.embed_tokens.weight.detach().clone()
        return model

    def callbacks(self, ctx):
        class Probe(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 2:
                    ctx.evaluate("probe")

        return [Probe()]


def test_a_recipe_prepares_the_model_and_its_callbacks_evaluate(tiny_tokenizer, tmp_path):
    recipe = FreezeEmbeddingsAndProbe()
    result = _run(tiny_tokenizer, tmp_path, "recipe", recipe=recipe, eval_data=TEXTS[:2],
                  arguments={"progress": "bar"})
    assert [(e.step, e.label) for e in result.evaluations] == [(2, "probe"), (4, "end")]
    assert torch.equal(result.model.model.embed_tokens.weight, recipe.embeddings)  # prepare's freeze held
    assert result.report.metrics["trainable_parameters"] < result.report.metrics["parameters"]
    assert all(p.requires_grad for p in result.model.parameters())  # the flags are as they came


def test_an_evaluation_inside_a_step_keeps_that_step_s_log(tiny_tokenizer, tmp_path):
    # Trainer.evaluate() logs, which used to clear the step's pending training-loss log: a
    # callback evaluating at step 2 lost it. The step's scheduled evaluation is the callback's
    # (same step, same weights) and is not run twice.
    result = _run(tiny_tokenizer, tmp_path, "inside", recipe=FreezeEmbeddingsAndProbe(), eval_data=TEXTS[:2],
                  arguments={"eval_every": 2})
    assert [step for step, _ in result.losses] == [1, 2, 3, 4]
    assert [e.step for e in result.evaluations] == [2, 4]
    assert result.evaluations[0].label == "probe"


def test_training_arguments_refuse_what_would_crash_or_conflict(tiny_tokenizer, tmp_path):
    from tokensmith import Runtime, ValidationError

    train = TrainSettings(steps=2, arguments={"learning_rat": 1.0, "learning_rate": 1.0, "bf16": True,
                                              "adam_beta2": "high"}, schedule="cosin")
    with pytest.raises(ValidationError) as err:
        training_arguments(train, Runtime(), tmp_path, evaluates=False)
    text = str(err.value)
    for expected in ("'learning_rat' is not a TrainingArguments field", "did you mean 'learning_rate'",
                     "learning_rate is set by [train] lr", "bf16 = true on a CPU", "adam_beta2 must be float",
                     "schedule 'cosin'", "did you mean 'cosine'"):
        assert expected in text, expected
    args = training_arguments(TrainSettings(steps=2), Runtime(), tmp_path, evaluates=False)
    assert args.use_cpu and not args.bf16 and not args.fp16 and args.ddp_backend is None
    distributed = training_kwargs(TrainSettings(steps=2), Runtime(world_size=2), tmp_path, evaluates=False)
    assert distributed["ddp_backend"] == "gloo" and distributed["use_cpu"]


class TinyLM(torch.nn.Module):
    """Not a transformers model: forward(input_ids) returns the logits tensor."""

    def __init__(self, vocab):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 8)
        self.head = torch.nn.Linear(8, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied, as many small LMs are

    def forward(self, input_ids):
        return self.head(torch.tanh(self.embed(input_ids)))


def test_a_plain_torch_model_trains_checkpoints_and_reloads(tiny_tokenizer, tmp_path):
    torch.manual_seed(0)
    model = TinyLM(tiny_tokenizer.vocab_size)
    result = _run(tiny_tokenizer, tmp_path, "plain", model=model,
                  arguments={"save_every": 2, "save_final": True})
    assert result.losses[-1][1] < result.losses[0][1] + 1.0
    fresh = TinyLM(tiny_tokenizer.vocab_size)
    loaded, tok, _ = ckpt.load_checkpoint(result.final_dir, model=fresh)
    assert torch.equal(loaded.embed.weight, model.embed.weight) and loaded.head.weight is loaded.embed.weight
    assert tok.vocab_size == tiny_tokenizer.vocab_size
    resumed = _run(tiny_tokenizer, tmp_path, "plain", model=TinyLM(tiny_tokenizer.vocab_size),
                   arguments={"steps": 6, "save_every": 2}, resume=tmp_path / "plain" / "checkpoint-4")
    assert resumed.steps == 6


class TextDataset:
    """A dataset component for the by-name path (``examples(split)``)."""

    name = "tiny-text"

    def __init__(self, repeat: int = 1):
        self.repeat = repeat

    def examples(self, split="train"):
        texts = TEXTS * self.repeat
        return iter(texts[:-2] if split == "train" else texts[-2:])


class Plugin:
    @hookimpl
    def tokensmith_register_datasets(self):
        return [Component("tiny-text", TextDataset, "the tiny corpus, sentence by sentence")]

    @hookimpl
    def tokensmith_register_objectives(self):
        return [Component("recorded", Recorded, "cross-entropy that records batch keys")]

    @hookimpl
    def tokensmith_register_recipes(self):
        return [Component("probe", FreezeEmbeddingsAndProbe, "freeze embeddings, evaluate at step 2")]


def test_a_recipe_spec_runs_by_name(make_registry, tmp_path):
    from tokensmith import train

    registry = make_registry(Plugin())
    spec = {"model": {"source": "tiny-llama", "hidden_size": 16, "layers": 1, "heads": 2},
            "runtime": {"device": "cpu", "seed": 0},
            "dataset": {"type": "tiny-text", "repeat": 2, "eval_split": "test"},
            "data": {"max_length": 16, "packing": True}, "objective": [{"type": "recorded"}],
            "recipe": {"type": "probe"},
            "train": {"steps": 4, "batch_size": 2, "lr": 1e-3, "progress": "off",
                      "frozen": ["model.embed_tokens.*"]}}
    result = train(spec, registry=registry, output_dir=tmp_path / "out")
    assert result.steps == 4 and [e.label for e in result.evaluations] == ["probe", "end"]
    data = json.loads((tmp_path / "out" / "train.json").read_text())
    assert data["provenance"]["extra"]["recipe"]["dataset"]["type"] == "tiny-text"
    assert data["provenance"]["model"] == "tiny-llama"
    manifest = ckpt.verify_checkpoint(result.final_dir)
    assert manifest["recipe"]["objective"] == [{"type": "recorded"}]
    shorter = train(spec, registry=registry, output_dir=tmp_path / "short", max_steps=2)
    assert shorter.steps == 2


def test_the_python_examples_of_docs_training_run(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/training.md", "exec"), {"__name__": "docs_training"})
    assert (tmp_path / "runs" / "doc-example" / "train.json").is_file()
    assert (tmp_path / "runs" / "weighted" / "train.json").is_file()


def test_a_model_whose_config_is_a_frozen_record_trains(tiny_tokenizer, tmp_path):
    # transformers' Trainer writes model.config.use_cache; a technique's own model may keep its
    # config as a frozen record (the TransNormer does): the runner must not crash on it
    import math

    import attrs

    @attrs.frozen
    class Frozen:
        vocab_size: int

    class Tiny(torch.nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.config = Frozen(vocab)
            self.embed = torch.nn.Embedding(vocab, 8)
            self.head = torch.nn.Linear(8, vocab)

        def forward(self, input_ids, attention_mask=None):
            return self.head(self.embed(input_ids))

    model = Tiny(tiny_tokenizer.vocab_size)
    result = _run(tiny_tokenizer, tmp_path, "frozen", model=model)
    assert len(result.losses) == 4 and all(math.isfinite(loss) for _, loss in result.losses)
    assert isinstance(model.config, Frozen)  # given back as it was
