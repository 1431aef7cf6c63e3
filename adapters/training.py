"""The recipe runner: training on transformers' ``Trainer`` (accelerate underneath), so DDP
under ``torchrun`` (gloo on CPU, NCCL on GPU), FSDP and DeepSpeed come from an existing engine.

Two ways in, one loop:

- :func:`train` runs a :class:`~tokensmith.RecipeSpec` (a TOML file, a dict or the record):
  everything is validated before the model loads, then the registry loads the model and
  builds the dataset, objectives and recipe by name;
- :func:`run_recipe` runs parts built in Python: a model, examples, objectives, settings, a
  :class:`~tokensmith.Recipe` and extra callbacks.

:class:`RecipeTrainer` is a ``Trainer`` whose ``compute_loss`` calls the composed objective
(:func:`tokensmith.compose`) on ``(inputs, outputs, num_items_in_batch)``: the model is called
without labels, so the objective alone defines the loss, normalised over the whole accumulated
(and, under DDP, global) batch as transformers normalises its own. Checkpoints are written
and verified by :mod:`tokensmith.adapters.checkpoints`; every run ends with a
:class:`~tokensmith.Report` (loss curve, evaluation points, ranks, provenance) written as JSON,
Markdown and PNG by rank 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import importlib.util
import inspect
import itertools
import math
import sys
import time
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments
from transformers.modeling_outputs import CausalLMOutput
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tokensmith.core.errors import (
    ArtifactError,
    ComponentError,
    ConfigError,
    InputError,
    TokensmithError,
    ValidationError,
    blame,
)
from tokensmith.core.objectives import IGNORE_INDEX, compose
from tokensmith.core.params import check_type, type_name
from tokensmith.core.pipeline import BuildContext
from tokensmith.core.recipe import EvalPoint, TrainContext, TrainResult
from tokensmith.core.recipe_spec import DataSettings, RecipeSpec, TrainSettings, settings
from tokensmith.core.report import Provenance, Report, Series, Table
from tokensmith.core.runtime import Runtime
from tokensmith.core.text import is_tty

from . import checkpoints as ckpt
from .artifacts import atomic_write_text

COMPONENT = "recipe runner"
REPORT_NAME = "train"
#: TrainingArguments that [train] keys (or the runner itself) set: [train.arguments] may not
RESERVED: dict[str, str] = {
    "output_dir": "[train] output_dir (or --output-dir)", "max_steps": "[train] steps",
    "num_train_epochs": "[train] steps", "per_device_train_batch_size": "[train] batch_size",
    "per_device_eval_batch_size": "[train] eval_batch_size", "gradient_accumulation_steps":
    "[train] grad_accumulation", "learning_rate": "[train] lr", "lr_scheduler_type": "[train] schedule",
    "warmup_steps": "[train] warmup", "weight_decay": "[train] weight_decay", "max_grad_norm":
    "[train] grad_clip", "seed": "[train] seed", "eval_strategy": "[train] eval_every / eval_at",
    "eval_steps": "[train] eval_every", "save_strategy": "[train] save_every", "save_steps":
    "[train] save_every", "save_total_limit": "[train] save_total_limit", "logging_strategy":
    "[train] logging_steps", "logging_steps": "[train] logging_steps", "train_sampling_strategy":
    "[train] shuffle", "disable_tqdm": "[train] progress", "use_cpu": "[runtime] device",
    "remove_unused_columns": "the runner (objectives read every batch key)",
    "label_names": "the runner (labels)", "prediction_loss_only": "the runner (evaluation loss)",
    "logging_nan_inf_filter": "the runner (a non-finite training loss stops the run)",
}
#: batch keys the model is never given: the objectives read them
OBJECTIVE_KEYS = frozenset({"labels", "response_mask", "token_weights"})


# -- examples -> sequences -> batches ------------------------------------------

def _ids(value: Any, what: str) -> list[int]:
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.dtype.is_floating_point:
            raise InputError(f"{what} must be a 1-D integer tensor, got shape {tuple(value.shape)} of "
                             f"{value.dtype}", component=COMPONENT)
        return [int(v) for v in value.tolist()]
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InputError(f"{what} must be a list of token ids, got {type(value).__name__}",
                         component=COMPONENT)
    out = list(value)
    if not all(type(v) is int for v in out):
        raise InputError(f"{what} must hold ints (token ids)", component=COMPONENT)
    return out


def _text(example: Mapping[str, Any], field: str, where: str) -> str:
    if field not in example:
        raise InputError(f"{where} has no field {field!r} (it has {sorted(example)})", component=COMPONENT,
                         hint="name the field in [data] (text = ..., or prompt/response = ...)")
    value = example[field]
    if not isinstance(value, str):
        raise InputError(f"{where} field {field!r} is {type(value).__name__}, not text", component=COMPONENT)
    return value


def _numbers(value: Any, what: str) -> list[int] | list[float]:
    """A per-token field as a list of ints or of floats (finite)."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 1 or value.dtype == torch.bool or value.is_complex():
            raise InputError(f"{what} must be a 1-D tensor of numbers, got shape {tuple(value.shape)} of "
                             f"{value.dtype}", component=COMPONENT)
        value = value.tolist()
    elif hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays
        value = value.tolist()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InputError(f"{what} must be a list of numbers, one per token, got {type(value).__name__}",
                         component=COMPONENT)
    out = list(value)
    if all(type(v) is int for v in out):
        return out
    if not all(type(v) in (int, float) for v in out):
        raise InputError(f"{what} must hold numbers (int or float), one per token", component=COMPONENT)
    if not all(math.isfinite(v) for v in out):
        raise InputError(f"{what} holds a non-finite number", component=COMPONENT)
    return [float(v) for v in out]


def _array(value: Any, what: str) -> torch.Tensor:
    """A per-example field as a tensor of numbers (a copy: the batch never aliases the dataset)."""
    try:
        tensor = value.detach().clone() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise InputError(f"{what} is not an array of numbers ({type(value).__name__}: {error})",
                         component=COMPONENT) from None
    if tensor.is_complex():
        raise InputError(f"{what} holds complex numbers", component=COMPONENT)
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise InputError(f"{what} holds a non-finite number", component=COMPONENT)
    return tensor


def _extra(example: Mapping[str, Any], row: dict[str, Any], data: DataSettings, where: str,
           tokenized: bool) -> dict[str, Any]:
    """``row`` with the example's [data] token_fields and example_fields added."""
    for key in (*data.token_fields, *data.example_fields):
        if key not in example:
            kind = "token_fields" if key in data.token_fields else "example_fields"
            raise InputError(f"{where} has no field {key!r} named in [data] {kind} "
                             f"(it has {sorted(example)})", component=COMPONENT,
                             hint=f"give every example the field, or leave it out of [data] {kind}")
    for key in data.token_fields:
        if not tokenized:
            raise InputError(f"{where} is text, but [data] token_fields names {key!r}: a per-token field "
                             "needs the example's own input_ids to line up with", component=COMPONENT,
                             hint="tokenize the examples yourself (input_ids + the field), or compute the "
                             "values in a TokenWeights objective from the batch")
        values = _numbers(example[key], f"{where} {key}")
        if len(values) != len(row["input_ids"]):
            raise InputError(f"{where}: {key} has {len(values)} entries, input_ids {len(row['input_ids'])}",
                             component=COMPONENT)
        row[key] = values
    for key in data.example_fields:
        row[key] = _array(example[key], f"{where} {key}")
    return row


def _sequence(example: Any, index: int, tokenizer: Any, data: DataSettings, split: str) -> dict[str, Any]:
    where = f"{split} example {index}"
    if not isinstance(example, Mapping):
        raise InputError(f"{where} is {type(example).__name__}, not a mapping", component=COMPONENT,
                         hint="a dataset yields dicts such as {'text': ...}")
    if "input_ids" in example:
        row = {"input_ids": _ids(example["input_ids"], f"{where} input_ids")}
        for key in ("labels", "attention_mask", "response_mask"):
            if key in example:
                row[key] = _ids(example[key], f"{where} {key}")
                if len(row[key]) != len(row["input_ids"]):
                    raise InputError(f"{where}: {key} has {len(row[key])} entries, input_ids "
                                     f"{len(row['input_ids'])}", component=COMPONENT)
        row.setdefault("labels", list(row["input_ids"]))
        return _extra(example, row, data, where, tokenized=True)
    if tokenizer is None:
        raise ConfigError(f"{where} is text but the run has no tokenizer", component=COMPONENT,
                          hint="pass tokenizer=..., or examples with input_ids")
    bos = [tokenizer.bos_id] if data.bos and tokenizer.bos_id is not None else []
    eos = [tokenizer.eos_id] if data.eos and tokenizer.eos_id is not None else []
    encode = tokenizer.encode
    if data.sft:
        prompt = bos + list(encode(_text(example, data.prompt, where)).ids)
        response = list(encode(_text(example, data.response, where)).ids) + eos
        if not response:
            raise InputError(f"{where} has an empty response {data.response!r}: nothing to learn from it",
                             component=COMPONENT, hint="leave the example out of the dataset, or train "
                             "with [data] eos = true (the response is then the end of text)")
        ids = prompt + response
        return _extra(example, {"input_ids": ids, "labels": [IGNORE_INDEX] * len(prompt) + response,
                                "response_mask": [0] * len(prompt) + [1] * len(response)},
                      data, where, tokenized=False)
    ids = bos + list(encode(_text(example, data.text_field, where)).ids) + eos
    return _extra(example, {"input_ids": ids, "labels": list(ids)}, data, where, tokenized=False)


def _pack(rows: list[dict[str, list]], length: int) -> list[dict[str, list]]:
    """Concatenate the rows and cut into ``length``-token blocks; the last block keeps the rest."""
    keys = sorted(rows[0])
    odd = next((i for i, r in enumerate(rows) if sorted(r) != keys), None)
    if odd is not None:
        raise InputError(f"example {odd} has keys {sorted(rows[odd])}, example 0 {keys}: packed examples "
                         "must have the same keys", component=COMPONENT)
    stream = {k: list(itertools.chain.from_iterable(r[k] for r in rows)) for k in keys}
    total = len(stream["input_ids"])
    return [{k: v[start:start + length] for k, v in stream.items()} for start in range(0, total, length)]


def build_sequences(examples: Iterable[Any], tokenizer: Any, data: DataSettings, *, split: str = "train",
                    vocab_rows: int | None = None) -> list[dict[str, Any]]:
    """The training sequences of ``examples`` (see :class:`~tokensmith.DataSettings`): lists of
    ``input_ids``, ``labels`` (``IGNORE_INDEX`` where nothing is predicted), for SFT
    ``response_mask``, the ``[data] token_fields`` (lists of numbers, one per token) and the
    ``example_fields`` (tensors). Nothing is dropped or cut silently."""
    if isinstance(examples, (str, bytes, Mapping)) or not isinstance(examples, Iterable):
        raise InputError(f"the {split} data must be an iterable of examples, got {type(examples).__name__}",
                         component=COMPONENT, hint="e.g. [{'text': ...}, ...] or dataset.examples('train')")
    limit = data.max_examples
    rows = [_sequence(ex, i, tokenizer, data, split)
            for i, ex in enumerate(itertools.islice(examples, limit) if limit else examples)]
    if not rows:
        raise ConfigError(f"the {split} data has no examples", component=COMPONENT,
                          hint="check the dataset's split name and parameters")
    empty = next((i for i, r in enumerate(rows) if not r["input_ids"]), None)
    if empty is not None:
        raise InputError(f"{split} example {empty} has no tokens", component=COMPONENT)
    if data.packing:
        rows = _pack(rows, data.max_length)
    else:
        for i, row in enumerate(rows):
            if len(row["input_ids"]) > data.max_length:
                if not data.truncate:
                    raise InputError(f"{split} example {i} has {len(row['input_ids'])} tokens, more than "
                                     f"[data] max_length = {data.max_length}", component=COMPONENT,
                                     hint="raise max_length, or set packing = true or truncate = true")
                rows[i] = {k: v if k in data.example_fields else v[:data.max_length] for k, v in row.items()}
                if any(row.get("response_mask", ())) and not any(rows[i]["response_mask"]):
                    raise InputError(f"{split} example {i}: its prompt fills max_length = {data.max_length}, "
                                     "so truncating it leaves no response token", component=COMPONENT,
                                     hint="raise max_length, or shorten the prompt")
    if vocab_rows is not None:
        top = max(max(r["input_ids"]) for r in rows)
        low = min(min(r["input_ids"]) for r in rows)
        if top >= vocab_rows or low < 0:
            raise InputError(f"the {split} data holds token id {top if top >= vocab_rows else low}, outside "
                             f"the model's {vocab_rows} embedding rows", component=COMPONENT,
                             hint="tokenize with the model's tokenizer (or install a new embedding table)")
    return rows


class PadCollator:
    """Right-pads a list of sequences into a batch: ``input_ids`` with ``pad_id``, ``labels``
    with ``IGNORE_INDEX``, ``attention_mask`` (1 on tokens), ``response_mask`` (bool) and the
    other per-token fields with zeros (float32 when a field holds floats, else int64). The
    ``example_fields`` (one tensor per row) are stacked: their shapes must agree."""

    def __init__(self, pad_id: int, example_fields: Sequence[str] = ()) -> None:
        self.pad_id = pad_id
        self.example_fields = frozenset(example_fields)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        fill = {"input_ids": self.pad_id, "labels": IGNORE_INDEX}
        keys = sorted((set().union(*rows) | {"attention_mask"}) - self.example_fields)
        batch: dict[str, torch.Tensor] = {}
        for key in keys:
            # one float anywhere makes the field float: a packed block can join an example whose
            # field holds ints to one whose field holds floats
            floats = any(isinstance(v, float) for r in rows if key in r for v in r[key])
            batch[key] = torch.full((len(rows), width), fill.get(key, 0),
                                    dtype=torch.float32 if floats else torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            for key in keys:
                if key in row:
                    batch[key][i, :n] = torch.tensor(row[key], dtype=batch[key].dtype)
                elif key == "attention_mask":
                    batch[key][i, :n] = 1
        if "response_mask" in batch:
            batch["response_mask"] = batch["response_mask"].bool()
        for key in sorted(self.example_fields & set().union(*rows)):
            shapes = {tuple(r[key].shape) for r in rows}
            if len(shapes) > 1:
                raise InputError(f"[data] example field {key!r} has shapes {sorted(shapes)} in one batch: "
                                 "they are stacked, so they must agree", component=COMPONENT,
                                 hint="give every example the same shape (resize or pad it in the dataset)")
            batch[key] = torch.stack([r[key] for r in rows])
        return batch


def _pad_id(tokenizer: Any) -> int:
    for name in ("pad_id", "eos_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


# -- the Trainer ---------------------------------------------------------------

def _as_outputs(raw: Any) -> Any:
    """A model's return value as something with ``.logits``: transformers' outputs as they
    are; a tensor, or a tuple whose first element is the logits, wrapped."""
    if hasattr(raw, "logits"):
        return raw
    if isinstance(raw, torch.Tensor):
        return CausalLMOutput(logits=raw)
    if isinstance(raw, (tuple, list)) and raw and isinstance(raw[0], torch.Tensor):
        return CausalLMOutput(logits=raw[0])
    raise ComponentError(f"the model returned {type(raw).__name__}, not logits", component=COMPONENT,
                         hint="a model returns transformers outputs with .logits, a logits tensor, "
                         "or a tuple whose first element is the logits")


@contextlib.contextmanager
def _config_hidden_if_frozen(model: Any) -> Any:
    """transformers' Trainer sets ``model.config.use_cache`` on any model with a ``config``;
    a model of our own whose config is a frozen record (not a transformers PretrainedConfig)
    would crash there, so its config is hidden while the Trainer is built."""
    config = getattr(model, "config", None)
    frozen = False
    if config is not None:
        try:
            config.use_cache = getattr(config, "use_cache", False)
        except (AttributeError, TypeError):
            frozen = True
    if not frozen:
        yield
        return
    own = vars(model)
    had = "config" in own
    own["config"] = None  # an instance attribute shadows a class-level one too
    try:
        yield
    finally:
        if had:
            own["config"] = config
        else:
            del own["config"]


class RecipeTrainer(Trainer):
    """A ``Trainer`` whose loss is a tokensmith objective.

    ``compute_loss`` calls the model with the batch keys its ``forward`` names (never
    ``labels``: the model computes no loss of its own), then ``objective(inputs, outputs,
    num_items=num_items_in_batch)``. transformers counts ``num_items_in_batch`` over the
    shifted labels of the whole accumulated batch (summed over ranks), so the loss is
    already scaled for gradient accumulation, and is multiplied by the number of processes
    as transformers does for its own loss (DDP averages gradients over ranks). Saving adds
    the tokenizer, weight metadata and a verified manifest (:mod:`~tokensmith.adapters.checkpoints`).
    """

    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, objective: Any, recipe_tokenizer: Any = None,
                 checkpoint_info: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        model = kwargs.get("model", args[0] if args else None)
        with _config_hidden_if_frozen(model):
            super().__init__(*args, **kwargs)
        self.objective = objective
        self.recipe_tokenizer = recipe_tokenizer
        self.checkpoint_info = dict(checkpoint_info or {})
        self.evaluation_points: list[EvalPoint] = []
        self.saved: list[Path] = []
        # count num_items_in_batch for every model (the objective normalises by it), over the
        # shifted labels as token_cross_entropy shifts them
        self.model_accepts_loss_kwargs = True
        self._loss_shifts_labels = True
        forward = inspect.signature(self.accelerator.unwrap_model(self.model).forward).parameters
        named = {n for n, p in forward.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        self._model_keys = frozenset(named - OBJECTIVE_KEYS)
        self._forward_extra = {"use_cache": False} if "use_cache" in named else {}

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        outputs = _as_outputs(model(**{k: v for k, v in inputs.items() if k in self._model_keys},
                                    **self._forward_extra))
        loss = self.objective(inputs, outputs, num_items=num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices \
                and self.accelerator.num_processes > 1:
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        directory = Path(output_dir if output_dir is not None else self.args.output_dir)
        unwrapped = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if isinstance(unwrapped, PreTrainedModel):
            from transformers.utils import logging as hf_logging

            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # save_pretrained's "Writing model shards" bar, per save
            try:
                super()._save(str(directory), state_dict)
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
        elif self.args.should_save:
            from safetensors.torch import save_model

            directory.mkdir(parents=True, exist_ok=True)
            save_model(unwrapped, str(directory / "model.safetensors"), metadata={"format": "pt"})
        if not self.args.should_save:
            return
        (directory / "training_args.bin").unlink(missing_ok=True)  # a pickle nothing reads back
        atomic_write_text(directory / "training_args.json", self.args.to_json_string())
        ckpt.save_tokenizer(self.recipe_tokenizer, directory)
        version = self.checkpoint_info.get("plugins", {}).get("tokensmith", "0+unknown")
        ckpt.stamp_weights(directory, {**self.checkpoint_info, "step": self.state.global_step}, version)

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        # safetensors stores a tied weight once: its other names are missing by design
        model = self.accelerator.unwrap_model(self.model)
        aliases = {n for n, _ in model.named_parameters(remove_duplicate=False)} - \
            {n for n, _ in model.named_parameters()}
        missing = sorted(set(load_result.missing_keys) - aliases)
        if missing or load_result.unexpected_keys:
            raise ArtifactError(f"the checkpoint does not fit the model: missing {missing[:3]}, unexpected "
                                f"{list(load_result.unexpected_keys)[:3]}", component="checkpoint",
                                hint="resume with the model the checkpoint was trained from")

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self.finish_save(folder)

    def finish_save(self, folder: Path) -> None:
        """Once every rank wrote its part, write the manifest (rank 0), last."""
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            ckpt.write_manifest(folder, {**self.checkpoint_info, "step": self.state.global_step,
                                         "evaluations": [attrs.astuple(e) for e in self.evaluation_points]})
            self.saved.append(folder)
        self.accelerator.wait_for_everyone()


class _History(TrainerCallback):
    """Labels the evaluations as they are logged; runs those of ``eval_at`` (step 0 once the
    trainer has prepared the model: evaluating before ``train()`` would leave it unwrapped
    by DDP, and the ranks would train apart)."""

    def __init__(self, trainer: RecipeTrainer, eval_at: Iterable[int]) -> None:
        self.trainer = trainer
        self.eval_at = frozenset(eval_at)
        self.label = "step"

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0 and 0 in self.eval_at:
            self.evaluate("start")

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step in self.eval_at and self.trainer.eval_dataset is not None:
            control.should_evaluate = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "eval_loss" in logs:
            self.trainer.evaluation_points.append(EvalPoint(state.global_step, float(logs["eval_loss"]),
                                                            self.label))
        if logs and "loss" in logs and not math.isfinite(logs["loss"]):
            # the logged loss is the mean over the ranks, so every rank stops here together
            raise ComponentError(
                f"the training loss is {logs['loss']} at step {state.global_step}: the run stops before "
                "non-finite gradients reach more weights or a checkpoint",
                component=f"objective '{getattr(self.trainer.objective, 'name', 'objective')}'",
                hint="check the objectives (a loss, weight or logit that is NaN or infinite), or lower "
                "[train] lr if the training diverged; earlier checkpoints are intact")

    def evaluate(self, label: str) -> float | None:
        if self.trainer.eval_dataset is None:
            return None
        self.label = label
        # Trainer.evaluate() logs, which clears the control flags the step has raised: keep
        # this step's training-loss log and save; its scheduled evaluation is this one (same
        # step, same weights), so that one is not run again
        control = self.trainer.control
        pending = (control.should_log, control.should_save)
        try:
            return float(self.trainer.evaluate()["eval_loss"])
        finally:
            self.label = "step"
            control.should_log = control.should_log or pending[0]
            control.should_save = control.should_save or pending[1]


class Progress(TrainerCallback):
    """Rank 0's view of a run: a tqdm bar with the loss on a terminal (``"bar"``), a plain
    line every ~5% of the steps otherwise (``"plain"``), or nothing (``"off"``); evaluations
    are always a line of their own."""

    def __init__(self, mode: str = "auto", stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode = ("bar" if is_tty(self.stream) else "plain") if mode == "auto" else mode
        self.bar = None
        self.every = 1

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.mode == "off":
            return
        self.every = max(1, state.max_steps // 20)
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step",
                            file=self.stream, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.mode == "off" or not logs:
            return
        if "eval_loss" in logs:
            self._write(f"step {state.global_step}: eval loss {logs['eval_loss']:.4f}")
        elif "loss" in logs:
            lr = logs.get("learning_rate")
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{lr:.2e}" if lr is not None else "-")
            elif state.global_step % self.every == 0 or state.global_step in (1, state.max_steps):
                self._write(f"step {state.global_step}/{state.max_steps}: loss {logs['loss']:.4f}"
                            + (f", lr {lr:.3g}" if lr is not None else ""))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# -- arguments -------------------------------------------------------------------

def _training_fields() -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(TrainingArguments) if f.init}


def argument_problems(train: TrainSettings, runtime: Runtime) -> list[TokensmithError]:
    """Every problem of ``[train]`` beyond its own table: the schedule, and each
    ``[train.arguments]`` name (unknown ones with close names, ones [train] sets) and value
    type, and bf16/fp16 on a CPU."""
    from transformers.trainer_utils import SchedulerType

    problems: list[TokensmithError] = []
    schedules = [s.value for s in SchedulerType]
    if train.schedule not in schedules:
        close = difflib.get_close_matches(train.schedule, schedules, n=2)
        problems.append(ConfigError(f"[train] schedule {train.schedule!r} is not a transformers scheduler"
                                    + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""),
                                    component=COMPONENT, hint="schedules: " + ", ".join(schedules)))
    fields = _training_fields()
    hints = typing.get_type_hints(TrainingArguments)
    for key, value in train.arguments.items():
        if key in RESERVED:
            problems.append(ConfigError(f"[train.arguments] {key} is set by {RESERVED[key]}",
                                        component=COMPONENT, hint=f"remove {key} from [train.arguments]"))
        elif key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=3)
            guess = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            problems.append(ConfigError(f"[train.arguments] {key!r} is not a TrainingArguments field{guess}",
                                        component=COMPONENT,
                                        hint="a field of transformers' TrainingArguments, or a [train] key"))
        elif not check_type(value, hints.get(key, Any))[0]:
            problems.append(ConfigError(f"[train.arguments] {key} must be {type_name(hints[key])}, got "
                                        f"{type(value).__name__} {value!r:.60}", component=COMPONENT))
    if runtime.device_type == "cpu":
        for key in ("bf16", "fp16"):
            if train.arguments.get(key):
                problems.append(ConfigError(f"[train.arguments] {key} = true on a CPU: mixed precision needs "
                                            "a GPU", component=COMPONENT,
                                            hint="train in float32 on a CPU (the default)"))
    return problems


def training_kwargs(train: TrainSettings, runtime: Runtime, output_dir: Path, *,
                    evaluates: bool) -> dict[str, Any]:
    """The keyword arguments of transformers' ``TrainingArguments`` for ``[train]`` on
    ``runtime``: CPU defaults that work (``use_cpu``, no mixed precision,
    ``ddp_backend="gloo"`` under torchrun, no pinned memory), ``[train.arguments]`` last."""
    problems = argument_problems(train, runtime)
    if problems:
        raise problems[0] if len(problems) == 1 else ValidationError(problems, what="recipe")
    cpu = runtime.device_type == "cpu"
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir), max_steps=train.steps, per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size or train.batch_size,
        gradient_accumulation_steps=train.grad_accumulation, learning_rate=train.lr,
        lr_scheduler_type=train.schedule, warmup_steps=train.warmup, weight_decay=train.weight_decay,
        max_grad_norm=train.grad_clip, seed=runtime.seed if train.seed is None else train.seed,
        logging_strategy="steps", logging_steps=train.logging_steps,
        eval_strategy="steps" if train.eval_every and evaluates else "no",
        save_strategy="steps" if train.save_every else "no", save_total_limit=train.save_total_limit,
        train_sampling_strategy="random" if train.shuffle else "sequential",
        report_to="none", remove_unused_columns=False, label_names=["labels"], prediction_loss_only=True,
        disable_tqdm=True, use_cpu=cpu, bf16=False, fp16=False,
        # transformers' default logs a NaN/inf loss as the mean of the earlier ones (0.0 at the
        # first step): the run's report must show what happened instead
        logging_nan_inf_filter=False)
    if train.eval_every and evaluates:
        kwargs["eval_steps"] = train.eval_every
    if train.save_every:
        kwargs["save_steps"] = train.save_every
    if train.min_lr is not None:
        kwargs["lr_scheduler_kwargs"] = {"min_lr": train.min_lr}
    if cpu:
        kwargs["dataloader_pin_memory"] = False
        if runtime.world_size > 1:
            kwargs["ddp_backend"] = "gloo"
    kwargs.update(train.arguments)
    return kwargs


def training_arguments(train: TrainSettings, runtime: Runtime, output_dir: Path, *,
                       evaluates: bool) -> TrainingArguments:
    """transformers' ``TrainingArguments`` of :func:`training_kwargs` (under torchrun this
    joins the process group); a value transformers refuses is a :class:`ConfigError`."""
    kwargs = training_kwargs(train, runtime, output_dir, evaluates=evaluates)
    try:
        return TrainingArguments(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"transformers refuses the training arguments: {exc}", component=COMPONENT,
                          hint="check [train] and [train.arguments]") from None


# -- the run -----------------------------------------------------------------------

def apply_trainable(model: Any, train: TrainSettings) -> tuple[int, int]:
    """Freeze what the trainable/frozen globs do not train (a parameter the model or a recipe's
    ``prepare`` already froze stays frozen); ``(trainable, total)`` parameter counts. A glob
    that matches nothing, or nothing left to train, is a :class:`ConfigError`."""
    named = list(model.named_parameters())
    problems = train.unmatched(n for n, _ in named)
    if problems:
        raise problems[0] if len(problems) == 1 else ValidationError(problems, what="recipe")
    for name, param in named:
        param.requires_grad_(param.requires_grad and train.trains(name))
    trainable = sum(p.numel() for _, p in named if p.requires_grad)
    if trainable == 0:
        raise ConfigError("the trainable/frozen globs leave no parameter to train", component=COMPONENT,
                          hint=f"trainable = {list(train.trainable)}, frozen = {list(train.frozen)}")
    return trainable, sum(p.numel() for _, p in named)


def _weights_digest(model: Any) -> str | None:
    """sha256 of the state dict (names and bytes, in name order); ``None`` for sharded weights
    (FSDP's DTensors), whose ranks hold different parts by design."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if type(tensor) is not torch.Tensor:
            return None
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _rank_digests(model: Any, trainer: RecipeTrainer) -> list[str] | None:
    """Every rank's sha256 of its weights (all-gathered), so one report shows they agree."""
    digest = _weights_digest(model)
    world = trainer.accelerator.num_processes
    if digest is None or world == 1:
        return None if digest is None else [digest]
    import torch.distributed as dist

    mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=trainer.args.device)
    everyone = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(everyone, mine)
    return [bytes(t.cpu().tolist()).hex() for t in everyone]


def _resolve_resume(resume: Any, output_dir: Path, tokenizer: Any) -> tuple[Path, dict[str, Any]]:
    path = ckpt.latest_checkpoint(output_dir) if str(resume) == "latest" else Path(resume)
    manifest = ckpt.verify_checkpoint(path, resume=True)
    saved = manifest.get("tokenizer_sha256")
    if tokenizer is not None and saved not in (None, ckpt.tokenizer_hash(tokenizer)):
        raise ArtifactError(f"checkpoint {str(path)!r} was trained with another tokenizer (sha256 "
                            f"{str(manifest.get('tokenizer_sha256'))[:12]}...)", component="checkpoint",
                            hint="resume with the recipe's own model and tokenizer")
    return path, manifest


def _finite(points: Iterable[tuple[int, float]]) -> tuple[list[tuple[int, float]], list[int]]:
    good, bad = [], []
    for step, value in points:
        (good if math.isfinite(value) else bad).append((step, value))
    return good, [s for s, _ in bad]


def _report(trainer: RecipeTrainer, *, losses, lrs, evals, digests, counts, seconds, runtime, registry,
            source, spec, seed, notes, resumed) -> Report:
    good, bad = _finite(losses)
    good_evals = [e for e in evals if math.isfinite(e.loss)]
    if bad:
        notes.append(f"{len(bad)} non-finite training losses (left out of the series), first at step "
                     f"{bad[0]}")
    world = trainer.accelerator.num_processes
    if digests is None:
        notes.append("no weights digest: the weights are sharded across ranks")
    elif len(set(digests)) > 1:
        notes.append("the ranks' final weights differ: see the ranks table")
    metrics: dict[str, Any] = {"steps": trainer.state.global_step, "world_size": world,
                               "seconds": seconds, **counts}
    if losses and math.isfinite(losses[-1][1]):
        metrics["final_train_loss"] = losses[-1][1]
    if evals and math.isfinite(evals[-1].loss):
        metrics["final_eval_loss"] = evals[-1].loss
    elif evals:
        notes.append(f"the final evaluation loss (step {evals[-1].step}) is not finite")
    series = []
    if good:
        series.append(Series("train loss", [s for s, _ in good], [v for _, v in good], "step", "loss",
                             group="loss"))
    if good_evals:
        series.append(Series("eval loss", [e.step for e in good_evals], [e.loss for e in good_evals], "step",
                             "loss", plot="line", group="loss"))
    if lrs:
        series.append(Series("learning rate", [s for s, _ in lrs], [v for _, v in lrs], "step", "lr",
                             group="learning rate"))
    tables = [Table("ranks", ("rank", "weights sha256"), [(r, d) for r, d in enumerate(digests)])] \
        if digests is not None else []
    if evals:
        tables.insert(0, Table("evaluation points", ("step", "label", "loss"),
                               [(e.step, e.label, e.loss if math.isfinite(e.loss) else None) for e in evals]))
    if resumed is not None:
        notes.append(f"resumed from {resumed}")
    extra = {"world_size": world, "recipe": spec.to_config() if spec is not None else None,
             "checkpoints": [str(p) for p in trainer.saved]}
    return Report(REPORT_NAME, metrics, tuple(tables), tuple(series), tuple(notes),
                  Provenance.collect(registry, runtime, source, seed, extra=extra))


def _write_report(report: Report, output_dir: Path, *, png: bool = True) -> Report:
    from .report import write_all

    missing = png and report.series and importlib.util.find_spec("matplotlib") is None
    if missing:  # the note goes into the returned report too, not only the files
        report = attrs.evolve(report, notes=(*report.notes, "no loss-curve PNG: matplotlib is not installed "
                                             "(pip install 'tokensmith[bench]')"))
    write_all(report, output_dir, png=False if missing or not png else None)
    return report


def _settings(value: Any, cls: type, name: str) -> Any:
    if isinstance(value, cls):
        return value
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{name}] must be a {cls.__name__} or a mapping, got {type(value).__name__}",
                          component=COMPONENT)
    record, problems = settings(cls, value, name)
    if problems:
        raise problems[0] if len(problems) == 1 else ValidationError(problems, what="recipe")
    return record


def _output_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"the output directory {str(path)!r} is a file", component=COMPONENT,
                          hint="set [train] output_dir (or --output-dir) to a folder")
    return path


def _objectives(objectives: Any, registry: Any) -> list[Any]:
    """Objectives as given to :func:`run_recipe` (objects, names or tables)."""
    from tokensmith.core.objectives import build_objectives

    return build_objectives(objectives, registry=registry, component=COMPONENT)


def run_recipe(*, model: Any, train_data: Iterable[Any], tokenizer: Any = None,
               eval_data: Iterable[Any] | None = None, objectives: Sequence[Any] = (),
               arguments: TrainSettings | Mapping[str, Any] | None = None,
               data: DataSettings | Mapping[str, Any] | None = None, recipe: Any = None,
               callbacks: Sequence[Any] = (), runtime: Runtime | Mapping[str, Any] | None = None,
               output_dir: str | Path | None = None, resume: str | Path | None = None,
               registry: Any = None, spec: RecipeSpec | None = None, source: Any = None,
               recipe_component: tuple[str, str | None] | None = None) -> TrainResult:
    """Train ``model`` on ``train_data`` through :class:`RecipeTrainer` and return a
    :class:`~tokensmith.TrainResult`.

    ``train_data``/``eval_data``: examples (mappings) as a dataset yields them, tokenized
    with ``tokenizer`` as ``data`` says (:class:`~tokensmith.DataSettings`), or already holding
    ``input_ids``. ``objectives``: tokensmith objectives, composed into one loss (none: token
    cross-entropy). ``arguments``: the ``[train]`` table (:class:`~tokensmith.TrainSettings` or
    a mapping, ``steps`` required). ``recipe``: a :class:`~tokensmith.Recipe` (its ``prepare``
    and ``callbacks``); ``callbacks``: more ``TrainerCallback`` objects. ``runtime`` defaults
    to the model's device. ``resume``: a checkpoint directory or ``"latest"`` (in
    ``output_dir``). The parameters' ``requires_grad`` flags are as they were afterwards."""
    if arguments is None:
        raise ConfigError("run_recipe needs arguments (the [train] table, with steps)", component=COMPONENT,
                          hint="arguments={'steps': 100}")
    train = _settings(arguments, TrainSettings, "train")
    data = _settings(data, DataSettings, "data")
    if runtime is None:
        device = next(iter(model.parameters())).device
        runtime = Runtime.parse(device=device.type if device.type != "cuda" else str(device))
    elif not isinstance(runtime, Runtime):
        runtime = Runtime.from_config(runtime)
    output_dir = _output_dir(Path(output_dir) if output_dir is not None else train.output_dir)
    if eval_data is None and (train.eval_every or train.eval_at):
        key = "eval_every" if train.eval_every else "eval_at"
        raise ConfigError(f"[train] {key} asks for evaluations, but the run has no evaluation data",
                          component=COMPONENT,
                          hint="give eval_data (in a recipe file: [dataset] eval_split = \"eval\"), or "
                          "drop eval_every/eval_at")
    objectives = _objectives(objectives, registry)
    args = training_arguments(train, runtime, output_dir, evaluates=eval_data is not None)
    default_component = (f"recipe '{getattr(recipe, 'name', 'recipe')}'", None) if recipe is not None \
        else (COMPONENT, None)
    run = _Run(ctx=TrainContext(runtime=runtime, model=model, tokenizer=tokenizer, registry=registry,
                                settings=train, spec=spec, output_dir=output_dir),
               component=recipe_component or default_component,
               source=str(getattr(source, "source", source) or type(model).__name__))
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        trainer = run.trainer(args, data, train_data, eval_data, objectives, recipe, callbacks)
        checkpoint = None
        if resume is not None:
            checkpoint, manifest = _resolve_resume(resume, output_dir, tokenizer)
            ckpt.check_fits(checkpoint, run.ctx.model)
            done = manifest.get("step")
            if isinstance(done, int) and done >= train.steps:
                raise ConfigError(f"checkpoint {str(checkpoint)!r} is at step {done}, and the run has "
                                  f"{train.steps} steps: nothing is left to train", component=COMPONENT,
                                  hint=f"raise [train] steps (or --max-steps) above {done}")
            trainer.evaluation_points.extend(ckpt.evaluation_points(manifest, checkpoint))
        return run.train(checkpoint)
    finally:
        for param, flag in flags:  # what trains is the run's choice, not left behind on the model
            param.requires_grad_(flag)


@attrs.define
class _Run:
    """One :func:`run_recipe`: building the trainer, training, and what comes out."""

    ctx: TrainContext
    component: tuple[str, str | None]
    source: str
    counts: dict[str, int] = attrs.field(factory=dict)
    history: Any = None

    def trainer(self, args: TrainingArguments, data: DataSettings, train_data: Any, eval_data: Any,
                objectives: Sequence[Any], recipe: Any, callbacks: Sequence[Any]) -> RecipeTrainer:
        ctx, (component, plugin) = self.ctx, self.component
        if recipe is not None:
            with blame(component, plugin, "prepare"):
                ctx.model = recipe.prepare(ctx.model, ctx)
            if not isinstance(ctx.model, torch.nn.Module):
                raise ComponentError(f"prepare returned {type(ctx.model).__name__}, not the model",
                                     component=component, plugin=plugin,
                                     hint="prepare(model, ctx) returns the (changed) model")
        model, tokenizer, spec = ctx.model, ctx.tokenizer, ctx.spec
        trainable, total = apply_trainable(model, ctx.settings)
        rows = getattr(model.get_input_embeddings(), "num_embeddings", None) \
            if hasattr(model, "get_input_embeddings") else None
        train_rows = build_sequences(train_data, tokenizer, data, split="train", vocab_rows=rows)
        eval_rows = None if eval_data is None else \
            build_sequences(eval_data, tokenizer, data, split="eval", vocab_rows=rows)
        self.counts = {"trainable_parameters": trainable, "parameters": total,
                       "train_sequences": len(train_rows),
                       "train_tokens": sum(len(r["input_ids"]) for r in train_rows)}
        if eval_rows is not None:
            self.counts["eval_sequences"] = len(eval_rows)
        info = {"model": self.source, "recipe": spec.to_config() if spec is not None else None,
                "plugins": Provenance.collect(ctx.registry).plugins,
                "tokenizer_sha256": ckpt.tokenizer_hash(tokenizer) if tokenizer is not None else None,
                "world_size": ctx.world_size}
        trainer = RecipeTrainer(model=model, args=args, train_dataset=train_rows, eval_dataset=eval_rows,
                                data_collator=PadCollator(_pad_id(tokenizer), data.example_fields),
                                recipe_tokenizer=tokenizer,
                                objective=compose(list(objectives)), checkpoint_info=info)
        for default in (ProgressCallback, PrinterCallback):
            trainer.remove_callback(default)
        self.history = _History(trainer, ctx.settings.eval_at)
        trainer.add_callback(self.history)
        trainer.add_callback(Progress(ctx.settings.progress))
        ctx.trainer, ctx.evaluations = trainer, trainer.evaluation_points
        ctx._evaluate = self.history.evaluate
        extra = [(c, COMPONENT, None, "callbacks=") for c in callbacks]
        if recipe is not None:
            with blame(component, plugin, "callbacks"):
                extra += [(c, component, plugin, "callbacks(ctx)") for c in recipe.callbacks(ctx)]
        for callback, owner, distribution, where in extra:
            if not (isinstance(callback, TrainerCallback)
                    or (isinstance(callback, type) and issubclass(callback, TrainerCallback))):
                raise ComponentError(f"{where} holds {type(callback).__name__} {callback!r:.60}, not a "
                                     "transformers.TrainerCallback", component=owner, plugin=distribution,
                                     hint="subclass transformers.TrainerCallback and return instances")
            trainer.add_callback(callback)
        return trainer

    def train(self, checkpoint: Path | None) -> TrainResult:
        ctx, trainer = self.ctx, self.ctx.trainer
        start = time.perf_counter()
        with blame(*self.component, "training"):
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
            points, step = trainer.evaluation_points, trainer.state.global_step
            if trainer.eval_dataset is not None and (not points or points[-1].step != step):
                self.history.evaluate("end")
        seconds = time.perf_counter() - start
        final_dir = None
        if ctx.settings.save_final:
            final_dir = ctx.output_dir / "final"
            trainer.save_model(str(final_dir))
            trainer.finish_save(final_dir)
        log = trainer.state.log_history
        losses = [(int(h["step"]), float(h["loss"])) for h in log if "loss" in h]
        lrs = [(int(h["step"]), float(h["learning_rate"])) for h in log
               if "loss" in h and "learning_rate" in h]
        report = _report(trainer, losses=losses, lrs=lrs, evals=trainer.evaluation_points,
                         digests=_rank_digests(ctx.model, trainer), counts=self.counts, seconds=seconds,
                         runtime=ctx.runtime, registry=ctx.registry, source=self.source, spec=ctx.spec,
                         seed=trainer.args.seed, notes=[], resumed=checkpoint)
        files = ctx.settings.report_files
        if trainer.args.should_save and files != "none":
            report = _write_report(report, ctx.output_dir, png=files == "all")
        return TrainResult(losses=losses, evaluations=list(trainer.evaluation_points), report=report,
                           output_dir=ctx.output_dir, steps=trainer.state.global_step,
                           world_size=trainer.accelerator.num_processes, seconds=seconds, model=ctx.model,
                           final_dir=final_dir, checkpoints=list(trainer.saved))


# -- recipes by name ---------------------------------------------------------------

def load_spec(spec: RecipeSpec | Mapping[str, Any] | str | Path) -> RecipeSpec:
    if isinstance(spec, RecipeSpec):
        return spec
    if isinstance(spec, (str, Path)):
        return RecipeSpec.from_toml(spec)
    return RecipeSpec.from_config(spec)


def validate_recipe(spec: RecipeSpec, registry: Any) -> list[TokensmithError]:
    """Every problem of ``spec`` found before the model loads: the spec's own and the
    registry's (:meth:`RecipeSpec.problems`) and the training arguments'."""
    problems = spec.problems(registry)
    if not Runtime.check_config(spec.runtime):
        problems += argument_problems(spec.train, Runtime.from_config(spec.runtime))
    return problems


def _with_steps(spec: RecipeSpec, max_steps: int) -> RecipeSpec:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be an int >= 1, got {max_steps!r}", component=COMPONENT)
    return attrs.evolve(spec, train=_settings({**spec.train.to_config(), "steps": max_steps},
                                              TrainSettings, "train"))


def train(spec: RecipeSpec | Mapping[str, Any] | str | Path, *, output_dir: str | Path | None = None,
          resume: str | Path | None = None, max_steps: int | None = None, registry: Any = None,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Run a recipe: a :class:`~tokensmith.RecipeSpec`, its config dict, or a TOML file path.
    Everything is validated first (all problems at once); then the model loads and the
    dataset, objectives and recipe are built by name. ``output_dir``/``max_steps`` override
    ``[train]``; ``resume`` is a checkpoint directory or ``"latest"``."""
    spec = load_spec(spec)
    if max_steps is not None:
        spec = _with_steps(spec, max_steps)
    if registry is None:
        from tokensmith import default_registry

        registry = default_registry()
    problems = validate_recipe(spec, registry)
    if problems:
        raise ValidationError(problems, what="recipe")
    runtime = Runtime.from_config(spec.runtime)
    runtime.apply()
    output_dir = _output_dir(Path(output_dir) if output_dir is not None else spec.train.output_dir)
    model, tokenizer = registry.load_model(spec.model, runtime)
    ctx = BuildContext(runtime=runtime, model=model, tokenizer=tokenizer, model_tokenizer=tokenizer,
                       source=spec.model, registry=registry)
    if spec.tokenizer is not None:
        tokenizer = ctx.tokenizer = registry.build("tokenizer", spec.tokenizer, ctx)
    dataset_record = registry.get("dataset", spec.dataset.type)
    dataset = registry.build("dataset", spec.dataset.ref, ctx)
    objectives = [registry.build("objective", ref, ctx) for ref in spec.objectives]
    recipe = registry.build("recipe", spec.recipe, ctx) if spec.recipe is not None else None
    recipe_record = registry.get("recipe", spec.recipe.type) if spec.recipe is not None else None

    def read(split: str) -> list[Any]:
        with blame(dataset_record.qualname, dataset_record.distribution, f"reading split {split!r}"):
            examples = dataset.examples(split)
            limit = spec.data.max_examples
            read = list(itertools.islice(examples, limit) if limit else examples)
        if not read:
            raise ConfigError(f"split {split!r} has no examples with these parameters "
                              f"({dict(spec.dataset.params)})", component=dataset_record.qualname,
                              plugin=dataset_record.distribution,
                              hint="check [dataset] split / eval_split, eval_fraction and limit")
        return read

    return run_recipe(model=model, tokenizer=tokenizer, train_data=read(spec.dataset.split),
                      eval_data=read(spec.dataset.eval_split) if spec.dataset.eval_split else None,
                      objectives=objectives, arguments=spec.train, data=spec.data, recipe=recipe,
                      callbacks=callbacks, runtime=runtime, output_dir=output_dir, resume=resume,
                      registry=registry, spec=spec, source=spec.model,
                      recipe_component=(recipe_record.qualname, recipe_record.distribution)
                      if recipe_record is not None else None)


def cmd_train(args: Any) -> int:
    """``tokensmith train RECIPE.toml [--output-dir D] [--resume PATH|latest] [--max-steps N]``."""
    spec = RecipeSpec.from_toml(args.recipe)
    result = train(spec, output_dir=args.output_dir, resume=args.resume, max_steps=args.max_steps)
    import torch.distributed as dist

    if result.report is not None and (not dist.is_initialized() or dist.get_rank() == 0):
        metrics = result.report.metrics
        loss = metrics.get("final_train_loss")
        evaluation = metrics.get("final_eval_loss")
        print(f"trained {result.steps} steps in {result.seconds:.1f} s on {result.world_size} process(es)"
              + (f"; final loss {loss:.4f}" if loss is not None else "")
              + (f", eval loss {evaluation:.4f}" if evaluation is not None else ""))
        for note in result.report.notes:
            print(f"note: {note}")
        print(f"report: {result.output_dir / (REPORT_NAME + '.json')}")
        if result.final_dir is not None:
            print(f"model: {result.final_dir} (a model source: [model] source = \"{result.final_dir}\")")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0

