"""The component kinds: the table of every kind a plugin can register (one place), and the
small interfaces of the kinds beyond the four main ones, one job each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .constraint import Constraint
from .dataset import Dataset
from .decoding import Decoder
from .embedding import EmbeddingProvider
from .normalization import NormalizationProvider
from .objectives import Objective
from .recipe import Recipe
from .tokenizer import Tokenizer


class TokenizerStage(ABC):
    """A text normalizer run before tokenization (NFKC, symbolic rewriting...)."""

    name: str = "stage"

    @abstractmethod
    def normalize(self, text: str) -> str: ...


class TokenizerTrainer(ABC):
    """Learns a :class:`Tokenizer` from texts."""

    name: str = "trainer"

    @abstractmethod
    def train(self, texts: Iterable[str]) -> Tokenizer: ...


@attrs.frozen
class EvaluationReport:
    name: str
    metrics: Mapping[str, float]
    details: Mapping[str, Any] = attrs.field(factory=dict)


class Evaluation(ABC):
    """Generates tasks, scores a pipeline on them, returns a report."""

    name: str = "evaluation"

    @abstractmethod
    def run(self, pipeline: Any) -> EvaluationReport: ...


class Benchmark(ABC):
    """A measurement of a technique against its baseline in the same run (``tokensmith bench``)."""

    name: str = "benchmark"

    @abstractmethod
    def run(self, *, quick: bool = False) -> Any: ...


class Attribution(ABC):
    """Assigns importance to input tokens for a model's prediction."""

    name: str = "attribution"

    @abstractmethod
    def attribute(self, lm: Any, text: str, target: str) -> Any: ...


class Architecture(ABC):
    """Builds a model a technique defines (returns an ``nn.Module``)."""

    name: str = "architecture"

    @abstractmethod
    def build(self, runtime: Any) -> Any: ...


class Demo(ABC):
    """A section of ``tokensmith demo``: shows what a plugin does against the baseline."""

    name: str = "demo"

    @abstractmethod
    def run(self, pipeline: Any, out: Any) -> Mapping[str, Any]:
        """Print to ``out`` (a text stream) and return the numbers shown."""


@attrs.frozen
class Kind:
    """One component kind: its name, the interface a built component implements, the
    registration hook that returns its records, and the pipeline slot it fills (if any).

    A built object passes the interface check if it is an instance of ``interface``
    or (duck typing) has every attribute in ``members``.
    """

    name: str
    interface: type
    hook: str
    members: tuple[str, ...]
    slot: str | None = None
    summary: str = ""

    def conforms(self, obj: Any) -> bool:
        if isinstance(obj, self.interface):
            return True
        return all(callable(getattr(obj, m, None)) or hasattr(obj, m) for m in self.members) \
            and not isinstance(obj, (type, str, bytes, int, float, bool, type(None)))


#: Every kind, in the order pipelines use them. Adding a kind: a row here, its hookspec in
#: tokensmith.spec.hookspecs, its interface in tokensmith.__all__ and a section in
#: docs/hooks.md (tests/test_meta.py checks that they agree).
KIND_TABLE: tuple[Kind, ...] = (
    Kind("tokenizer", Tokenizer, "tokensmith_register_tokenizers",
         ("encode", "decode", "token_bytes", "vocab_size"), "tokenizer", "text <-> ids with a byte view"),
    Kind("tokenizer_stage", TokenizerStage, "tokensmith_register_tokenizer_stages", ("normalize",),
         "stages", "a text normalizer run before tokenization"),
    Kind("tokenizer_trainer", TokenizerTrainer, "tokensmith_register_tokenizer_trainers", ("train",),
         None, "learns a tokenizer from texts"),
    Kind("embedding", EmbeddingProvider, "tokensmith_register_embeddings", ("apply",), "embedding",
         "builds and installs an embedding module"),
    Kind("normalization", NormalizationProvider, "tokensmith_register_normalizations", ("replace",),
         "normalization", "norm modules and norm surgery"),
    Kind("decoder", Decoder, "tokensmith_register_decoders", ("generate",), "decoder",
         "turns next-token distributions into text"),
    Kind("constraint", Constraint, "tokensmith_register_constraints", ("allows", "accepts", "reset_counters"),
         "constraint", "a predicate on byte prefixes"),
    Kind("objective", Objective, "tokensmith_register_objectives", ("role", "__call__"), "objective",
         "a loss, token weights or mask, reward or advantage"),
    Kind("recipe", Recipe, "tokensmith_register_recipes", ("prepare", "callbacks"), None,
         "a training procedure run by the core recipe runner"),
    Kind("dataset", Dataset, "tokensmith_register_datasets", ("examples",), None,
         "an offline corpus or task set with seeded splits"),
    Kind("evaluation", Evaluation, "tokensmith_register_evaluations", ("run",), "evaluation",
         "scores a pipeline on generated tasks"),
    Kind("benchmark", Benchmark, "tokensmith_register_benchmarks", ("run",), None,
         "a technique measured against its baseline in the same run"),
    Kind("attribution", Attribution, "tokensmith_register_attributions", ("attribute",), None,
         "importance of input tokens for a prediction"),
    Kind("architecture", Architecture, "tokensmith_register_architectures", ("build",), None,
         "a model a technique defines"),
    Kind("demo", Demo, "tokensmith_register_demos", ("run",), None, "a section of `tokensmith demo`"),
)

KINDS: tuple[str, ...] = tuple(k.name for k in KIND_TABLE)
KIND_BY_NAME: dict[str, Kind] = {k.name: k for k in KIND_TABLE}

#: The capabilities a component may require of its pipeline (``Component.requires``); any
#: other name is refused when the plugin registers.
REQUIREMENTS: dict[str, str] = {
    "byte_view": "a tokenizer with a byte view (Tokenizer.has_byte_view)",
    "causal_lm": "a causal language model (the pipeline's lm)",
}
