"""The CharBench evaluations: a model's accuracy (``charbench``) and a tokenizer's covariates
(``charbench-covariates``) on the same seeded items.

Uzan & Pinter, "CharBench: Evaluating the Role of Tokenization in Character-Level Tasks"
(AAAI 2026; arXiv 2508.02591). The model answers each question greedily (the paper's
temperature-0 API calls) inside the instruct model's chat template; the reply is parsed with
``int()``, a failure counts as wrong (section 4). Section 5's analysis correlates each
covariate with correctness per task (point-biserial r, plus Spearman's rho here).
"""

from __future__ import annotations

import statistics
from typing import Any, Literal

import attrs

from tokensmith import (
    BuildContext,
    ConfigError,
    DataUnavailableError,
    Evaluation,
    InputError,
    Report,
    Series,
    Table,
    chatml_prompt,
    has_chatml,
    non_negative_int,
    positive_int,
    progress,
)

from .covariates import COVARIATES, covariates, point_biserial, spearman
from .tasks import (
    INDEXING,
    PAPER_WORDS_PER_CELL,
    TASKS,
    Item,
    bottom_k,
    candidate_words,
    check_words,
    make_items,
    parse_answer,
)

Task = Literal[
    "count_character_frequency", "count_unique_chars", "find_first_occurrence", "find_last_occurrence"
]


def _tasks(value: Any) -> tuple[str, ...]:
    return tuple(value)


def _check_tasks(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError("tasks is empty: give at least one of " + ", ".join(TASKS))
    unknown = [t for t in value if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task {unknown[0]!r}; the tasks are " + ", ".join(TASKS))
    if len(set(value)) != len(value):
        raise ValueError("a task is named twice")


def _optional_positive(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        positive_int(instance, attribute, value)


@attrs.define(kw_only=True)
class _CharBenchItems:
    """The parameters that make the items, shared by both evaluations (same parameters, same
    items)."""

    name = "charbench"

    sample: int | None = attrs.field(
        default=8,
        validator=_optional_positive,
        metadata={
            "doc": "words per task and word length (items = sample x tasks x lengths); "
            "None: the paper's 6,250"
        },
    )
    tasks: tuple[Task, ...] = attrs.field(
        default=TASKS,
        converter=_tasks,
        validator=_check_tasks,
        metadata={"doc": "the task types to generate"},
    )
    min_length: int = attrs.field(default=4, validator=positive_int, metadata={"doc": "shortest word"})
    max_length: int = attrs.field(default=10, validator=positive_int, metadata={"doc": "longest word"})
    seed: int = attrs.field(
        default=42,
        validator=non_negative_int,
        metadata={"doc": "seed of the word sample and the queried characters"},
    )
    dataset: str = attrs.field(
        default="words",
        metadata={
            "doc": "registered dataset the words are extracted from (\\b[a-zA-Z]+\\b), e.g. words (wamerican)"
        },
    )
    field: str = attrs.field(default="word", metadata={"doc": "the dataset's text field"})
    split: Literal["train", "eval", "all"] = attrs.field(
        default="all", metadata={"doc": "the dataset's split"}
    )
    limit: int | None = attrs.field(
        default=None,
        validator=_optional_positive,
        metadata={"doc": "read at most this many records of the dataset (None: all, streamed)"},
    )
    words: tuple[str, ...] | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(tuple),
        metadata={
            "doc": "explicit words instead of a dataset: letters only, each of a length in range, none twice"
        },
    )
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    @staticmethod
    def check_parameters(values: dict[str, Any]) -> None:
        if values["min_length"] > values["max_length"]:
            raise ValueError(f"min_length {values['min_length']} > max_length {values['max_length']}")

    @property
    def component(self) -> str:
        return f"evaluation '{self.name}'"

    def _registry(self) -> Any:
        if self.ctx is not None and self.ctx.registry is not None:
            return self.ctx.registry
        from tokensmith import default_registry

        return default_registry()

    def _texts(self):
        """The dataset's ``field`` of each record, streamed."""
        dataset = self._registry().build("dataset", {"type": self.dataset, "limit": self.limit})
        for n, example in enumerate(dataset.examples(self.split)):
            text = example.get(self.field) if isinstance(example, dict) else None
            if not isinstance(text, str):
                raise InputError(
                    f"record {n} of dataset '{self.dataset}' has no text field {self.field!r} "
                    f"(fields: {sorted(example) if isinstance(example, dict) else type(example)})",
                    component=self.component,
                    hint="set field to one of the dataset's text fields",
                )
            yield text

    def items(self, *, quick: bool = False) -> list[Item]:
        """The benchmark: ``sample`` words per task and length (1 in quick mode), every bucket
        full — a source with too few distinct words of some length is an error, never a
        smaller bucket."""
        per_cell = 1 if quick else (self.sample or PAPER_WORDS_PER_CELL)
        lengths = range(self.min_length, self.max_length + 1)
        if self.words is not None:
            pool = check_words(self.words, self.min_length, self.max_length, self.component)
            source = f"the {len(pool)} words given"
        else:
            pool = candidate_words(self._texts(), self.min_length, self.max_length)
            source = f"dataset '{self.dataset}' (field {self.field!r}, split {self.split!r})"
        need = per_cell * len(self.tasks)
        buckets = bottom_k(pool, need, self.seed, lengths)
        short = {n: len(ws) for n, ws in buckets.items() if len(ws) < need}
        if short:
            shown = ", ".join(f"{n} letters: {k}" for n, k in sorted(short.items()))
            error = InputError if self.words is not None else DataUnavailableError
            raise error(
                f"{source} has too few distinct words per length for {per_cell} per task x "
                f"{len(self.tasks)} tasks = {need} per length ({shown})",
                component=self.component,
                hint="lower sample, narrow min_length/max_length, or give a larger word source",
            )
        return make_items(buckets, self.tasks, per_cell, self.seed)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@attrs.define(kw_only=True)
class CharBench(_CharBenchItems, Evaluation):
    """CharBench on a pipeline's language model: greedy answers, accuracy per task and word
    length, and the covariates' correlations with correctness."""

    name = "charbench"
    targets = ("pipeline",)

    decoder: str = attrs.field(default="greedy", metadata={"doc": "registered decoder (the paper: greedy)"})
    chat: Literal["auto", "chatml", "none"] = attrs.field(
        default="auto",
        metadata={
            "doc": "auto: the ChatML template when the tokenizer has its markers (SmolLM2-Instruct); "
            "chatml; none"
        },
    )
    system: str | None = attrs.field(default=None, metadata={"doc": "a system turn before the question"})
    max_new_tokens: int = attrs.field(
        default=8,
        validator=positive_int,
        metadata={
            "doc": "reply budget; a reply still running after it is counted unparsed (the answer is a small "
            "number)"
        },
    )

    def _prompt(self, tokenizer: Any, text: str) -> str:
        use_chat = self.chat == "chatml" or (self.chat == "auto" and has_chatml(tokenizer))
        if use_chat:
            return chatml_prompt(tokenizer, text, system=self.system, component=self.component)
        if self.system is not None:
            raise ConfigError(
                "system is set but no chat template is used",
                component=self.component,
                hint="set chat = 'chatml' (the tokenizer must have the ChatML markers)",
            )
        return text

    def run(self, target: Any, *, quick: bool = False) -> Report:
        lm = self.lm_of(target)
        tokenizer = self.tokenizer_of(target)
        decoder = self._registry().build("decoder", self.decoder)
        prepare = getattr(target, "prepare", lambda text: text)
        items = self.items(quick=quick)
        rows, outcomes = [], []
        for item in progress(items, total=len(items), desc="charbench", unit="item"):
            prompt = prepare(self._prompt(tokenizer, item.prompt))
            generation = decoder.generate(lm, prompt, max_new_tokens=self.max_new_tokens)
            finished = generation.finish_reason == "stop"
            predicted = parse_answer(generation.text) if finished else None
            correct = predicted == item.answer
            covs = covariates(item, tokenizer, self.component)
            outcomes.append((item, covs, correct, predicted is None))
            rows.append(
                (
                    item.task,
                    item.word,
                    item.character,
                    item.answer,
                    generation.text,
                    predicted,
                    int(correct),
                    covs["number_of_tokens"],
                    covs["target_token_length"],
                )
            )
        return _accuracy_report(
            self.name,
            outcomes,
            rows,
            self.tasks,
            self.min_length,
            self.max_length,
            notes=(
                f"{len(items)} items: {1 if quick else self.sample or PAPER_WORDS_PER_CELL} "
                f"per task and word length, seed {self.seed}; decoder {self.decoder!r}, "
                f"chat {self.chat!r}, max_new_tokens {self.max_new_tokens}",
                "correctness: int() of the reply equals the gold answer; a reply that "
                "does not parse (or had not ended) is wrong",
                "correlations: point-biserial r (the paper's Pearson r with the 0/1 "
                "outcome) and Spearman's rho; empty where a side is constant",
            ),
        )


def _accuracy_report(
    name: str,
    outcomes: list,
    rows: list,
    tasks: tuple[str, ...],
    min_length: int,
    max_length: int,
    notes: tuple[str, ...],
) -> Report:
    lengths = list(range(min_length, max_length + 1))
    metrics: dict[str, float | int] = {
        "items": len(outcomes),
        "accuracy": statistics.fmean(c for _, _, c, _ in outcomes),
        "parse_failure_rate": statistics.fmean(f for _, _, _, f in outcomes),
    }
    by_length, correlations, rhos, series = [], [], [], []
    for task in tasks:
        mine = [(i, cv, c) for i, cv, c, _ in outcomes if i.task == task]
        metrics[f"accuracy_{task}"] = statistics.fmean(c for _, _, c in mine)
        accs = [_mean([float(c) for i, _, c in mine if len(i.word) == n]) for n in lengths]
        by_length.append((task, *[_round(a) for a in accs], round(metrics[f"accuracy_{task}"], 4)))
        series.append(
            Series(
                task,
                lengths,
                [a if a is not None else 0.0 for a in accs],
                x_label="word length",
                y_label="accuracy",
                group="accuracy by word length",
            )
        )
        r_row, rho_row = [task], [task]
        for cov in COVARIATES:
            pairs = [(cv[cov], c) for _, cv, c in mine if cv[cov] is not None]
            r = point_biserial([v for v, _ in pairs], [c for _, c in pairs]) if pairs else None
            rho = spearman([v for v, _ in pairs], [float(c) for _, c in pairs]) if pairs else None
            r_row.append(_round(r, 3))
            rho_row.append(_round(rho, 3))
            if r is not None and cov in ("target_token_length", "word_length", "gold_truth"):
                metrics[f"r_{cov}_{task}"] = r
        correlations.append(tuple(r_row))
        rhos.append(tuple(rho_row))
        if task in INDEXING:
            sizes = sorted({cv["target_token_length"] for _, cv, _ in mine})
            accs = [
                statistics.fmean(float(c) for _, cv, c in mine if cv["target_token_length"] == s)
                for s in sizes
            ]
            series.append(
                Series(
                    f"{task} by target token length",
                    sizes,
                    accs,
                    x_label="length of the token holding the answer",
                    y_label="accuracy",
                    group="indexing accuracy by target token length",
                )
            )
    tables = (
        Table("accuracy by task and word length", ("task", *map(str, lengths), "all"), tuple(by_length)),
        Table("point-biserial r of covariate and correctness", ("task", *COVARIATES), tuple(correlations)),
        Table("Spearman rho of covariate and correctness", ("task", *COVARIATES), tuple(rhos)),
        Table(
            "items",
            (
                "task",
                "word",
                "character",
                "gold",
                "reply",
                "parsed",
                "correct",
                "tokens",
                "target_token_length",
            ),
            tuple(rows),
        ),
    )
    return Report(name=name, metrics=metrics, tables=tables, series=tuple(series), notes=notes)


@attrs.define(kw_only=True)
class CharBenchCovariates(_CharBenchItems, Evaluation):
    """The tokenizer-only side of CharBench: its covariates averaged over the same items as
    ``charbench`` (same parameters), so tokenizers compare without a model."""

    name = "charbench-covariates"
    targets = ("pipeline", "tokenizer")

    def run(self, target: Any, *, quick: bool = False) -> Report:
        tokenizer = self.tokenizer_of(target)
        items = self.items(quick=quick)
        per_item = [
            (item, covariates(item, tokenizer, self.component))
            for item in progress(items, total=len(items), desc="charbench-covariates", unit="item")
        ]
        indexing = [cv["target_token_length"] for item, cv in per_item if item.task in INDEXING]
        metrics: dict[str, float | int] = {
            "items": len(per_item),
            "mean_tokens_per_word": statistics.fmean(cv["number_of_tokens"] for _, cv in per_item),
            "mean_compression_rate": statistics.fmean(cv["compression_rate"] for _, cv in per_item),
        }
        if indexing:
            metrics["mean_target_token_length"] = statistics.fmean(indexing)
        rows = []
        for task in self.tasks:
            mine = [cv for item, cv in per_item if item.task == task]
            target_lengths = [
                cv["target_token_length"] for cv in mine if cv["target_token_length"] is not None
            ]
            rows.append(
                (
                    task,
                    len(mine),
                    round(statistics.fmean(cv["number_of_tokens"] for cv in mine), 4),
                    round(statistics.fmean(cv["compression_rate"] for cv in mine), 4),
                    _round(_mean(target_lengths)),
                )
            )
        lengths = list(range(self.min_length, self.max_length + 1))
        tokens_by_length = [
            statistics.fmean(cv["number_of_tokens"] for item, cv in per_item if len(item.word) == n)
            for n in lengths
        ]
        notes = [
            f"tokenizer '{tokenizer.name}'; {len(per_item)} items, seed {self.seed}; each word tokenized "
            "alone, without special tokens"
        ]
        if not indexing:
            notes.append("mean_target_token_length is left out: no indexing task was generated")
        return Report(
            name=self.name,
            metrics=metrics,
            tables=(
                Table(
                    "covariates by task",
                    ("task", "items", "tokens per word", "chars per token", "target token length"),
                    tuple(rows),
                ),
            ),
            series=(
                Series("tokens per word", lengths, tokens_by_length, x_label="word length", y_label="tokens"),
            ),
            notes=tuple(notes),
        )
