"""A training recipe as a frozen record: :class:`RecipeSpec`, read from TOML or a dict,
validated before anything heavy runs, and ``RecipeSpec.from_config(spec.to_config()) == spec``.

The tables (docs/training.md has the reference)::

    [model]            a model source, exactly as in a pipeline (ModelSource)
    [runtime]          optional, as in a pipeline (device, dtype, seed, threads)
    [tokenizer]        optional, a registered tokenizer (default: the model's own)
    [dataset]          type = a registered dataset, its parameters, split, eval_split
    [data]             how examples become batches (DataSettings)
    [[objective]]      zero or more registered objectives (loss, token weights, masks)
    [recipe]           optional, a registered recipe component
    [train]            what trains and how (TrainSettings), [train.arguments] for the rest
                       of transformers' TrainingArguments

The ``[data]`` and ``[train]`` tables are attrs records whose fields are the keys, checked
the way component parameters are (types, unknown keys with a did-you-mean, validators,
cross-checks) and every problem reported at once. :meth:`RecipeSpec.problems` adds what a
registry knows (component names and parameters, the model source, objective roles) — still
before any model loads. This module imports neither torch nor transformers.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from .errors import ConfigError, TokensmithError, ValidationError
from .params import check_parameters, signature_of
from .pipeline import ModelSource
from .records import ComponentRef
from .runtime import Runtime
from .validators import non_negative, non_negative_int, positive_int

COMPONENT = "recipe"
#: the tables a recipe file may have
TABLES = ("model", "runtime", "tokenizer", "dataset", "data", "objective", "recipe", "train")
#: keys of [dataset] that are the runner's, not the dataset component's parameters
DATASET_KEYS = ("split", "eval_split")
#: the learning-rate schedules with a floor (``[train] min_lr``)
MIN_LR_SCHEDULES = ("cosine_with_min_lr", "cosine_warmup_with_min_lr")


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _mapping(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _globs(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{attribute.name} must be a list of non-empty glob patterns, got {value!r}")


def _optional_positive_int(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        positive_int(instance, attribute, value)


def _steps(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(type(v) is int and v >= 0 for v in value):
        raise ConfigError(f"{attribute.name} must be a list of steps (ints >= 0), got {value!r}")


def _field_name(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{attribute.name} must be a field name (a non-empty string), got {value!r}")


#: the batch keys the runner makes itself: no [data] token_fields / example_fields entry may take them
SEQUENCE_KEYS = ("input_ids", "labels", "attention_mask", "response_mask")


def _extra_fields(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v.isidentifier() for v in value):
        raise ConfigError(f"{attribute.name} must be a list of field names (identifiers), got {value!r}")
    taken = sorted(set(value) & set(SEQUENCE_KEYS))
    if taken:
        raise ConfigError(f"{attribute.name} names {taken}, which the runner makes itself",
                          hint=f"the sequence keys {list(SEQUENCE_KEYS)} are read from examples as they are")
    if len(set(value)) != len(value):
        raise ConfigError(f"{attribute.name} names a field twice: {list(value)}")


@attrs.frozen
class DataSettings:
    """``[data]``: how dataset examples become training sequences.

    Causal LM: each example's ``text`` field (default ``"text"``) is one sequence. SFT: give
    ``prompt`` and ``response`` (field names); the prompt's labels are ignored
    (``IGNORE_INDEX``) and the batch gets a ``response_mask``. Examples that already hold
    ``input_ids`` (and optionally ``labels``, ``attention_mask``, ``response_mask``) are used
    as they are. A sequence longer than ``max_length`` is an error unless ``packing`` (the
    sequences are concatenated and cut into ``max_length`` blocks; the last, shorter block is
    kept) or ``truncate``.

    Other example fields are not training inputs unless named: ``token_fields`` hold one number
    per token of a pre-tokenized example (packed, truncated and padded with 0 alongside its
    tokens; e.g. ``token_weights``, which the token cross-entropy multiplies in), and
    ``example_fields`` one array per example (e.g. ``pixel_values``; stacked, so the same shape
    throughout a batch; not with ``packing``). Both reach the objectives in the batch, and the
    model as keyword arguments when its ``forward`` takes that name.
    """

    text: str | None = attrs.field(default=None, validator=_field_name,
                                   metadata={"doc": "the text field of an example (default 'text')"})
    prompt: str | None = attrs.field(default=None, validator=_field_name,
                                     metadata={"doc": "SFT: the prompt field (its labels are ignored)"})
    response: str | None = attrs.field(default=None, validator=_field_name,
                                       metadata={"doc": "SFT: the response field (the trained tokens)"})
    max_length: int = attrs.field(default=512, validator=positive_int,
                                  metadata={"doc": "tokens per sequence"})
    packing: bool = attrs.field(default=False, metadata={"doc": "concatenate and cut into max_length blocks"})
    truncate: bool = attrs.field(default=False,
                                 metadata={"doc": "cut sequences longer than max_length (else an error)"})
    bos: bool = attrs.field(default=True, metadata={"doc": "start each example with BOS (if there is one)"})
    eos: bool = attrs.field(default=True, metadata={"doc": "end each example with EOS (if there is one)"})
    max_examples: int | None = attrs.field(default=None, validator=_optional_positive_int,
                                           metadata={"doc": "read at most this many examples of a split"})
    token_fields: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_extra_fields,
        metadata={"doc": "fields with one number per token of a pre-tokenized example, passed on in "
                  "the batch"})
    example_fields: tuple[str, ...] = attrs.field(
        default=(), converter=_tuple, validator=_extra_fields,
        metadata={"doc": "fields with one array per example (same shape in a batch), passed on in the batch"})

    @staticmethod
    def check_parameters(values: Mapping[str, Any]) -> None:
        if (values["prompt"] is None) != (values["response"] is None):
            raise ConfigError("prompt and response go together (SFT); give both or neither")
        if values["prompt"] is not None and values["text"] is not None:
            raise ConfigError("both text and prompt/response are given: a causal-LM recipe names text, "
                              "an SFT recipe prompt and response")
        if values["packing"] and values["truncate"]:
            raise ConfigError("packing and truncate exclude each other: packing keeps every token")
        both = sorted(set(values["token_fields"]) & set(values["example_fields"]))
        if both:
            raise ConfigError(f"{both} are both token_fields and example_fields: a field is one or the other")
        if values["packing"] and values["example_fields"]:
            raise ConfigError(f"example_fields {list(values['example_fields'])} cannot be packed: a packed "
                              "block mixes several examples", hint="set packing = false (and truncate or "
                              "max_length as needed)")

    def __attrs_post_init__(self) -> None:
        # built in Python (not from TOML) the record gets the same cross-field checks
        try:
            self.check_parameters(attrs.asdict(self, recurse=False))
        except ConfigError as error:
            raise ConfigError(f"[data] {error.message}", component=COMPONENT, hint=error.hint) from None

    @property
    def sft(self) -> bool:
        return self.prompt is not None

    @property
    def text_field(self) -> str:
        return self.text or "text"

    def to_config(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v, tuple) else v for f in attrs.fields(DataSettings)
                if (v := getattr(self, f.name)) is not None and v != ()}


@attrs.frozen
class TrainSettings:
    """``[train]``: what trains and how. A parameter trains when its name (as in
    ``model.named_parameters()``) matches a ``trainable`` glob and no ``frozen`` glob; a glob
    that matches nothing is an error listing close names. ``arguments`` (``[train.arguments]``)
    go to transformers' ``TrainingArguments`` as they are, except the names these keys set."""

    steps: int = attrs.field(validator=positive_int, metadata={"doc": "optimizer steps"})
    batch_size: int = attrs.field(default=8, validator=positive_int,
                                  metadata={"doc": "sequences per device per micro-batch"})
    eval_batch_size: int | None = attrs.field(default=None, validator=_optional_positive_int,
                                              metadata={"doc": "default: batch_size"})
    grad_accumulation: int = attrs.field(default=1, validator=positive_int,
                                         metadata={"doc": "micro-batches per optimizer step"})
    lr: float = attrs.field(default=5e-5, validator=non_negative, metadata={"doc": "peak learning rate"})
    schedule: str = attrs.field(default="linear",
                                metadata={"doc": "transformers' lr_scheduler_type (linear, cosine, "
                                          "cosine_with_min_lr, constant, constant_with_warmup, ...)"})
    warmup: int = attrs.field(default=0, validator=non_negative_int, metadata={"doc": "warm-up steps"})
    min_lr: float | None = attrs.field(default=None, metadata={"doc": "the floor of cosine_with_min_lr"})
    weight_decay: float = attrs.field(default=0.0, validator=non_negative)
    grad_clip: float = attrs.field(default=1.0, validator=non_negative,
                                   metadata={"doc": "max gradient norm (0: no clipping)"})
    seed: int | None = attrs.field(default=None, validator=attrs.validators.optional(non_negative_int),
                                   metadata={"doc": "default: the runtime's seed"})
    trainable: tuple[str, ...] = attrs.field(default=("*",), converter=_tuple, validator=_globs,
                                             metadata={"doc": "globs over parameter names that train"})
    frozen: tuple[str, ...] = attrs.field(default=(), converter=_tuple, validator=_globs,
                                          metadata={"doc": "globs over parameter names that stay fixed"})
    eval_every: int = attrs.field(default=0, validator=non_negative_int,
                                  metadata={"doc": "evaluate every N steps (0: never; the end always)"})
    eval_at: tuple[int, ...] = attrs.field(default=(), converter=_tuple, validator=_steps,
                                           metadata={"doc": "evaluate after these steps (0: before any)"})
    save_every: int = attrs.field(default=0, validator=non_negative_int,
                                  metadata={"doc": "write a checkpoint every N steps (0: never)"})
    save_total_limit: int | None = attrs.field(default=None, validator=_optional_positive_int,
                                               metadata={"doc": "keep only the newest N checkpoints"})
    save_final: bool = attrs.field(default=True, metadata={"doc": "save the model to output_dir/final"})
    output_dir: Path = attrs.field(default=Path("runs/train"), converter=Path,
                                   metadata={"doc": "checkpoints, the final model and the report"})
    logging_steps: int = attrs.field(default=1, validator=positive_int,
                                     metadata={"doc": "record the training loss every N steps"})
    progress: Literal["auto", "bar", "plain", "off"] = attrs.field(
        default="auto", metadata={"doc": "auto: a bar on a terminal, plain lines otherwise"})
    shuffle: bool = attrs.field(default=True, metadata={"doc": "shuffle the training sequences (seeded)"})
    report_files: Literal["all", "text", "none"] = attrs.field(
        default="all", metadata={"doc": "the run's report in output_dir: train.json/.md/.png (all), "
                                 "without the PNG (text), or none (the TrainResult still has it)"})
    arguments: dict[str, Any] = attrs.field(factory=dict, converter=_mapping,
                                            metadata={"doc": "more transformers TrainingArguments"})

    @staticmethod
    def check_parameters(values: Mapping[str, Any]) -> None:
        late = [s for s in values["eval_at"] if s > values["steps"]]
        if late:
            raise ConfigError(f"eval_at has steps after the last one ({values['steps']}): {late}")
        if values["min_lr"] is not None:
            if values["schedule"] not in MIN_LR_SCHEDULES:
                raise ConfigError(f"min_lr needs schedule = 'cosine_with_min_lr' (or "
                                  f"'cosine_warmup_with_min_lr'), not {values['schedule']!r}")
            if not 0 <= values["min_lr"] <= values["lr"]:
                raise ConfigError(f"min_lr must be in [0, lr = {values['lr']}], got {values['min_lr']}")
        if values["warmup"] > values["steps"]:
            raise ConfigError(f"warmup ({values['warmup']}) is longer than the run "
                              f"({values['steps']} steps)")

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in attrs.fields(TrainSettings):
            value = getattr(self, f.name)
            if value is None or (f.name == "arguments" and not value):
                continue
            out[f.name] = str(value) if isinstance(value, Path) else list(value) \
                if isinstance(value, tuple) else dict(value) if isinstance(value, dict) else value
        return out

    def trains(self, name: str) -> bool:
        """Whether the parameter called ``name`` trains under these globs."""
        return any(fnmatch.fnmatchcase(name, p) for p in self.trainable) \
            and not any(fnmatch.fnmatchcase(name, p) for p in self.frozen)

    def unmatched(self, names: Iterable[str]) -> list[ConfigError]:
        """A :class:`ConfigError` per glob that matches none of ``names``, listing close names."""
        names = list(names)
        problems = []
        for key in ("trainable", "frozen"):
            for pattern in getattr(self, key):
                if any(fnmatch.fnmatchcase(n, pattern) for n in names):
                    continue
                close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.4)
                stems = sorted({n.rsplit(".", 1)[0] + ".*" for n in names})
                shown = close or stems[:4]
                problems.append(ConfigError(
                    f"[train] {key} pattern {pattern!r} matches no parameter of the model",
                    component=COMPONENT, hint="close names: " + ", ".join(shown)
                    + f" (globs over model.named_parameters(); {len(names)} parameters)"))
        return problems


@attrs.frozen
class DatasetSpec:
    """``[dataset]``: a registered dataset (``type`` and its parameters), the split to train
    on and the split to evaluate on (none: no evaluation data)."""

    type: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    split: str = "train"
    eval_split: str | None = None

    @property
    def ref(self) -> ComponentRef:
        return ComponentRef(self.type, self.params)

    def to_config(self) -> dict[str, Any]:
        out = {"type": self.type, **self.params, "split": self.split}
        if self.eval_split is not None:
            out["eval_split"] = self.eval_split
        return out

    @classmethod
    def from_config(cls, value: Any) -> DatasetSpec:
        if isinstance(value, DatasetSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"[dataset] must be a table, got {type(value).__name__}", component=COMPONENT,
                              hint='[dataset] type = "<registered dataset>"')
        value = dict(value)
        split, eval_split = value.pop("split", "train"), value.pop("eval_split", None)
        ref = ComponentRef.from_config(value)
        for key, v in (("split", split), ("eval_split", eval_split)):
            if v is not None and (not isinstance(v, str) or not v):
                raise ConfigError(f"[dataset] {key} must be a split name (a string), got {v!r}",
                                  component=COMPONENT)
        return cls(ref.type, ref.params, split, eval_split)


def _table(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{name}] must be a table, got {type(value).__name__}", component=COMPONENT)
    return value


def settings(cls: type, table: Mapping[str, Any], name: str) -> tuple[Any, list[TokensmithError]]:
    """``(record, problems)``: ``cls`` built from ``table`` after every check, or ``None`` and
    one :class:`ConfigError` per problem."""
    values, problems = check_parameters(signature_of(cls), table)
    errors: list[TokensmithError] = [ConfigError(f"[{name}] {p}", component=COMPONENT,
                                                 hint=f"docs/training.md lists the [{name}] keys")
                                     for p in problems]
    if errors:
        return None, errors
    return cls(**values), []


def _objectives(value: Any) -> tuple[ComponentRef, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, Mapping, ComponentRef)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"[[objective]] must be tables (or names), got {type(value).__name__} "
                          f"{value!r:.40}", component=COMPONENT,
                          hint='[[objective]] type = "<registered objective>"')
    return tuple(ComponentRef.from_config(v) for v in value)


def _optional_ref(value: Any) -> ComponentRef | None:
    return None if value is None else ComponentRef.from_config(value)


def _data(value: Any) -> DataSettings:
    return value if isinstance(value, DataSettings) else _checked(DataSettings, value or {}, "data")


def _train(value: Any) -> TrainSettings:
    return value if isinstance(value, TrainSettings) else _checked(TrainSettings, value, "train")


def _checked(cls: type, table: Any, name: str) -> Any:
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table, got {type(table).__name__}", component=COMPONENT)
    record, problems = settings(cls, table, name)
    if problems:
        raise problems[0] if len(problems) == 1 else ValidationError(problems, what="recipe")
    return record


@attrs.frozen
class RecipeSpec:
    """A training run by name: the model, data, objectives, recipe and settings. Build it in
    code (``attrs.evolve`` to vary; tables may be given as dicts) or with :meth:`from_toml`."""

    model: ModelSource = attrs.field(converter=ModelSource.from_config)
    dataset: DatasetSpec = attrs.field(converter=DatasetSpec.from_config)
    train: TrainSettings = attrs.field(converter=_train)
    data: DataSettings = attrs.field(factory=DataSettings, converter=_data)
    objectives: tuple[ComponentRef, ...] = attrs.field(default=(), converter=_objectives)
    recipe: ComponentRef | None = attrs.field(default=None, converter=_optional_ref)
    tokenizer: ComponentRef | None = attrs.field(default=None, converter=_optional_ref)
    runtime: Mapping[str, Any] = attrs.field(factory=lambda: {"device": "auto", "dtype": "auto"},
                                             converter=dict)

    def to_config(self) -> dict[str, Any]:
        """A plain dict (TOML-ready); ``RecipeSpec.from_config(spec.to_config()) == spec``."""
        out: dict[str, Any] = {"runtime": dict(self.runtime), "model": self.model.to_config()}
        if self.tokenizer is not None:
            out["tokenizer"] = self.tokenizer.to_config()
        out["dataset"] = self.dataset.to_config()
        out["data"] = self.data.to_config()
        if self.objectives:
            out["objective"] = [o.to_config() for o in self.objectives]
        if self.recipe is not None:
            out["recipe"] = self.recipe.to_config()
        out["train"] = self.train.to_config()
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_config())

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RecipeSpec:
        """Read every table, reporting every problem at once (a :class:`ValidationError`
        when there are several)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"a recipe is a table, got {type(config).__name__}", component=COMPONENT)
        problems: list[TokensmithError] = []
        for key in config:
            if key not in TABLES:
                close = difflib.get_close_matches(str(key), TABLES, n=1)
                problems.append(ConfigError(
                    f"unknown recipe table [{key}]" + (f" (did you mean [{close[0]}]?)" if close else ""),
                    component=COMPONENT, hint="recipe tables: " + ", ".join(TABLES)))
        for required, example in (("model", '[model] source = "tiny-llama"'),
                                  ("dataset", '[dataset] type = "<registered dataset>"'),
                                  ("train", "[train] steps = 100")):
            if required not in config:
                problems.append(ConfigError(f"the recipe has no [{required}] table", component=COMPONENT,
                                            hint=f"add {example}"))
        kwargs: dict[str, Any] = {}
        readers = {"model": ModelSource.from_config, "dataset": DatasetSpec.from_config,
                   "tokenizer": _optional_ref, "recipe": _optional_ref, "objective": _objectives}
        for key, read in readers.items():
            if key in config:
                try:
                    kwargs["objectives" if key == "objective" else key] = read(config[key])
                except TokensmithError as exc:
                    problems.append(exc)
        for key, cls_ in (("data", DataSettings), ("train", TrainSettings)):
            if key in config:
                try:
                    record, errors = settings(cls_, _table(config, key), key)
                except TokensmithError as exc:
                    record, errors = None, [exc]
                problems += errors
                if record is not None:
                    kwargs[key] = record
        if "runtime" in config:
            runtime_problems = Runtime.check_config(config["runtime"])
            problems += runtime_problems
            if not runtime_problems:
                kwargs["runtime"] = dict(config["runtime"])
        if problems:
            raise problems[0] if len(problems) == 1 else ValidationError(problems, what="recipe")
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> RecipeSpec:
        from .pipeline import read_toml

        return cls.from_config(read_toml(path, COMPONENT, example="examples/tiny-recipe.toml"))

    def refs(self) -> list[tuple[str, str, ComponentRef]]:
        """Every component the recipe names, as ``(table, kind, ref)``."""
        out = [("dataset", "dataset", self.dataset.ref)]
        out += [("objective", "objective", ref) for ref in self.objectives]
        if self.recipe is not None:
            out.append(("recipe", "recipe", self.recipe))
        if self.tokenizer is not None:
            out.append(("tokenizer", "tokenizer", self.tokenizer))
        return out

    def problems(self, registry: Any) -> list[TokensmithError]:
        """Every problem ``registry`` can find without loading anything heavy: the runtime,
        the model source's parameters, unknown component names, factories that cannot be
        loaded, bad parameters, unsupported devices/dtypes, dataset parameters named like the
        runner's own keys, and objectives whose role a supervised loss cannot use."""
        from .objectives import ROLES

        problems: list[TokensmithError] = list(Runtime.check_config(self.runtime))
        runtime = Runtime.from_config(self.runtime) if not problems else None
        try:
            info = registry.describe_model(self.model)
        except TokensmithError as exc:
            problems.append(exc)
            info = None
        if info is not None:
            from .params import Signature

            _, bad = check_parameters(Signature(tuple(info.parameters)), self.model.params)
            problems += [ConfigError(p, component=f"model {self.model.source!r}",
                                     hint="the [model] table takes 'source' and: "
                                     + (", ".join(p.name for p in info.parameters) or "nothing else"))
                         for p in bad]
        for _, kind, ref in self.refs():
            try:
                record = registry.get(kind, ref.type)
                factory, signature = registry.factory(record)
            except TokensmithError as exc:
                problems.append(exc)
                continue
            problems += registry.check_params(record, ref.params)[1]
            if runtime is not None:
                try:
                    runtime.check_supported(record)
                except TokensmithError as exc:
                    problems.append(exc)
            if kind == "dataset":
                splits = getattr(factory, "splits", None)
                if isinstance(splits, (tuple, list)) and all(isinstance(x, str) for x in splits):
                    for key in DATASET_KEYS:
                        split = getattr(self.dataset, key)
                        if split is not None and split not in splits:
                            problems.append(ConfigError(
                                f"[dataset] {key} = {split!r} is not a split of this dataset",
                                component=record.qualname, plugin=record.distribution,
                                hint=f"use one of {', '.join(repr(x) for x in splits)}"))
                clash = sorted(set(DATASET_KEYS) & set(signature.names()))
                if clash:
                    problems.append(ConfigError(
                        f"declares parameters {clash}, which [dataset] keeps for the runner (the splits)",
                        component=record.qualname, plugin=record.distribution,
                        hint="rename the dataset's parameters"))
            if kind == "objective":
                role = getattr(factory, "role", None)
                if role in ("reward", "advantage"):
                    problems.append(ConfigError(
                        f"is a {role}; a supervised recipe composes losses, token weights and masks",
                        component=record.qualname, plugin=record.distribution,
                        hint="rewards and advantages belong to an RL recipe (e.g. TRL GRPO)"))
                elif role is not None and role not in ROLES:
                    problems.append(ConfigError(f"has role {role!r}; one of {sorted(ROLES)} expected",
                                                component=record.qualname, plugin=record.distribution))
        if self.dataset.eval_split is None and (self.train.eval_every or self.train.eval_at):
            key = "eval_every" if self.train.eval_every else "eval_at"
            problems.append(ConfigError(f"[train] {key} asks for evaluations, but [dataset] has no "
                                        "eval_split", component=COMPONENT,
                                        hint='add [dataset] eval_split = "eval", or drop ' + key))
        losses = []
        for ref in self.objectives:
            try:
                record = registry.get("objective", ref.type)
                if getattr(registry.factory(record)[0], "role", None) == "loss":
                    losses.append(ref.type)
            except TokensmithError:
                continue
        if len(losses) > 1:
            problems.append(ConfigError(f"{len(losses)} losses given ({losses}); a recipe has one",
                                        component=COMPONENT,
                                        hint="combine token weights and masks with one loss instead"))
        return problems
