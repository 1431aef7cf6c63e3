"""Three BIG-bench tasks read straight from the ``bigbench==1.0.0`` source distribution with
``tarfile`` — the package is never installed (its install pulls TensorFlow-era pins).

The sdist is a 358 MB ``.tar.gz`` (1.8 GB inside): it is read as a stream, member after
member, and each task file is parsed only when reached, so asking for 100 examples reads up
to the first task file that holds them and stops. ``natural_instructions`` (61 subtasks,
193k examples) sits about 1.4 GB into the stream, ``squad_shifts`` about 1.6 GB.
Fetch it once (no network at load time)::

    pip download --no-deps --no-binary :all: bigbench==1.0.0 -d ~/.cache/tokensmith/data
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from tokensmith import DataUnavailableError

from .locate import archive, malformed
from .source import Source, path_field

_PACKAGE = "bigbench"
_TASKS = re.compile(r"^[^/]+/bigbench/benchmark_tasks/(.+)$")


def task_members(
    sdist: Path, folder: str, wanted: Callable[[str], bool], component: str
) -> Iterator[tuple[str, Any]]:
    """``(path under benchmark_tasks/, parsed JSON)`` of the members of ``folder`` that
    ``wanted`` selects, in the archive's order, read as a stream: nothing past the member being
    consumed is decompressed, and reading stops after the folder's last member."""
    where = "the start of the archive"
    inside = False
    try:
        # gzip.open, not tarfile's own "r|gz": a truncated stream must raise, not end early
        with gzip.open(sdist, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                where = f"member {member.name}"
                match = _TASKS.match(member.name)
                name = match.group(1) if match is not None else ""
                if name == folder or name.startswith(folder + "/"):
                    inside = True
                elif inside:
                    return
                if not member.isfile() or not inside or not wanted(name):
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                try:
                    parsed = json.loads(data)
                except json.JSONDecodeError as exc:
                    raise malformed(
                        sdist, f"{where}, line {exc.lineno}", f"bad JSON: {exc.msg}", _PACKAGE, component
                    ) from None
                except UnicodeDecodeError:
                    raise malformed(sdist, where, "not UTF-8", _PACKAGE, component) from None
                yield name, parsed
    except DataUnavailableError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise malformed(
            sdist,
            f"after {where}",
            f"the archive is truncated or corrupt ({type(exc).__name__}: {exc})",
            _PACKAGE,
            component,
        ) from None


def _examples(task: Any, sdist: Path, name: str, component: str) -> list[Any]:
    examples = task.get("examples") if isinstance(task, dict) else None
    if not isinstance(examples, list):
        raise malformed(sdist, f"member {name}", "no 'examples' list", _PACKAGE, component)
    return examples


@attrs.define(kw_only=True)
class _BigBench(Source):
    package = _PACKAGE
    licence = "Apache-2.0 (BIG-bench); each task's sources keep their own licences"

    sdist: Path | None = path_field(
        "bigbench-1.0.0.tar.gz (default: $TOKENSMITH_BIGBENCH_SDIST, else the "
        "newest bigbench-*.tar.gz in the data directory)"
    )

    def locate(self) -> Path:
        return archive(
            self.sdist, "TOKENSMITH_BIGBENCH_SDIST", "bigbench-*.tar.gz", self.package, self.component
        )


@attrs.define(kw_only=True)
class NaturalInstructions(_BigBench):
    """BIG-bench ``natural_instructions`` (Mishra et al. 2022): 61 crowdsourcing subtasks, each
    an instruction with input/output examples (193k in all), for instruction tuning."""

    name = "natural-instructions"
    fields = {
        "task": "the subtask (e.g. 'subtask001_quoref_question_generation')",
        "instruction": "the subtask's instruction (its task_prefix, else its description)",
        "input": "the example's input",
        "output": "the first reference output",
        "targets": "every reference output (tuple)",
    }

    def read(self, sdist: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        def wanted(name: str) -> bool:
            return name.startswith("natural_instructions/subtask") and name.endswith("/task.json")

        for name, task in task_members(sdist, "natural_instructions", wanted, self.component):
            subtask = name.split("/")[1]
            instruction = str(task.get("task_prefix") or task.get("description") or "").strip()
            for index, example in enumerate(_examples(task, sdist, name, self.component)):
                target = example.get("target") if isinstance(example, dict) else None
                targets = tuple(target) if isinstance(target, list) else (target,)
                if (
                    not isinstance(example.get("input"), str)
                    or not targets
                    or not all(isinstance(t, str) for t in targets)
                ):
                    raise malformed(
                        sdist,
                        f"member {name}, example {index}",
                        "no string input/target",
                        self.package,
                        self.component,
                    )
                yield (
                    f"{subtask}/{index}",
                    {
                        "task": subtask,
                        "instruction": instruction,
                        "input": example["input"],
                        "output": targets[0],
                        "targets": targets,
                    },
                )


_DOMAINS = {
    "squaddev": "squaddev_v1.1.json",
    "new_wiki": "new_wiki_v1.0.json",
    "nyt": "nyt_v1.0.json",
    "reddit": "reddit_v1.0.json",
    "amazon_reviews": "amazon_reviews_v1.0.json",
}


@attrs.define(kw_only=True)
class SquadShifts(_BigBench):
    """BIG-bench ``squad_shifts`` (Miller et al. 2020): extractive questions with the gold
    paragraph, from the SQuAD v1.1 dev set (10,570 questions) or four new domains."""

    name = "squad-shifts"
    fields = {
        "id": "the question id",
        "title": "the article title",
        "context": "the gold paragraph",
        "question": "the question",
        "answers": "the reference answer spans (tuple)",
    }

    domain: Literal["squaddev", "new_wiki", "nyt", "reddit", "amazon_reviews"] = attrs.field(
        default="squaddev",
        metadata={"doc": "SQuAD dev (Wikipedia), or new Wikipedia / NYT / Reddit / Amazon-review paragraphs"},
    )

    def read(self, sdist: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        member = f"squad_shifts/{_DOMAINS[self.domain]}"
        found = False
        for name, data in task_members(sdist, "squad_shifts", lambda n: n == member, self.component):
            found = True
            articles = data.get("data") if isinstance(data, dict) else None
            if not isinstance(articles, list):
                raise malformed(
                    sdist, f"member {name}", "no 'data' list (SQuAD format)", self.package, self.component
                )
            for article in articles:
                title = str(article.get("title", "")).strip()
                for paragraph in article.get("paragraphs", ()):
                    context = str(paragraph.get("context", "")).strip()
                    for qa in paragraph.get("qas", ()):
                        answers = tuple(str(a.get("text", "")).strip() for a in qa.get("answers", ()))
                        yield (
                            str(qa["id"]),
                            {
                                "id": str(qa["id"]),
                                "title": title,
                                "context": context,
                                "question": str(qa.get("question", "")).strip(),
                                "answers": answers,
                            },
                        )
        if not found:
            raise malformed(
                sdist, "contents", f"no member .../benchmark_tasks/{member}", self.package, self.component
            )


_VARIANTS = (
    "question_only",
    "question_with_mathematical_hint",
    "question_with_language_hint",
    "mathematical_hint_only",
    "language_hint_only",
)


@attrs.define(kw_only=True)
class ElementaryMathQA(_BigBench):
    """BIG-bench ``elementary_math_qa`` (from MathQA, Amini et al. 2019): 7,688 multiple-choice
    math word problems, with the correct choice as the answer."""

    name = "elementary-math-qa"
    fields = {
        "question": "the problem as the variant presents it (with its hint, if any)",
        "choices": "the five options (tuple of strings)",
        "answer": "the correct option",
    }

    variant: Literal[
        "question_only",
        "question_with_mathematical_hint",
        "question_with_language_hint",
        "mathematical_hint_only",
        "language_hint_only",
    ] = attrs.field(
        default="question_only",
        metadata={
            "doc": "which BIG-bench subtask: the question alone, or with a "
            "hint (an operation sequence or a sentence)"
        },
    )

    def read(self, sdist: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        member = f"elementary_math_qa/{self.variant}/task.json"
        found = False
        for name, task in task_members(
            sdist, f"elementary_math_qa/{self.variant}", lambda n: n == member, self.component
        ):
            found = True
            for index, example in enumerate(_examples(task, sdist, name, self.component)):
                scores = example.get("target_scores") if isinstance(example, dict) else None
                right = [c for c, s in scores.items() if s == 1] if isinstance(scores, dict) else []
                if len(right) != 1 or not isinstance(example.get("input"), str):
                    raise malformed(
                        sdist,
                        f"member {name}, example {index}",
                        "expected an input and target_scores with exactly one correct choice",
                        self.package,
                        self.component,
                    )
                yield (
                    str(index),
                    {"question": example["input"].strip(), "choices": tuple(scores), "answer": right[0]},
                )
        if not found:
            raise malformed(
                sdist, "contents", f"no member .../benchmark_tasks/{member}", self.package, self.component
            )
