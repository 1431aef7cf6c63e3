"""Constraints: predicates on byte prefixes, composable, every evaluation counted.

What a constraint *means* is the set of complete byte strings it accepts;
``allows(prefix)`` says whether ``prefix`` can still be extended to one of
them. How a decoder *uses* a constraint (masking, rejection sampling, SMC) is
the decoder's business.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from .errors import InputError


class Constraint(ABC):
    """Subclasses implement :meth:`_allows` and :meth:`_accepts`; callers use the
    counted :meth:`allows` and :meth:`accepts`. A subclass needs no ``__init__`` of
    its own (an attrs class with the constraint's parameters is the usual form):
    ``checks`` starts at the class default 0."""

    name: str = "constraint"
    #: counted evaluations of allows/accepts since the last reset_counters()
    checks: int = 0

    @abstractmethod
    def _allows(self, prefix: bytes) -> bool: ...

    def _accepts(self, text: bytes) -> bool:
        return self._allows(text)

    def allows(self, prefix: bytes) -> bool:
        """Can ``prefix`` be extended to an accepted string? (one counted check)"""
        if not isinstance(prefix, (bytes, bytearray)):
            raise InputError(f"constraints take bytes, got {type(prefix).__name__}",
                             component=f"constraint '{self.name}'", hint="pass text.encode('utf-8')")
        self.checks += 1
        return bool(self._allows(bytes(prefix)))

    def accepts(self, text: bytes) -> bool:
        """Is ``text`` a complete accepted string? (one counted check)"""
        if not isinstance(text, (bytes, bytearray)):
            raise InputError(f"constraints take bytes, got {type(text).__name__}",
                             component=f"constraint '{self.name}'", hint="pass text.encode('utf-8')")
        self.checks += 1
        return bool(self._accepts(bytes(text)))

    def reset_counters(self) -> None:
        self.checks = 0

    def __and__(self, other: Constraint) -> Constraint:
        return AllOf(self, other)

    def __or__(self, other: Constraint) -> Constraint:
        return AnyOf(self, other)


class FunctionConstraint(Constraint):
    """Any Python callable on byte prefixes (and optionally on complete strings)."""

    def __init__(self, allows: Callable[[bytes], bool],
                 accepts: Callable[[bytes], bool] | None = None, name: str = "function") -> None:
        self._allows_fn = allows
        self._accepts_fn = accepts or allows
        self.name = name

    def _allows(self, prefix: bytes) -> bool:
        return self._allows_fn(prefix)

    def _accepts(self, text: bytes) -> bool:
        return self._accepts_fn(text)


class _Combination(Constraint):
    """A constraint made of parts. ``checks`` counts every evaluation of every part (a part
    that is itself a combination contributes its own parts' count), so a decoder's
    ``constraint_checks`` is the work the parts did, not the number of combined calls. A part
    evaluated through a method that does not count (a subclass overriding ``allows``) still
    counts one check per evaluation."""

    def __init__(self, *parts: Constraint) -> None:
        self.parts = parts

    def count_part(self, part: Constraint, evaluate: Callable[[Constraint], bool]) -> bool:
        """``evaluate(part)``, adding the part's checks it caused to this combination's."""
        before = part.checks
        try:
            return bool(evaluate(part))
        finally:
            self.checks += max(part.checks - before, 1)

    @abstractmethod
    def through_parts(self, evaluate: Callable[[Constraint], bool]) -> bool:
        """Combine ``evaluate(part)`` over the parts (short-circuiting), counting every
        part's checks: how a decoder evaluates a combination with its own per-part check
        (e.g. an incremental one) and keeps the count honest."""

    def allows(self, prefix: bytes) -> bool:
        if not isinstance(prefix, (bytes, bytearray)):
            raise InputError(f"constraints take bytes, got {type(prefix).__name__}",
                             component=f"constraint '{self.name}'", hint="pass text.encode('utf-8')")
        data = bytes(prefix)
        return self.through_parts(lambda part: part.allows(data))

    def accepts(self, text: bytes) -> bool:
        if not isinstance(text, (bytes, bytearray)):
            raise InputError(f"constraints take bytes, got {type(text).__name__}",
                             component=f"constraint '{self.name}'", hint="pass text.encode('utf-8')")
        data = bytes(text)
        return self.through_parts(lambda part: part.accepts(data))

    def reset_counters(self) -> None:
        self.checks = 0
        for part in self.parts:
            part.reset_counters()


class AllOf(_Combination):
    """Intersection. Short-circuits; ``checks`` counts every part's evaluations."""

    def __init__(self, *parts: Constraint) -> None:
        super().__init__(*parts)
        self.name = " & ".join(p.name for p in parts)

    def through_parts(self, evaluate: Callable[[Constraint], bool]) -> bool:
        return all(self.count_part(p, evaluate) for p in self.parts)

    def _allows(self, prefix: bytes) -> bool:
        return all(p.allows(prefix) for p in self.parts)

    def _accepts(self, text: bytes) -> bool:
        return all(p.accepts(text) for p in self.parts)


class AnyOf(_Combination):
    """Union. Short-circuits; ``checks`` counts every part's evaluations."""

    def __init__(self, *parts: Constraint) -> None:
        super().__init__(*parts)
        self.name = " | ".join(p.name for p in parts)

    def through_parts(self, evaluate: Callable[[Constraint], bool]) -> bool:
        return any(self.count_part(p, evaluate) for p in self.parts)

    def _allows(self, prefix: bytes) -> bool:
        return any(p.allows(prefix) for p in self.parts)

    def _accepts(self, text: bytes) -> bool:
        return any(p.accepts(text) for p in self.parts)
