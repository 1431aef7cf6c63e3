"""The Needle Threading evaluations: retrieval accuracy against context length in characters
(``needle-threading``) and characters per token on UUID text (``uuid-chars-per-token``).

Roberts, Han & Albanie (ICLR 2025; arXiv 2411.05000): the prompt is the haystack, a newline
and the question (section 3); decoding is greedy with at most 100 new tokens; lengths are in
characters so that they compare across models (section 4.2's effective context length), and
section 5 shows that the same characters make very different token counts, most of all on
UUIDs and numbers, under different tokenizers.
"""

from __future__ import annotations

import random
import statistics
import uuid
from typing import Any, Literal

import attrs

from tokensmith import (
    BuildContext,
    ConfigError,
    ContextLengthError,
    Evaluation,
    InputError,
    Report,
    Series,
    Table,
    chatml_prompt,
    encode_prompt,
    has_chatml,
    non_negative_int,
    positive_int,
    progress,
)

from .haystack import (
    DEPTH_TASKS,
    TASKS,
    UUID_ALPHABET,
    Haystack,
    Question,
    TaskSettings,
    make_question,
    pairs_for,
    required_pairs,
    score,
)

Task = Literal[
    "single_needle",
    "multiple_needles",
    "conditional_needles",
    "threading",
    "multi_threading",
    "branched_threading",
]


def _optional_positive(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        positive_int(instance, attribute, value)


def _names(valid: tuple[str, ...]):
    def check(instance: Any, attribute: Any, value: tuple[str, ...]) -> None:
        if not value:
            raise ValueError(f"{attribute.name} is empty: give at least one of " + ", ".join(valid))
        unknown = [t for t in value if t not in valid]
        if unknown:
            raise ValueError(f"unknown {attribute.name[:-1]} {unknown[0]!r}; one of " + ", ".join(valid))
        if len(set(value)) != len(value):
            raise ValueError(f"{attribute.name} names one twice")

    return check


def _lengths(instance: Any, attribute: Any, value: tuple[int, ...]) -> None:
    if not value:
        raise ValueError(f"{attribute.name} is empty")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 80:
            raise ValueError(
                f"{attribute.name} holds {v!r}: lengths are ints of at least 80 characters "
                "(one key-value pair)"
            )


def _depths(instance: Any, attribute: Any, value: tuple[float, ...]) -> None:
    if not value:
        raise ValueError("depths is empty")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 100:
            raise ValueError(f"depths holds {v!r}: a depth is a percentage in [0, 100]")


def _character(instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or len(value) != 1:
        raise ValueError(f"conditional_character must be one character, got {value!r}")
    if value in UUID_ALPHABET or value in '"\\' or not value.isprintable() or value.isspace():
        raise ValueError(
            f"conditional_character {value!r} could occur in a UUID or break the JSON: use a "
            "printable character outside 0-9a-f, '-', '\"' and '\\' (e.g. '*')"
        )


@attrs.define(kw_only=True)
class NeedleThreading(Evaluation):
    """The six retrieval tasks on a pipeline's language model, over context lengths in
    characters and needle depths; accuracy by task and length."""

    name = "needle-threading"
    targets = ("pipeline",)

    sample: int | None = attrs.field(
        default=1,
        validator=_optional_positive,
        metadata={"doc": "repeats per (task, length, depth) cell: different haystacks; None: 1"},
    )
    tasks: tuple[Task, ...] = attrs.field(
        default=TASKS, converter=tuple, validator=_names(TASKS), metadata={"doc": "the tasks to run"}
    )
    lengths: tuple[int, ...] = attrs.field(
        default=(1000, 2000, 4000, 8000),
        converter=tuple,
        validator=_lengths,
        metadata={"doc": "haystack lengths in characters"},
    )
    depths: tuple[float, ...] = attrs.field(
        default=(0.0, 50.0, 100.0),
        converter=tuple,
        validator=_depths,
        metadata={"doc": "needle depths in percent (depth tasks)"},
    )
    direction: Literal["forward", "backward", "random"] = attrs.field(
        default="forward", metadata={"doc": "thread direction through the context"}
    )
    placement: Literal["clustered", "depthwise"] = attrs.field(
        default="clustered",
        metadata={"doc": "multiple/conditional needles: together at each depth, or spread evenly (no depth)"},
    )
    num_needles: int = attrs.field(default=3, validator=positive_int, metadata={"doc": "needles per item"})
    conditional_character: str = attrs.field(
        default="*",
        validator=_character,
        metadata={"doc": "the character inserted into the conditional needles' keys"},
    )
    thread_length: int = attrs.field(default=3, validator=positive_int, metadata={"doc": "hops per thread"})
    num_threads: int = attrs.field(
        default=2, validator=positive_int, metadata={"doc": "threads at once (multi_threading)"}
    )
    branches: int = attrs.field(
        default=2, validator=positive_int, metadata={"doc": "keys sharing each value (branched_threading)"}
    )
    branch_length: int = attrs.field(
        default=2,
        validator=positive_int,
        metadata={"doc": "hops of the branched thread (branches ** hops answers)"},
    )
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={"doc": "seed of the haystacks"})
    decoder: str = attrs.field(default="greedy", metadata={"doc": "registered decoder (the paper: greedy)"})
    max_new_tokens: int = attrs.field(
        default=100, validator=positive_int, metadata={"doc": "reply budget (the paper: 100)"}
    )
    chat: Literal["auto", "chatml", "none"] = attrs.field(
        default="auto",
        metadata={
            "doc": "auto: the ChatML template when the tokenizer has its markers (SmolLM2-Instruct); "
            "chatml; none"
        },
    )
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def component(self) -> str:
        return f"evaluation '{self.name}'"

    @property
    def settings(self) -> TaskSettings:
        return TaskSettings(
            num_needles=self.num_needles,
            placement=self.placement,
            conditional_character=self.conditional_character,
            thread_length=self.thread_length,
            num_threads=self.num_threads,
            branches=self.branches,
            branch_length=self.branch_length,
            direction=self.direction,
        )

    def _registry(self) -> Any:
        if self.ctx is not None and self.ctx.registry is not None:
            return self.ctx.registry
        from tokensmith import default_registry

        return default_registry()

    def uses_depth(self, task: str) -> bool:
        return task == "single_needle" or (task in DEPTH_TASKS and self.placement == "clustered")

    def questions(self, *, quick: bool = False) -> list[Question]:
        """Every item of the grid (quick: the shortest length, one depth, one repeat). A length
        too short for a task's pairs is an :class:`InputError` naming the task, never skipped."""
        lengths = self.lengths[:1] if quick else self.lengths
        depths = (self.depths[len(self.depths) // 2],) if quick else self.depths
        repeats = 1 if quick else (self.sample or 1)
        for task in self.tasks:
            need = required_pairs(task, self.settings)
            short = [n for n in lengths if pairs_for(n) < need]
            if short:
                raise InputError(
                    f"{short[0]} characters hold {pairs_for(short[0])} key-value pairs; {task} places {need}",
                    component=self.component,
                    hint=f"use lengths of at least {need * 80} characters for {task}, or fewer needles/hops",
                )
        return [
            make_question(task, n, depth, self.settings, self.seed, r)
            for task in self.tasks
            for n in lengths
            for depth in (depths if self.uses_depth(task) else (None,))
            for r in range(repeats)
        ]

    def _prompt(self, tokenizer: Any, text: str) -> str:
        if self.chat == "chatml" or (self.chat == "auto" and has_chatml(tokenizer)):
            return chatml_prompt(tokenizer, text, component=self.component)
        return text

    def run(self, target: Any, *, quick: bool = False) -> Report:
        lm = self.lm_of(target)
        tokenizer = self.tokenizer_of(target)
        prepare = getattr(target, "prepare", lambda text: text)
        questions = self.questions(quick=quick)
        prompts = [prepare(self._prompt(tokenizer, q.prompt)) for q in questions]
        # every haystack is checked against the context before the model runs: never truncated
        sizes = [len(lm.start_ids) + len(encode_prompt(tokenizer, p).ids) for p in prompts]
        for q, size in zip(questions, sizes):
            if size + self.max_new_tokens > lm.context_length:
                raise ContextLengthError(
                    f"a {q.task} haystack of {q.length} characters is {size} tokens; with max_new_tokens "
                    f"{self.max_new_tokens} that exceeds the model's context of {lm.context_length} tokens",
                    component=self.component,
                    hint="use shorter lengths (characters) or a model with a longer context; haystacks are "
                    "never truncated",
                )
        decoder = self._registry().build("decoder", self.decoder)
        scores, rows = [], []
        for q, prompt, size in progress(
            list(zip(questions, prompts, sizes)), total=len(questions), desc="needle-threading", unit="item"
        ):
            reply = decoder.generate(lm, prompt, max_new_tokens=self.max_new_tokens).text
            s = score(q, reply)
            scores.append(s)
            rows.append(
                (
                    q.task,
                    q.length,
                    len(q.haystack.to_json()),
                    size,
                    None if q.depth is None else float(q.depth),
                    round(s, 4),
                    ", ".join(q.gold),
                    reply,
                )
            )
        return _report(self, questions, scores, rows, sizes, quick)


def _report(
    ev: NeedleThreading,
    questions: list[Question],
    scores: list[float],
    rows: list,
    sizes: list[int],
    quick: bool,
) -> Report:
    metrics: dict[str, float | int] = {
        "items": len(questions),
        "accuracy": statistics.fmean(scores),
        "exact": statistics.fmean(float(s == 1.0) for s in scores),
    }
    lengths = sorted({q.length for q in questions})
    series, by_length = [], []
    for task in ev.tasks:
        mine = [(q, s) for q, s in zip(questions, scores) if q.task == task]
        metrics[f"accuracy_{task}"] = statistics.fmean(s for _, s in mine)
        accs = [statistics.fmean(s for q, s in mine if q.length == n) for n in lengths]
        by_length.append((task, *[round(a, 4) for a in accs]))
        series.append(
            Series(
                task,
                lengths,
                accs,
                x_label="context length (characters)",
                y_label="accuracy",
                group="accuracy vs context length",
            )
        )
    depth_rows = []
    single = [(q, s) for q, s in zip(questions, scores) if q.task == "single_needle"]
    depths = sorted({q.depth for q, _ in single})
    for d in depths:
        depth_rows.append(
            (
                float(d),
                *[
                    round(statistics.fmean(s for q, s in single if q.depth == d and q.length == n), 4)
                    for n in lengths
                ],
            )
        )
    chars = {
        n: statistics.fmean(len(q.haystack.to_json()) for q in questions if q.length == n) for n in lengths
    }
    tokens = {n: statistics.fmean(t for q, t in zip(questions, sizes) if q.length == n) for n in lengths}
    tables = [
        Table(
            "accuracy by task and context length (characters)", ("task", *map(str, lengths)), tuple(by_length)
        ),
        Table(
            "prompt size by context length",
            ("length", "haystack chars", "prompt tokens", "chars per token"),
            tuple(
                (n, round(chars[n], 1), round(tokens[n], 1), round(chars[n] / tokens[n], 4)) for n in lengths
            ),
        ),
    ]
    if depth_rows:
        tables.append(
            Table(
                "single needle accuracy by depth (%) and length",
                ("depth", *map(str, lengths)),
                tuple(depth_rows),
            )
        )
    tables.append(
        Table(
            "items",
            ("task", "length", "chars", "prompt tokens", "depth", "score", "gold", "reply"),
            tuple(rows),
        )
    )
    notes = (
        f"{len(questions)} items{' (quick)' if quick else ''}; seed {ev.seed}; direction {ev.direction}, "
        f"placement {ev.placement}, {ev.num_needles} needles, threads of {ev.thread_length} hops, "
        f"{ev.num_threads} threads, {ev.branches} branches of {ev.branch_length} hops; "
        f"decoder {ev.decoder!r}, max_new_tokens "
        f"{ev.max_new_tokens}, chat {ev.chat!r}",
        "accuracy: single answers by exact match of the reply's leading characters (the paper's); "
        "several answers: the share of gold UUIDs among the reply's first len(gold) distinct UUIDs; "
        "exact: the share of items fully right",
    )
    return Report(name=ev.name, metrics=metrics, tables=tuple(tables), series=tuple(series), notes=notes)


#: the kinds of text measured by ``uuid-chars-per-token``
TEXT_KINDS = ("uuid-json", "uuid", "hex", "digits")


def _text(kind: str, length: int, rng: random.Random) -> str:
    """About ``length`` characters of one kind of text, from ``rng``. Bare UUIDs, hex and digits
    come as space-separated words (UUIDs, UUIDs without dashes, 10-digit numbers): one run of
    thousands of characters would be a single unknown token to a WordPiece tokenizer."""

    def new() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128)))

    if kind == "uuid-json":
        return Haystack(tuple((new(), new()) for _ in range(pairs_for(length)))).to_json()
    if kind == "uuid":
        return " ".join(new() for _ in range(max(1, length // 37)))
    if kind == "hex":
        return " ".join(new().replace("-", "") for _ in range(max(1, length // 33)))
    return " ".join("".join(rng.choice("0123456789") for _ in range(10)) for _ in range(max(1, length // 11)))


@attrs.define(kw_only=True)
class UUIDCharsPerToken(Evaluation):
    """Characters per token of a tokenizer on Needle Threading's haystacks (UUID key-value
    JSON) and on bare UUIDs, hex digits and decimal digits: how many tokens a length in
    characters costs under this tokenizer."""

    name = "uuid-chars-per-token"
    targets = ("pipeline", "tokenizer")

    sample: int | None = attrs.field(
        default=3, validator=_optional_positive, metadata={"doc": "texts per kind and length; None: 3"}
    )
    lengths: tuple[int, ...] = attrs.field(
        default=(1000, 8000, 32000),
        converter=tuple,
        validator=_lengths,
        metadata={"doc": "text lengths in characters"},
    )
    kinds: tuple[str, ...] = attrs.field(
        default=TEXT_KINDS,
        converter=tuple,
        validator=_names(TEXT_KINDS),
        metadata={"doc": "which texts: " + ", ".join(TEXT_KINDS)},
    )
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={"doc": "seed of the texts"})

    def run(self, target: Any, *, quick: bool = False) -> Report:
        tokenizer = self.tokenizer_of(target)
        lengths = self.lengths[:1] if quick else self.lengths
        repeats = 1 if quick else (self.sample or 3)
        cells = [(kind, n, r) for kind in self.kinds for n in lengths for r in range(repeats)]
        counts: dict[tuple[str, int], list[tuple[int, int]]] = {}
        unknown = dict.fromkeys(self.kinds, 0)
        for kind, n, r in progress(cells, total=len(cells), desc="uuid-chars-per-token", unit="text"):
            text = _text(kind, n, random.Random(f"uuid-chars-per-token:{self.seed}:{kind}:{n}:{r}"))
            ids = tokenizer.encode(text).ids
            counts.setdefault((kind, n), []).append((len(text), len(ids)))
            unknown[kind] += sum(1 for i in ids if i == tokenizer.unk_id)
        rows, metrics = [], {}
        for kind in self.kinds:
            total_chars = sum(c for n in lengths for c, _ in counts[(kind, n)])
            total_tokens = sum(t for n in lengths for _, t in counts[(kind, n)])
            if total_tokens == 0:
                raise ConfigError(
                    f"tokenizer '{tokenizer.name}' encodes {kind} text to no tokens",
                    component=f"evaluation '{self.name}'",
                )
            metrics[f"chars_per_token_{kind.replace('-', '_')}"] = total_chars / total_tokens
            for n in lengths:
                c = sum(x for x, _ in counts[(kind, n)])
                t = sum(y for _, y in counts[(kind, n)])
                rows.append((kind, n, c, t, round(c / t, 4)))
            if unknown[kind]:
                metrics[f"unknown_tokens_{kind.replace('-', '_')}"] = unknown[kind]
        # an unknown token stands for text the tokenizer cannot spell: said, never hidden in a ratio
        unknown_note = (
            [
                f"unknown tokens: {', '.join(f'{k} {v}' for k, v in unknown.items() if v)} (the tokenizer "
                "cannot spell that text; its characters per token there are not a length)"
            ]
            if any(unknown.values())
            else []
        )
        series = (
            Series(
                "chars per token",
                list(self.kinds),
                [metrics[f"chars_per_token_{k.replace('-', '_')}"] for k in self.kinds],
                plot="bar",
                x_label="text",
                y_label="characters per token",
            ),
        )
        return Report(
            name=self.name,
            metrics=metrics,
            tables=(
                Table(
                    "characters per token",
                    ("text", "length", "chars", "tokens", "chars per token"),
                    tuple(rows),
                ),
            ),
            series=series,
            notes=(
                f"tokenizer '{tokenizer.name}'; {repeats} text(s) per kind and length, seed "
                f"{self.seed}; uuid-json is a Needle Threading haystack; uuid, hex and digits are "
                "space-separated UUIDs, dashless UUIDs and 10-digit numbers",
                *unknown_note,
            ),
        )
