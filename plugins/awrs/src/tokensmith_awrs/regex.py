"""Regular-expression constraint: an exact prefix-viability check on UTF-8 bytes.

Constraint for AWRS (Lipkin et al., arXiv 2504.05410). The pattern (Python
``re`` syntax, parsed by ``re``'s own parser) is compiled into a Thompson NFA
over *bytes*: every code-point class becomes the UTF-8 byte sequences of its
ranges, so a prefix cut in the middle of a character is read like any other
prefix. NFA states that cannot reach the accepting state are dropped, so the
lazily determinised DFA state of a prefix is empty exactly when the prefix
cannot be completed.

Meaning: ``accepts(s)`` iff ``s`` is valid UTF-8 and
``re.fullmatch(pattern, s.decode())``; ``allows(p)`` iff some accepted string
starts with ``p``. Features that are not regular or depend on position
(backreferences, lookaround, ``\\b``, conditionals, possessive/atomic groups,
``re.IGNORECASE``, anchors anywhere but at the very start or end) are
refused with a :class:`~tokensmith.ConfigError`.
"""

from __future__ import annotations

import re
from functools import cache

# re's own parser (Python >= 3.11 names), so the syntax and its errors are exactly re's
from re import _constants as sre_c
from re import _parser as sre_parse
from typing import Annotated, Any

import attrs

from tokensmith import ConfigError

from .incremental import DEAD, IncrementalConstraint

MAX_CODE_POINT = 0x10FFFF
_MAX_REPEAT_EXPANSION = 1000
_COMPONENT = "constraint 'regex'"


def _error(message: str, hint: str | None = None) -> ConfigError:
    return ConfigError(message, component=_COMPONENT, hint=hint)


# -- code-point sets -------------------------------------------------------

Ranges = tuple[tuple[int, int], ...]


def _normalize(ranges) -> Ranges:
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def _complement(ranges: Ranges) -> Ranges:
    out, start = [], 0
    for lo, hi in ranges:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODE_POINT:
        out.append((start, MAX_CODE_POINT))
    return tuple(out)


@cache
def _unicode_category(name: str) -> Ranges:
    """The code points ``re`` puts in \\d, \\s, \\w for str patterns (sre's own predicates)."""
    test = {"digit": str.isdecimal, "space": str.isspace,
            "word": lambda ch: ch.isalnum() or ch == "_"}[name]
    points = [cp for cp in range(MAX_CODE_POINT + 1) if test(chr(cp))]
    return _normalize((cp, cp) for cp in points)


_ASCII_CATEGORY: dict[str, Ranges] = {
    "digit": ((0x30, 0x39),),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "word": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
}
_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: ("digit", False), sre_c.CATEGORY_NOT_DIGIT: ("digit", True),
    sre_c.CATEGORY_SPACE: ("space", False), sre_c.CATEGORY_NOT_SPACE: ("space", True),
    sre_c.CATEGORY_WORD: ("word", False), sre_c.CATEGORY_NOT_WORD: ("word", True),
}


def utf8_sequences(lo: int, hi: int) -> list[tuple[tuple[int, int], ...]]:
    """Byte-range sequences whose concatenations are exactly the UTF-8 encodings of
    the code points ``lo..hi`` (surrogates excluded: UTF-8 cannot encode them)."""
    out, stack = [], [(lo, hi)]
    while stack:
        lo, hi = stack.pop()
        if lo > hi:
            continue
        if lo <= 0xDFFF and hi >= 0xD800:
            stack += [(lo, 0xD7FF), (0xE000, hi)]
            continue
        split = next((b for b in (0x7F, 0x7FF, 0xFFFF) if lo <= b < hi), None)
        if split is not None:
            stack += [(lo, split), (split + 1, hi)]
            continue
        if hi <= 0x7F:
            out.append(((lo, hi),))
            continue
        n = len(chr(lo).encode("utf-8"))
        for i in range(1, n):
            # make every trailing 6-bit group span its full range, so the byte
            # positions are independent and a product of ranges is exact
            m = (1 << (6 * i)) - 1
            if lo & ~m != hi & ~m:
                if lo & m:
                    stack += [(lo, lo | m), ((lo | m) + 1, hi)]
                    break
                if hi & m != m:
                    stack += [(lo, (hi & ~m) - 1), (hi & ~m, hi)]
                    break
        else:
            a, b = chr(lo).encode("utf-8"), chr(hi).encode("utf-8")
            out.append(tuple(zip(a, b)))
    return out


# -- NFA ---------------------------------------------------------------------

class _NFA:
    def __init__(self) -> None:
        self.edges: list[list[tuple[int, int, int]]] = []
        self.eps: list[list[int]] = []

    def state(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def code_points(self, ranges: Ranges, start: int, end: int) -> None:
        for lo, hi in ranges:
            for seq in utf8_sequences(lo, hi):
                here = start
                for k, (blo, bhi) in enumerate(seq):
                    there = end if k == len(seq) - 1 else self.state()
                    self.edges[here].append((blo, bhi, there))
                    here = there


class _Compiler:
    """Thompson construction from ``re``'s parse tree."""

    def __init__(self, flags: int) -> None:
        self.nfa = _NFA()
        self.flags = flags

    def category(self, code) -> Ranges:
        if code not in _CATEGORIES:
            raise _error(f"unsupported character category {code}")
        name, negated = _CATEGORIES[code]
        ranges = _ASCII_CATEGORY[name] if self.flags & re.ASCII else _unicode_category(name)
        return _complement(ranges) if negated else ranges

    def charset(self, items) -> Ranges:
        ranges, negate = [], False
        for op, av in items:
            if op is sre_c.NEGATE:
                negate = True
            elif op is sre_c.LITERAL:
                ranges.append((av, av))
            elif op is sre_c.RANGE:
                ranges.append(av)
            elif op is sre_c.CATEGORY:
                ranges += self.category(av)
            else:
                raise _error(f"unsupported item {op} in a character class")
        out = _normalize(ranges)
        return _complement(out) if negate else out

    def sequence(self, items, start: int, flags: int) -> int:
        here = start
        for op, av in items:
            here = self.item(op, av, here, flags)
        return here

    def item(self, op, av, start: int, flags: int) -> int:
        nfa = self.nfa
        if op is sre_c.LITERAL:
            return self.ranges(((av, av),), start)
        if op is sre_c.NOT_LITERAL:
            return self.ranges(_complement(((av, av),)), start)
        if op is sre_c.ANY:
            every = ((0, MAX_CODE_POINT),)
            return self.ranges(every if flags & re.DOTALL else _complement(((10, 10),)), start)
        if op is sre_c.IN:
            return self.ranges(self.charset(av), start)
        if op is sre_c.SUBPATTERN:
            _group, add, remove, sub = av
            if add & re.IGNORECASE:
                raise _error("case-insensitive matching (?i) is not supported",
                             hint="spell both cases out, e.g. [Aa]")
            return self.sequence(sub, start, (flags | add) & ~remove)
        if op is sre_c.BRANCH:
            end = nfa.state()
            for alt in av[1]:
                s = nfa.state()
                nfa.eps[start].append(s)
                nfa.eps[self.sequence(alt, s, flags)].append(end)
            return end
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            lo, hi, sub = av
            if lo > _MAX_REPEAT_EXPANSION or (hi is not sre_c.MAXREPEAT and hi > _MAX_REPEAT_EXPANSION):
                raise _error(f"repetition bounds above {_MAX_REPEAT_EXPANSION} are not supported")
            here = start
            for _ in range(lo):
                here = self.sequence(sub, here, flags)
            if hi is sre_c.MAXREPEAT:
                loop = nfa.state()
                nfa.eps[here].append(loop)
                nfa.eps[self.sequence(sub, loop, flags)].append(loop)
                return loop
            end = nfa.state()
            for _ in range(hi - lo):
                nfa.eps[here].append(end)
                here = self.sequence(sub, here, flags)
            nfa.eps[here].append(end)
            return end
        names = {sre_c.GROUPREF: "backreferences", sre_c.ASSERT: "lookahead/lookbehind",
                 sre_c.ASSERT_NOT: "negative lookaround", sre_c.GROUPREF_EXISTS: "conditionals",
                 sre_c.AT: "anchors or \\b inside the pattern"}
        what = names.get(op, str(op).lower().replace("_", " "))
        hint = "anchors ^/$/\\A/\\Z are allowed only at the very start/end" if op is sre_c.AT else None
        raise _error(f"{what} are not supported by the regex constraint (it must be a regular language)",
                     hint=hint)

    def ranges(self, ranges: Ranges, start: int) -> int:
        end = self.nfa.state()
        self.nfa.code_points(ranges, start, end)
        return end


_BEGIN = (sre_c.AT_BEGINNING, sre_c.AT_BEGINNING_STRING)
_END = (sre_c.AT_END, sre_c.AT_END_STRING)


def _strip_anchors(items: list) -> list:
    """Under full-match semantics a leading ^/\\A and a trailing $/\\Z change nothing."""
    items = list(items)
    if len(items) == 1 and items[0][0] is sre_c.BRANCH:
        alts = [_strip_anchors(alt) for alt in items[0][1][1]]
        return [(sre_c.BRANCH, (None, alts))]
    if items and items[0][0] is sre_c.AT and items[0][1] in _BEGIN:
        items = items[1:]
    if items and items[-1][0] is sre_c.AT and items[-1][1] in _END:
        items = items[:-1]
    return items


def parse_pattern(pattern: str):
    """``re``'s parse tree of ``pattern`` and its global flags; a ConfigError if invalid."""
    if not isinstance(pattern, str):
        raise _error(f"the pattern must be a str, got {type(pattern).__name__}")
    try:
        tree = sre_parse.parse(pattern, 0)
    except re.error as exc:
        raise _error(f"invalid regular expression {pattern!r}: {exc}") from None
    flags = tree.state.flags
    if flags & re.IGNORECASE:
        raise _error("case-insensitive matching (?i) is not supported",
                     hint="spell both cases out, e.g. [Aa]")
    return tree, flags


def compile_nfa(pattern: str) -> tuple[_NFA, int, int]:
    """Build the NFA of ``pattern``: (nfa, start state, accepting state)."""
    tree, flags = parse_pattern(pattern)
    compiler = _Compiler(flags)
    start = compiler.nfa.state()
    accept = compiler.sequence(_strip_anchors(list(tree)), start, flags)
    return compiler.nfa, start, accept


def _compiles(instance: Any, attribute: Any, value: str) -> None:
    """Validator (the registry's, at validation time): ``value`` compiles. The registry names
    the component, so the message goes without it."""
    try:
        compile_nfa(value)
    except ConfigError as exc:
        raise ValueError(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None


@attrs.define
class RegexConstraint(IncrementalConstraint):
    """Byte strings whose UTF-8 text fully matches ``pattern``.

    Built directly, an invalid pattern is a :class:`~tokensmith.ConfigError` naming
    the component; through the registry, ``_compiles`` refuses it before anything loads.
    """

    name = "regex"

    pattern: Annotated[str, _compiles] = attrs.field(metadata={
        "doc": "a Python regular expression the whole text must match (re.fullmatch)"})
    _edges: list[list[tuple[int, int, int]]] = attrs.field(init=False, repr=False, eq=False)
    _eps: list[list[int]] = attrs.field(init=False, repr=False, eq=False)
    _accept: int = attrs.field(init=False, repr=False, eq=False)
    _live: frozenset[int] = attrs.field(init=False, repr=False, eq=False)
    _sets: list[frozenset[int]] = attrs.field(factory=list, init=False, repr=False, eq=False)
    _ids: dict[frozenset[int], int] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _start: int = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        nfa, start, self._accept = compile_nfa(self.pattern)
        self._edges = nfa.edges
        self._eps = nfa.eps
        self._live = self._co_reachable(nfa, self._accept)
        self._start = self._intern(self._closure({start}))

    @staticmethod
    def _co_reachable(nfa: _NFA, accept: int) -> frozenset[int]:
        back: list[list[int]] = [[] for _ in nfa.edges]
        for s, (edges, eps) in enumerate(zip(nfa.edges, nfa.eps)):
            for _lo, _hi, t in edges:
                back[t].append(s)
            for t in eps:
                back[t].append(s)
        live, todo = {accept}, [accept]
        while todo:
            for s in back[todo.pop()]:
                if s not in live:
                    live.add(s)
                    todo.append(s)
        return frozenset(live)

    def _closure(self, states) -> frozenset[int]:
        out, todo = set(states), list(states)
        while todo:
            for t in self._eps[todo.pop()]:
                if t not in out:
                    out.add(t)
                    todo.append(t)
        return frozenset(out & self._live)

    def _intern(self, states: frozenset[int]) -> int:
        if not states:
            return DEAD
        sid = self._ids.get(states)
        if sid is None:
            sid = self._ids[states] = len(self._sets)
            self._sets.append(states)
        return sid

    def _initial(self) -> int:
        return self._start

    def _next(self, state: int, byte: int) -> int:
        targets = {t for s in self._sets[state] for lo, hi, t in self._edges[s] if lo <= byte <= hi}
        return self._intern(self._closure(targets))

    def _final(self, state: int) -> bool:
        return self._accept in self._sets[state]
