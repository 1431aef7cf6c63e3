"""The Decoder interface: a LanguageModel (and optionally a Constraint) to text."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .constraint import Constraint
from .language_model import LanguageModel
from .records import Generation


class Decoder(ABC):
    """Turns next-token distributions into a :class:`Generation`.

    Decoders that cannot honour a constraint must say so in their registration
    record (``accepts_constraint=False``); the pipeline then rejects the pair
    before anything runs.
    """

    name: str = "decoder"

    @abstractmethod
    def generate(self, lm: LanguageModel, prompt: str, *, max_new_tokens: int = 32,
                 constraint: Constraint | None = None, seed: int | None = None) -> Generation: ...
