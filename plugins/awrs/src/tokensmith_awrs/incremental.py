"""Constraints checked byte by byte from a cached prefix state.

AWRS (Lipkin et al., arXiv 2504.05410) evaluates the constraint on the current
prefix extended by one candidate token, many times per step. Re-reading the
whole prefix for each candidate would make one check cost O(prefix), so the
constraints of this plugin are automata: the state after the prefix is cached
once, and a check walks only the candidate's bytes through a memoised
transition table. Every call of :meth:`allows_after` is one counted check,
like :meth:`tokensmith.Constraint.allows`.

The memo is bounded: a lazily determinised automaton can have exponentially
many states (``(a|b)*a(a|b){20}`` has 2^21), so once the interned states and
cached transitions outgrow :attr:`IncrementalConstraint.memo_budget` the memo is
dropped and rebuilt on demand — the answers stay the same, only the work is redone.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable

import attrs

from tokensmith import AllOf, AnyOf, Constraint

#: state id of a prefix that can no longer be completed
DEAD = -1


@attrs.define
class IncrementalConstraint(Constraint):
    """A constraint given as a deterministic automaton over bytes.

    Subclasses describe the automaton on hashable *keys* — :meth:`_start_key`,
    :meth:`_step` (``None`` for dead) and :meth:`_is_final` — and may weigh a key by
    its size (:meth:`_key_size`, for the memo budget); this class numbers the keys
    (``int`` ids, :data:`DEAD` for dead) and memoises the transitions. A live key
    must always be completable to an accepted string, so ``allows`` is exact.
    """

    #: cached prefixes (a prefix's state is looked up once per sampling step): at most this
    #: many, holding at most ``_cache_bytes`` bytes of prefixes (a prefix grows with the text)
    _cache_limit = 4096
    _cache_bytes = 16 << 20
    #: interned key sizes plus cached transitions past which the memo is rebuilt
    memo_budget = 2_000_000
    _delta: dict[int, int] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _prefix_states: dict[bytes, int] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _keys: list[Hashable] = attrs.field(factory=list, init=False, repr=False, eq=False)
    _ids: dict[Hashable, int] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _memo_used: int = attrs.field(default=0, init=False, repr=False, eq=False)
    _prefix_bytes: int = attrs.field(default=0, init=False, repr=False, eq=False)

    @abstractmethod
    def _start_key(self) -> Hashable: ...

    @abstractmethod
    def _step(self, key: Hashable, byte: int) -> Hashable | None:
        """The key after ``byte``, or ``None`` when no accepted string continues this way."""

    @abstractmethod
    def _is_final(self, key: Hashable) -> bool:
        """Is the string read so far accepted as it is?"""

    def _key_size(self, key: Hashable) -> int:
        return 1

    # -- interning and the memo ------------------------------------------------
    def _intern(self, key: Hashable | None) -> int:
        if key is None:
            return DEAD
        sid = self._ids.get(key)
        if sid is None:
            sid = self._ids[key] = len(self._keys)
            self._keys.append(key)
            self._memo_used += self._key_size(key)
        return sid

    def _reset_memo(self) -> None:
        self._delta.clear()
        self._prefix_states.clear()
        self._prefix_bytes = 0
        self._keys.clear()
        self._ids.clear()
        self._memo_used = 0

    def _initial(self) -> int:
        if not self._keys:  # the start key is id 0 until the memo is rebuilt
            return self._intern(self._start_key())
        return 0

    def walk(self, state: int, data: bytes) -> int:
        state, _ = self._run(state, data)
        return state

    def _run(self, state: int, data: bytes) -> tuple[int, int]:
        """The state after ``data`` from ``state`` and how many bytes were read: at the first byte
        that kills the walk, ``(DEAD, its index)``; else ``(the state, len(data))``."""
        delta, keys = self._delta, self._keys
        for j, byte in enumerate(data):
            code = (state << 8) | byte
            nxt = delta.get(code)
            if nxt is None:
                nxt = delta[code] = self._intern(self._step(keys[state], byte))
                self._memo_used += 1
            if nxt == DEAD:
                return DEAD, j
            state = nxt
        return state, len(data)

    def state_of(self, prefix: bytes) -> int:
        """The state id after ``prefix``, valid until the next call of this method (the memo
        is rebuilt here, never in the middle of a walk, when it outgrew its budget)."""
        if self._memo_used > self.memo_budget:
            self._reset_memo()
        state = self._prefix_states.get(prefix)
        if state is None:
            state = self.walk(self._initial(), prefix)
            if len(self._prefix_states) >= self._cache_limit \
                    or self._prefix_bytes + len(prefix) > self._cache_bytes:
                self._prefix_states.clear()
                self._prefix_bytes = 0
            self._prefix_states[prefix] = state
            self._prefix_bytes += len(prefix)
        return state

    def _allows(self, prefix: bytes) -> bool:
        return self.state_of(prefix) != DEAD

    def _accepts(self, text: bytes) -> bool:
        state = self.state_of(text)
        return state != DEAD and self._is_final(self._keys[state])

    def allows_after(self, prefix: bytes, piece: bytes) -> bool:
        """``allows(prefix + piece)`` reading only ``piece`` (one counted check)."""
        self.checks += 1
        state = self.state_of(prefix)
        return state != DEAD and self.walk(state, piece) != DEAD

    def live_length_after(self, prefix: bytes, piece: bytes) -> int:
        """One counted check, like :meth:`allows_after`, that also says where the walk died:
        ``len(piece)`` when ``prefix + piece`` is allowed, else the ``j`` such that
        ``prefix + piece[:j]`` is allowed and ``prefix + piece[:j + 1]`` is not (``-1`` when
        ``prefix`` itself is dead). Since ``allows`` is prefix-closed, every string that starts
        with ``prefix + piece[:j + 1]`` is rejected too: the sampler drops those tokens unchecked."""
        self.checks += 1
        state = self.state_of(prefix)
        if state == DEAD:
            return -1
        _, read = self._run(state, piece)
        return read


def allows_after(constraint: Constraint, prefix: bytes, piece: bytes) -> bool:
    """One counted check of ``prefix + piece``, incremental where the constraint allows it.

    ``&`` and ``|`` combinations are evaluated part by part through
    :meth:`tokensmith.AllOf.through_parts`, so their ``checks`` count every part's
    evaluations, exactly as their own ``allows`` does.
    """
    if isinstance(constraint, IncrementalConstraint):
        return constraint.allows_after(prefix, piece)
    if isinstance(constraint, (AllOf, AnyOf)):
        return constraint.through_parts(lambda part: allows_after(part, prefix, piece))
    return constraint.allows(prefix + piece)
