"""The ``dahsf`` benchmark (``tokensmith bench dahsf``): digestion in a hierarchical symbolic
forest (DAHSF, Kevin You, arXiv 2412.14054) against zero-shot semantic parsing by a small LM
(SmolLM2-135M-Instruct, greedy decoding with a prompt describing the commands), on the same
commands, in one run:

* accuracy: exact template + slot values, on paraphrases the forest generates by the
  multiplication rule and on hand-written commands (some outside the forest's coverage);
* time per command, and the ratio LM / forest;
* memory: the Python heap the compiled forest holds (tracemalloc) against the LM's weights;
* the multiplication rule: trie nodes of a forest with k slots against the entries of a
  phrasebook of every sentence (Σ m_i against Π m_i).
"""

from __future__ import annotations

import re
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    Report,
    Series,
    Table,
    best_of,
    chatml_prompt,
    has_chatml,
    positive_int,
    progress,
    ratio,
    tensor_bytes,
)

from .forest import Forest, Parse
from .paraphrase import count, phrasebook, product_forest, sample
from .stage import check_forest_ref, forest_source, load_forest

#: commands written by hand for the shipped 'home' forest, with their parses; the ones marked
#: False are outside what the forest covers (a word or a construction it has no rule for)
HANDWRITTEN: tuple[tuple[str, Parse, bool], ...] = (
    ("Hey, could you switch the kitchen lights on?", Parse("LIGHTS_ON", {"room": "KITCHEN"}), True),
    ("It's too dark in the bedroom", Parse("LIGHTS_ON", {"room": "BEDROOM"}), False),
    (
        "Set the heating in the bathroom to 23 degrees",
        Parse("SET_TEMPERATURE", {"room": "BATHROOM", "degrees": "23"}),
        True,
    ),
    (
        "Please make it 19 degrees in the office",
        Parse("SET_TEMPERATURE", {"room": "OFFICE", "degrees": "19"}),
        False,
    ),
    ("start a countdown for 15 minutes", Parse("SET_TIMER", {"minutes": "15"}), True),
    ("put on something by Daft Punk", Parse("PLAY_MUSIC", {"artist": "Daft Punk"}), True),
    ("I want to hear Nina Simone", Parse("PLAY_MUSIC", {"artist": "Nina Simone"}), False),
    ("open the garage door please", Parse("UNLOCK_DOOR", {"door": "GARAGE_DOOR"}), True),
    ("Lock up the back door", Parse("LOCK_DOOR", {"door": "BACK_DOOR"}), False),
    (
        "don't let me forget to feed the cat at 6:30",
        Parse("REMINDER", {"task": "feed the cat", "when": "6:30"}),
        True,
    ),
    ("how's the weather in Tokyo", Parse("WEATHER_REPORT", {"city": "Tokyo"}), True),
    ("Will it rain in London?", Parse("WEATHER_REPORT", {"city": "London"}), False),
    ("turn off every light in the living room", Parse("LIGHTS_OFF", {"room": "LIVING_ROOM"}), False),
    ("kill the lamps in the garage", Parse("LIGHTS_OFF", {"room": "GARAGE"}), True),
)

_SLOT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)(?=\s*,?\s+[A-Za-z_][A-Za-z0-9_]*\s*=|\s*$)")


def schema_prompt(forest: Forest) -> str:
    """The zero-shot instruction: every command with its slots and what each slot holds."""
    lines = [
        f"You turn requests to a {forest.description or forest.name} assistant into commands.",
        "The commands, each with its slots:",
    ]
    kinds: dict[str, str] = {}
    for template in forest.templates:
        slots = []
        for slot in forest.slot_names(template):
            item = forest.slot_item(template, slot)
            kind = item.key[1:] if item.is_data else item.key
            slots.append(f"{slot}=<{kind}>")
            if not item.is_data:
                kinds[kind] = f"{kind} is one of {', '.join(forest.slot_values(template, slot))}."
            else:
                kinds.setdefault(kind, f"<{kind}> is copied from the request as written.")
        lines.append(" ".join([template, *slots]))
    lines += sorted(kinds.values())
    lines.append(
        "Reply with one line: the command name, then slot=value for each of its slots. Nothing else."
    )
    return "\n".join(lines)


def read_answer(text: str, templates: Sequence[str]) -> Parse | None:
    """The parse in an LM's reply, read leniently: the first command name of the forest that
    appears as a word, and the ``slot=value`` pairs after it on its line."""
    names = re.compile(r"\b(" + "|".join(map(re.escape, sorted(templates, key=len, reverse=True))) + r")\b")
    for line in text.splitlines():
        match = names.search(line)
        if match:
            rest = line[match.end() :].strip().strip("`")
            slots = {k: v.strip().strip("\"'<>[]{}()`.,;") for k, v in _SLOT.findall(rest)}
            return Parse(match.group(1), slots)
    return None


def same_parse(got: Parse | None, gold: Parse) -> bool:
    """Exact template; slot values equal up to case and surrounding whitespace."""
    if got is None or got.template != gold.template or set(got.slots) != set(gold.slots):
        return False
    return all(got.slots[k].strip().casefold() == v.strip().casefold() for k, v in gold.slots.items())


def _show(parse: Parse | None) -> str:
    if parse is None:
        return "(none)"
    return " ".join([parse.template, *(f"{k}={v}" for k, v in parse.slots.items())])


def retained_bytes(build: Callable[[], Any]) -> tuple[Any, int]:
    """What ``build()`` returns and the Python heap it still holds afterwards (tracemalloc)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        built = build()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return built, held


@attrs.define
class DAHSFBenchmark(Benchmark):
    """Forest digestion vs zero-shot LM parsing of the same commands: accuracy, time, memory."""

    name = "dahsf"
    model: str = attrs.field(default="smollm2", metadata={"doc": "the LM parsing zero-shot (a model source)"})
    forest: str = attrs.field(
        default="home",
        validator=check_forest_ref,
        metadata={"doc": "a shipped forest's name or a forest TOML path"},
    )
    commands: int = attrs.field(
        default=36,
        validator=positive_int,
        metadata={"doc": "paraphrases generated by the multiplication rule (quick: 4)"},
    )
    max_new_tokens: int = attrs.field(
        default=24, validator=positive_int, metadata={"doc": "the LM's budget per answer"}
    )
    seed: int = attrs.field(default=0, metadata={"doc": "seed of the sampled paraphrases"})
    threads: int = attrs.field(
        default=1,
        validator=positive_int,
        metadata={"doc": "CPU threads of the LM (1: the same one core DAHSF digests on)"},
    )
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        forest = load_forest(self.forest, component=f"benchmark '{self.name}'")
        source = forest_source(self.forest)
        _, forest_bytes = retained_bytes(lambda: Forest.from_toml(source, name=forest.name))
        generated = sample(forest, 4 if quick else self.commands, seed=self.seed)
        handwritten = [h for h in HANDWRITTEN if forest.name == "home"][: 3 if quick else None]
        sets = {
            "generated": [(e.text, e.parse) for e in generated],
            "handwritten": [(text, gold) for text, gold, _ in handwritten],
        }
        texts = [text for rows in sets.values() for text, _ in rows]

        repeats = 3 if quick else 10
        dahsf_s = best_of(lambda: [forest.digest(t) for t in texts], repeats=repeats).best / len(texts)
        # CPU time as well as wall time: on a shared machine the wall clock of a long LM pass
        # counts the time other processes held the cores
        dahsf_cpu_s = best_of(
            lambda: [forest.digest(t) for t in texts], repeats=repeats, clock=time.process_time
        ).best / len(texts)
        dahsf = {t: forest.digest(t).parse for t in texts}
        idempotent = sum(forest.normalize(forest.normalize(t)) == forest.normalize(t) for t in texts)
        canonical = sum(forest.normalize(e.text) == forest.render_parse(e.parse) for e in generated)

        pipeline = self.cpu_pipeline(self.model, threads=self.threads, seed=self.seed)
        decoder = self.registry().build("decoder", "greedy")
        tokenizer, system = pipeline.tokenizer, schema_prompt(forest)

        def prompt(text: str) -> str:
            if has_chatml(tokenizer):
                return chatml_prompt(tokenizer, text, system=system, component=f"benchmark '{self.name}'")
            return f"{system}\nRequest: {text}\nCommand:"

        decoder.generate(pipeline.lm, prompt(texts[0]), max_new_tokens=self.max_new_tokens)  # warm-up
        replies: dict[str, str] = {}
        lm_seconds = lm_cpu_seconds = 0.0
        for text in progress(texts, total=len(texts), desc="SmolLM2 zero-shot parsing", unit="command"):
            start, cpu_start = time.perf_counter(), time.process_time()
            replies[text] = decoder.generate(
                pipeline.lm, prompt(text), max_new_tokens=self.max_new_tokens
            ).text
            lm_seconds += time.perf_counter() - start
            lm_cpu_seconds += time.process_time() - cpu_start
        lm_s, lm_cpu_s = lm_seconds / len(texts), lm_cpu_seconds / len(texts)
        lm = {t: read_answer(r, forest.templates) for t, r in replies.items()}
        model_bytes = tensor_bytes(pipeline.model, modules=True)

        metrics: dict[str, float | int] = {
            "commands": len(texts),
            "generated_commands": len(generated),
            "handwritten_commands": len(handwritten),
        }
        for label, rows in sets.items():
            if not rows:
                continue
            metrics[f"dahsf_accuracy_{label}"] = sum(same_parse(dahsf[t], g) for t, g in rows) / len(rows)
            metrics[f"lm_accuracy_{label}"] = sum(same_parse(lm[t], g) for t, g in rows) / len(rows)
            metrics[f"lm_template_accuracy_{label}"] = sum(
                lm[t] is not None and lm[t].template == g.template for t, g in rows
            ) / len(rows)
        if handwritten:
            covered = [(t, g) for t, g, inside in handwritten if inside]
            metrics["handwritten_inside_coverage"] = len(covered)
            metrics["dahsf_accuracy_handwritten_inside"] = sum(
                same_parse(dahsf[t], g) for t, g in covered
            ) / max(1, len(covered))
        metrics |= {
            "dahsf_ms_per_command": 1e3 * dahsf_s,
            "lm_ms_per_command": 1e3 * lm_s,
            "lm_over_dahsf_time": ratio(lm_s, dahsf_s),
            "dahsf_cpu_ms_per_command": 1e3 * dahsf_cpu_s,
            "lm_cpu_ms_per_command": 1e3 * lm_cpu_s,
            "lm_over_dahsf_cpu_time": ratio(lm_cpu_s, dahsf_cpu_s),
            "forest_bytes": forest_bytes,
            "lm_weight_bytes": model_bytes,
            "lm_over_dahsf_memory": ratio(model_bytes, forest_bytes),
            "idempotent_fraction": idempotent / len(texts),
            "canonical_form_fraction": canonical / len(generated),
            **{f"forest_{k}": v for k, v in forest.structure_size().items()},
            "forest_sentences_covered": sum(count(forest, t) for t in forest.templates),
        }

        sizes, size_rows = self._size_curve(quick)
        rows = [
            (label, text, _show(gold), _show(dahsf[text]), replies[text].strip().replace("\n", " / ")[:120])
            for label, items in sets.items()
            for text, gold in items
        ]
        series = (
            Series(
                "DAHSF accuracy",
                tuple(sets),
                tuple(metrics.get(f"dahsf_accuracy_{k}", 0.0) for k in sets),
                y_label="exact parses",
                plot="bar",
                group="accuracy",
            ),
            Series(
                f"{self.model} accuracy",
                tuple(sets),
                tuple(metrics.get(f"lm_accuracy_{k}", 0.0) for k in sets),
                y_label="exact parses",
                plot="bar",
                group="accuracy",
            ),
            Series(
                "ms per command",
                ("DAHSF", self.model),
                (1e3 * dahsf_s, 1e3 * lm_s),
                y_label="ms",
                plot="bar",
                group="time per command",
                log_y=True,
            ),
            Series(
                "bytes held",
                ("DAHSF forest", f"{self.model} weights"),
                (float(forest_bytes), float(model_bytes)),
                y_label="bytes",
                plot="bar",
                group="memory",
                log_y=True,
            ),
            Series(
                "forest trie nodes",
                sizes,
                tuple(float(r[2]) for r in size_rows),
                x_label="slots (5 values each)",
                y_label="entries",
                group="multiplication rule",
                log_y=True,
            ),
            Series(
                "phrasebook entries",
                sizes,
                tuple(float(r[3]) for r in size_rows),
                x_label="slots (5 values each)",
                y_label="entries",
                group="multiplication rule",
                log_y=True,
            ),
        )
        return Report(
            name=self.name,
            metrics=metrics,
            tables=(
                Table("commands", ("set", "command", "gold", "DAHSF", f"{self.model} reply"), tuple(rows)),
                Table(
                    "multiplication rule: k slots of 5 values",
                    (
                        "slots",
                        "sentences",
                        "forest trie nodes",
                        "phrasebook entries",
                        "forest bytes",
                        "phrasebook bytes",
                    ),
                    tuple(size_rows),
                ),
            ),
            series=series,
            notes=(
                f"{self.model}: zero-shot, greedy, at most {self.max_new_tokens} new tokens, on the CPU with "
                f"{self.threads} threads; the prompt lists every command with its slots and the values of "
                "the categories (schema_prompt), with the ChatML template when the tokenizer has it",
                "accuracy is the exact template and every slot value (values compared up to case)",
                "generated commands come from the forest itself (the multiplication rule), so DAHSF covers "
                "them by construction; the hand-written ones include commands outside its rules",
                "DAHSF time: best of the repeated digestion of all commands; LM time: one timed pass after a "
                "warm-up generation; wall clock (ms_per_command) and process CPU time (cpu_ms_per_command)",
                "forest bytes: the Python heap the compiled forest holds (tracemalloc); LM bytes: its weight "
                "tensors",
            ),
        )

    @staticmethod
    def _size_curve(quick: bool) -> tuple[tuple[float, ...], list[tuple[int, int, int, int, int, int]]]:
        rows = []
        for k in range(1, 4 if quick else 7):
            forest, forest_bytes = retained_bytes(lambda k=k: product_forest([5] * k))
            book, book_bytes = retained_bytes(lambda f=forest: phrasebook(f))
            rows.append(
                (
                    k,
                    count(forest, "COMMAND"),
                    forest.structure_size()["trie_nodes"],
                    len(book),
                    forest_bytes,
                    book_bytes,
                )
            )
        return tuple(float(r[0]) for r in rows), rows
