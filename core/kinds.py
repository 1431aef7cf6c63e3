"""The further component kinds: small interfaces, one job each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

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


class Objective(ABC):
    """A loss, reward, or token weighting used in training."""

    name: str = "objective"

    @abstractmethod
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...


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
