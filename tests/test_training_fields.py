"""[data] token_fields and example_fields: example fields beyond the tokens reach the batch (the
objectives, and the model when its forward takes them), are packed/truncated/padded with the
tokens they belong to, and every misuse is a typed error."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import IGNORE_INDEX, ConfigError, InputError, Loss, token_cross_entropy
from tokensmith.adapters.training import PadCollator, build_sequences, run_recipe
from tokensmith.core.recipe_spec import DataSettings
from tokensmith.core.recipe_spec import settings as read_settings

ids = st.lists(st.integers(0, 50), min_size=1, max_size=12)


@pytest.fixture(autouse=True)
def _one_thread(torch_single_thread):
    yield


@settings(max_examples=40, deadline=None)
@given(st.lists(ids, min_size=1, max_size=6), st.integers(1, 10), st.booleans())
def test_a_token_field_stays_aligned_with_its_tokens(sequences, length, pack):
    # the field's value at a token is a function of the token and its place: after packing or
    # truncation and padding, every kept token still carries its own value
    examples = [{"input_ids": s, "w": [t + 0.5 + 100 * j for t in s], "note": "not passed"}
                for j, s in enumerate(sequences)]
    data = DataSettings(max_length=length, packing=pack, truncate=not pack, token_fields=["w"])
    rows = build_sequences(examples, None, data)
    assert all(sorted(r) == ["input_ids", "labels", "w"] for r in rows)
    batch = PadCollator(0)(rows)
    assert batch["w"].dtype == torch.float32
    if pack:
        flat_ids = [t for s in sequences for t in s]
        flat_w = [w for e in examples for w in e["w"]]
        got = [(int(i), float(w)) for r in range(len(rows)) for i, w, m in
               zip(batch["input_ids"][r], batch["w"][r], batch["attention_mask"][r]) if m]
        assert got == list(zip(flat_ids, flat_w))
    else:
        for r, example in enumerate(examples):
            n = min(len(example["input_ids"]), length)
            assert batch["w"][r, :n].tolist() == example["w"][:n]
            assert (batch["w"][r, n:] == 0).all() and batch["attention_mask"][r].sum() == n


def test_integer_token_fields_stay_integers():
    rows = build_sequences([{"input_ids": [1, 2, 3], "tag": [0, 1, 1]}, {"input_ids": [4], "tag": [2]}], None,
                           DataSettings(token_fields=["tag"]))
    batch = PadCollator(0)(rows)
    assert batch["tag"].dtype == torch.long and batch["tag"].tolist() == [[0, 1, 1], [2, 0, 0]]


def test_a_packed_block_joining_int_and_float_values_stays_float():
    examples = [{"input_ids": [1, 2], "w": [1, 1]}, {"input_ids": [3, 4], "w": [0.5, 0.25]}]
    rows = build_sequences(examples, None, DataSettings(max_length=4, packing=True, token_fields=["w"]))
    batch = PadCollator(0)(rows)
    assert batch["w"].dtype == torch.float32 and batch["w"].tolist() == [[1.0, 1.0, 0.5, 0.25]]


def test_example_fields_are_stacked_and_never_cut():
    examples = [{"input_ids": list(range(1, 9)), "pixels": [[float(j)] * 3] * 2} for j in range(3)]
    data = DataSettings(max_length=4, truncate=True, example_fields=["pixels"])
    rows = build_sequences(examples, None, data)
    batch = PadCollator(0, data.example_fields)(rows)
    assert batch["input_ids"].shape == (3, 4)
    assert batch["pixels"].shape == (3, 2, 3) and batch["pixels"][:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    examples[0]["pixels"][0][0] = 99.0  # the batch does not alias the data set
    assert batch["pixels"][0, 0, 0] == 0.0


@pytest.mark.parametrize("example, data, match", [
    ({"input_ids": [1, 2]}, {"token_fields": ["w"]}, "has no field 'w' named in \\[data\\] token_fields"),
    ({"input_ids": [1, 2], "w": [1.0]}, {"token_fields": ["w"]}, "w has 1 entries, input_ids 2"),
    ({"input_ids": [1, 2], "w": [1.0, float("nan")]}, {"token_fields": ["w"]}, "non-finite"),
    ({"input_ids": [1, 2], "w": ["a", "b"]}, {"token_fields": ["w"]}, "must hold numbers"),
    ({"input_ids": [1, 2], "w": "ab"}, {"token_fields": ["w"]}, "must be a list of numbers"),
    ({"input_ids": [1, 2], "w": torch.ones(2, 2)}, {"token_fields": ["w"]}, "1-D tensor"),
    ({"text": "a b", "w": [1.0, 1.0]}, {"token_fields": ["w"]}, "is text, but \\[data\\] token_fields"),
    ({"input_ids": [1, 2], "img": "a picture"}, {"example_fields": ["img"]}, "not an array of numbers"),
    ({"input_ids": [1, 2], "img": [float("inf")]}, {"example_fields": ["img"]}, "non-finite"),
    ({"input_ids": [1, 2]}, {"example_fields": ["img"]}, "has no field 'img' named in \\[data\\] example"),
])
def test_bad_fields_are_input_errors_naming_the_example(tiny_tokenizer, example, data, match):
    with pytest.raises(InputError, match=match) as info:
        build_sequences([example], tiny_tokenizer, DataSettings(**data))
    assert "train example 0" in str(info.value) and info.value.component == "recipe runner"


def test_example_shapes_that_differ_in_a_batch_are_an_input_error():
    rows = build_sequences([{"input_ids": [1], "img": [1.0, 2.0]}, {"input_ids": [2], "img": [1.0]}], None,
                           DataSettings(example_fields=["img"]))
    with pytest.raises(InputError, match="shapes \\[\\(1,\\), \\(2,\\)\\] in one batch"):
        PadCollator(0, ["img"])(rows)


@pytest.mark.parametrize("table, match", [
    ({"token_fields": ["labels"]}, "which the runner makes itself"),
    ({"example_fields": ["input_ids"]}, "which the runner makes itself"),
    ({"token_fields": ["not a name"]}, "identifiers"),
    ({"token_fields": ["w", "w"]}, "names a field twice"),
    ({"token_fields": ["w"], "example_fields": ["w"]}, "both token_fields and example_fields"),
    ({"example_fields": ["img"], "packing": True}, "cannot be packed"),
])
def test_bad_field_settings_are_config_errors_in_toml_and_in_python(table, match):
    record, problems = read_settings(DataSettings, table, "data")
    assert record is None and problems and match.split("\\")[0] in " ".join(map(str, problems))
    with pytest.raises(ConfigError, match=match):
        DataSettings(**table)


class Seen(Loss):
    """Cross-entropy that keeps the batches it saw."""

    name = "seen"

    def __init__(self):
        self.batches = []

    def __call__(self, batch, outputs, *, num_items=None):
        self.batches.append(dict(batch))
        return token_cross_entropy(batch, outputs, num_items=num_items)


class PixelLM(torch.nn.Module):
    """A plain torch LM whose forward takes an image-like per-example input."""

    def __init__(self, vocab):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 8)
        self.picture = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, vocab)
        self.seen = []

    def forward(self, input_ids, attention_mask=None, pixel_values=None):
        self.seen.append(pixel_values.shape)
        hidden = self.embed(input_ids) + self.picture(pixel_values).unsqueeze(1)
        return self.head(torch.tanh(hidden))


def _examples(tok, weights):
    out = []
    for j, text in enumerate(["the cat sat", "on the mat", "a dog ran off", "in the park"]):
        tokens = tok.encode(text).ids
        out.append({"input_ids": tokens, "token_weights": [weights] * len(tokens),
                    "pixel_values": [float(j)] * 4})
    return out


FIELDS = {"max_length": 16, "token_fields": ["token_weights"], "example_fields": ["pixel_values"]}
ARGS = {"steps": 3, "batch_size": 2, "lr": 1e-2, "progress": "off", "save_final": False, "shuffle": False}


def _train(tok, tmp_path, name, weights, loss=None):
    torch.manual_seed(0)
    model, loss = PixelLM(tok.vocab_size), loss or Seen()
    run_recipe(model=model, tokenizer=tok, train_data=_examples(tok, weights), data=FIELDS, objectives=[loss],
               arguments=ARGS, output_dir=tmp_path / name)
    return model, loss


def test_fields_reach_the_objective_and_the_model_and_weights_weigh(tiny_tokenizer, tmp_path):
    model, loss = _train(tiny_tokenizer, tmp_path, "half", 0.5)
    assert model.seen and all(shape == (2, 4) for shape in model.seen)
    batch = loss.batches[0]
    assert batch["token_weights"].dtype == torch.float32 and "pixel_values" in batch
    kept = batch["labels"] != IGNORE_INDEX
    assert (batch["token_weights"][kept] == 0.5).all()
    # weights of 0: nothing to learn, the weights stay where they were
    torch.manual_seed(0)
    before = PixelLM(tiny_tokenizer.vocab_size).state_dict()
    frozen, _ = _train(tiny_tokenizer, tmp_path, "zero", 0.0)
    assert all(torch.equal(before[k], v) for k, v in frozen.state_dict().items())


def test_weights_of_one_train_as_no_weights(tiny_tokenizer, tmp_path):
    ones, _ = _train(tiny_tokenizer, tmp_path, "one", 1.0)

    class NoWeights(Loss):
        name = "no-weights"

        def __call__(self, batch, outputs, *, num_items=None):
            batch = {k: v for k, v in batch.items() if k != "token_weights"}
            return token_cross_entropy(batch, outputs, num_items=num_items)

    plain, _ = _train(tiny_tokenizer, tmp_path, "plain", 1.0, loss=NoWeights())
    assert all(torch.equal(a, b) for a, b in zip(ones.state_dict().values(), plain.state_dict().values()))
