"""Constraints checked byte by byte from a cached prefix state.

AWRS (Lipkin et al., arXiv 2504.05410) evaluates the constraint on the current
prefix extended by one candidate token, many times per step. Re-reading the
whole prefix for each candidate would make one check cost O(prefix), so the
constraints of this plugin are automata: the state after the prefix is cached
once, and a check walks only the candidate's bytes through a memoised
transition table. Every call of :meth:`allows_after` is one counted check,
like :meth:`tokensmith.Constraint.allows`.
"""

from __future__ import annotations

from abc import abstractmethod

import attrs

from tokensmith import AllOf, AnyOf, Constraint

#: state id of a prefix that can no longer be completed
DEAD = -1


@attrs.define
class IncrementalConstraint(Constraint):
    """A constraint given as a deterministic automaton over bytes.

    Subclasses number their states (``int`` ids, :data:`DEAD` for dead) and
    implement :meth:`_initial`, :meth:`_next` and :meth:`_final`; a live state
    must always be completable to an accepted string, so ``allows`` is exact.
    """

    _cache_limit = 4096
    _delta: dict[int, int] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _prefix_states: dict[bytes, int] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    @abstractmethod
    def _initial(self) -> int: ...

    @abstractmethod
    def _next(self, state: int, byte: int) -> int:
        """The state after ``byte`` (uncached), or :data:`DEAD`."""

    @abstractmethod
    def _final(self, state: int) -> bool:
        """Is the string read so far accepted as it is?"""

    def walk(self, state: int, data: bytes) -> int:
        delta = self._delta
        for byte in data:
            key = (state << 8) | byte
            nxt = delta.get(key)
            if nxt is None:
                nxt = delta[key] = self._next(state, byte)
            if nxt == DEAD:
                return DEAD
            state = nxt
        return state

    def state_of(self, prefix: bytes) -> int:
        state = self._prefix_states.get(prefix)
        if state is None:
            state = self.walk(self._initial(), prefix)
            if len(self._prefix_states) >= self._cache_limit:
                self._prefix_states.clear()
            self._prefix_states[prefix] = state
        return state

    def _allows(self, prefix: bytes) -> bool:
        return self.state_of(prefix) != DEAD

    def _accepts(self, text: bytes) -> bool:
        state = self.state_of(text)
        return state != DEAD and self._final(state)

    def allows_after(self, prefix: bytes, piece: bytes) -> bool:
        """``allows(prefix + piece)`` reading only ``piece`` (one counted check)."""
        self.checks += 1
        state = self.state_of(prefix)
        return state != DEAD and self.walk(state, piece) != DEAD


def allows_after(constraint: Constraint, prefix: bytes, piece: bytes) -> bool:
    """One counted check of ``prefix + piece``, incremental where the constraint allows it.

    ``&`` and ``|`` combinations count one check themselves and one per part
    they evaluate, exactly as :class:`tokensmith.AllOf`/:class:`~tokensmith.AnyOf` do.
    """
    if isinstance(constraint, IncrementalConstraint):
        return constraint.allows_after(prefix, piece)
    if isinstance(constraint, AllOf):
        constraint.checks += 1
        return all(allows_after(part, prefix, piece) for part in constraint.parts)
    if isinstance(constraint, AnyOf):
        constraint.checks += 1
        return any(allows_after(part, prefix, piece) for part in constraint.parts)
    return constraint.allows(prefix + piece)
