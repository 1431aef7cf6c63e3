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
refused with a :class:`~tokensmith.ConfigError`, as is a pattern that matches
nothing (``[^\\s\\S]``).

Bounds: the NFA's size is computed from the parse tree before anything is
allocated (nested counted repetitions multiply: ``((a{1000}){1000}){1000}``
would be a billion states) and refused beyond ``max_states`` with a
:class:`~tokensmith.ResourceLimitError`. Built for a pipeline (with a
``BuildContext``), the automaton is restricted to the bytes the tokenizer's
vocabulary can produce, and a pattern none of whose strings it can produce is an
:class:`~tokensmith.IncompatibleComponentsError` naming the missing bytes.
"""

from __future__ import annotations

import re
from functools import cache

# re's own parser (Python >= 3.11 names), so the syntax and its errors are exactly re's
from re import _constants as sre_c
from re import _parser as sre_parse
from typing import Annotated, Any

import attrs

from tokensmith import BuildContext, ConfigError, IncompatibleComponentsError, ResourceLimitError

from .incremental import IncrementalConstraint

MAX_CODE_POINT = 0x10FFFF
#: default bound on the NFA's states (~400 bytes and ~5 microseconds to build each)
MAX_STATES = 100_000
#: the largest ``max_states`` accepted (~2 GB): patterns beyond it are refused at validation
MAX_STATES_CEILING = 5_000_000
#: groups, repeats and alternations nested deeper than this are refused (the compiler recurses)
MAX_NESTING = 100
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

@cache
def _sequences(ranges: Ranges) -> tuple[tuple[tuple[int, int], ...], ...]:
    return tuple(seq for lo, hi in ranges for seq in utf8_sequences(lo, hi))


class _NFA:
    def __init__(self) -> None:
        self.edges: list[list[tuple[int, int, int]]] = []
        self.eps: list[list[int]] = []

    def state(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def code_points(self, ranges: Ranges, start: int, end: int) -> None:
        for seq in _sequences(ranges):
            here = start
            for k, (blo, bhi) in enumerate(seq):
                there = end if k == len(seq) - 1 else self.state()
                self.edges[here].append((blo, bhi, there))
                here = there

    def co_reachable(self, accept: int) -> frozenset[int]:
        """The states from which ``accept`` can be reached."""
        back: list[list[int]] = [[] for _ in self.edges]
        for s, (edges, eps) in enumerate(zip(self.edges, self.eps)):
            for _lo, _hi, t in edges:
                back[t].append(s)
            for t in eps:
                back[t].append(s)
        return _search(accept, back)

    def reachable(self, start: int) -> frozenset[int]:
        forward = [[t for _lo, _hi, t in edges] + eps for edges, eps in zip(self.edges, self.eps)]
        return _search(start, forward)

    def restricted(self, allowed: frozenset[int]) -> _NFA:
        """The same automaton with only the byte values in ``allowed`` on its edges."""
        runs = _normalize((v, v) for v in allowed)  # maximal runs (lo, hi) of allowed bytes
        out = _NFA()
        out.eps = self.eps
        out.edges = [[(max(lo, a), min(hi, b), t) for lo, hi, t in edges for a, b in runs
                      if max(lo, a) <= min(hi, b)] for edges in self.edges]
        return out


def _search(root: int, graph: list[list[int]]) -> frozenset[int]:
    seen, todo = {root}, [root]
    while todo:
        for t in graph[todo.pop()]:
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return frozenset(seen)


class _Compiler:
    """Thompson construction from ``re``'s parse tree, and its size computed beforehand."""

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

    def leaf(self, op, av, flags: int) -> Ranges | None:
        """The code points of a one-character item; ``None`` for any other item."""
        if op is sre_c.LITERAL:
            return ((av, av),)
        if op is sre_c.NOT_LITERAL:
            return _complement(((av, av),))
        if op is sre_c.ANY:
            return ((0, MAX_CODE_POINT),) if flags & re.DOTALL else _complement(((10, 10),))
        if op is sre_c.IN:
            return self.charset(av)
        return None

    @staticmethod
    def subpattern_flags(av, flags: int) -> int:
        _group, add, remove, _sub = av
        if add & re.IGNORECASE:
            raise _error("case-insensitive matching (?i) is not supported",
                         hint="spell both cases out, e.g. [Aa]")
        return (flags | add) & ~remove

    # -- the size, from the parse tree (nothing allocated) ---------------------
    def measure(self, items, flags: int, depth: int = 0) -> tuple[int, bool]:
        """``(states, matches something)``: how many states :meth:`sequence` allocates for
        ``items`` and whether their language is non-empty, computed without building."""
        if depth > MAX_NESTING:
            raise ResourceLimitError(f"the pattern is nested more than {MAX_NESTING} levels deep",
                                     component=_COMPONENT, hint="flatten the groups of the pattern")
        states, nonempty = 0, True
        for op, av in items:
            ranges = self.leaf(op, av, flags)
            if ranges is not None:
                seqs = _sequences(ranges)
                n, ok = 1 + sum(len(seq) - 1 for seq in seqs), bool(seqs)
            elif op is sre_c.SUBPATTERN:
                n, ok = self.measure(av[3], self.subpattern_flags(av, flags), depth + 1)
            elif op is sre_c.BRANCH:
                parts = [self.measure(alt, flags, depth + 1) for alt in av[1]]
                n, ok = 1 + sum(1 + k for k, _ in parts), any(good for _, good in parts)
            elif op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
                lo, hi, sub = av
                k, good = self.measure(sub, flags, depth + 1)
                n = lo * k + (1 + k if hi is sre_c.MAXREPEAT else 1 + (hi - lo) * k)
                ok = good or lo == 0
            else:
                raise self.unsupported(op)
            states += n
            nonempty = nonempty and ok
        return states, nonempty

    # -- the construction --------------------------------------------------
    def sequence(self, items, start: int, flags: int) -> int:
        here = start
        for op, av in items:
            here = self.item(op, av, here, flags)
        return here

    def item(self, op, av, start: int, flags: int) -> int:
        nfa = self.nfa
        ranges = self.leaf(op, av, flags)
        if ranges is not None:
            end = nfa.state()
            nfa.code_points(ranges, start, end)
            return end
        if op is sre_c.SUBPATTERN:
            return self.sequence(av[3], start, self.subpattern_flags(av, flags))
        if op is sre_c.BRANCH:
            end = nfa.state()
            for alt in av[1]:
                s = nfa.state()
                nfa.eps[start].append(s)
                nfa.eps[self.sequence(alt, s, flags)].append(end)
            return end
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT):
            lo, hi, sub = av
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
        raise self.unsupported(op)

    @staticmethod
    def unsupported(op) -> ConfigError:
        names = {sre_c.GROUPREF: "backreferences", sre_c.ASSERT: "lookahead/lookbehind",
                 sre_c.ASSERT_NOT: "negative lookaround", sre_c.GROUPREF_EXISTS: "conditionals",
                 sre_c.AT: "anchors or \\b inside the pattern"}
        what = names.get(op, str(op).lower().replace("_", " "))
        hint = "anchors ^/$/\\A/\\Z are allowed only at the very start/end" if op is sre_c.AT else None
        return _error(f"{what} are not supported by the regex constraint (it must be a regular language)",
                      hint=hint)


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
    except RecursionError:  # re's parser recurses once per nested group
        raise ResourceLimitError("the pattern is nested too deeply for re's parser", component=_COMPONENT,
                                 hint=f"at most {MAX_NESTING} nested groups are supported") from None
    flags = tree.state.flags
    if flags & re.IGNORECASE:
        raise _error("case-insensitive matching (?i) is not supported",
                     hint="spell both cases out, e.g. [Aa]")
    return tree, flags


def _too_many_states(states: int, limit: int, *, ceiling: bool) -> ResourceLimitError:
    bound = f"the most max_states allows ({limit:,})" if ceiling else f"max_states={limit:,}"
    hint = "nested counted repetitions multiply: (a{100}){100} alone is 10,000 states; simplify the pattern"
    if not ceiling:
        hint += f" or raise max_states (at most {MAX_STATES_CEILING:,}; ~400 bytes per state)"
    return ResourceLimitError(f"the pattern's automaton needs {states:,} states, more than {bound}",
                              component=_COMPONENT, hint=hint)


def _matches_nothing() -> ConfigError:
    return _error("the pattern matches no string (its language is empty)",
                  hint="an empty character class such as [^\\s\\S], or only surrogates, matches nothing")


def measure_pattern(pattern: str) -> tuple[int, bool]:
    """``(states, matches something)`` of ``pattern``'s NFA, from its parse tree alone."""
    tree, flags = parse_pattern(pattern)
    states, nonempty = _Compiler(flags).measure(_strip_anchors(list(tree)), flags)
    return 1 + states, nonempty


def compile_nfa(pattern: str, max_states: int = MAX_STATES) -> tuple[_NFA, int, int]:
    """Build the NFA of ``pattern``: (nfa, start state, accepting state). Its size is checked
    against ``max_states`` before anything is built; a pattern matching nothing is refused."""
    tree, flags = parse_pattern(pattern)
    compiler = _Compiler(flags)
    items = _strip_anchors(list(tree))
    states, nonempty = compiler.measure(items, flags)
    if 1 + states > max_states:
        raise _too_many_states(1 + states, max_states, ceiling=False)
    if not nonempty:
        raise _matches_nothing()
    start = compiler.nfa.state()
    accept = compiler.sequence(items, start, flags)
    return compiler.nfa, start, accept


def _compiles(instance: Any, attribute: Any, value: str) -> None:
    """Validator (the registry's, at validation time): ``value`` parses into a supported,
    non-empty pattern whose automaton fits the largest ``max_states`` — measured on the parse
    tree, nothing is built (the configured ``max_states`` is checked by ``check_parameters``).
    The registry names the component, so the message goes without it."""
    try:
        states, nonempty = measure_pattern(value)
        if states > MAX_STATES_CEILING:
            raise _too_many_states(states, MAX_STATES_CEILING, ceiling=True)
        if not nonempty:
            raise _matches_nothing()
    except (ConfigError, ResourceLimitError) as exc:
        raise ValueError(exc.message + (f"; {exc.hint}" if exc.hint else "")) from None


def _states_bound(instance: Any, attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STATES_CEILING:
        raise ResourceLimitError(f"{attribute.name} must be an int in 1..{MAX_STATES_CEILING:,}, "
                                 f"got {value!r}", component=_COMPONENT)


def producible_bytes(tokenizer: Any) -> frozenset[int]:
    """The byte values that occur in some token's bytes (what generated text can contain)."""
    seen: set[int] = set()
    for piece in tokenizer.byte_table:
        if piece:
            seen.update(piece)
            if len(seen) == 256:
                break
    return frozenset(seen)


@attrs.define
class RegexConstraint(IncrementalConstraint):
    """Byte strings whose UTF-8 text fully matches ``pattern``.

    Built directly, an invalid pattern is a :class:`~tokensmith.ConfigError` naming
    the component, one whose automaton needs more than ``max_states`` states a
    :class:`~tokensmith.ResourceLimitError`; through the registry, ``_compiles`` refuses
    what no ``max_states`` allows before anything loads. With ``ctx`` (built for a
    pipeline) only the bytes the tokenizer's vocabulary contains are read, and a pattern
    that needs others is an :class:`~tokensmith.IncompatibleComponentsError`.
    """

    name = "regex"

    pattern: Annotated[str, _compiles] = attrs.field(metadata={
        "doc": "a Python regular expression the whole text must match (re.fullmatch)"})
    max_states: int = attrs.field(default=MAX_STATES, validator=_states_bound, metadata={
        "doc": f"bound on the pattern's automaton (states; nested repeats multiply), at most "
               f"{MAX_STATES_CEILING:,}"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)
    _edges: list[list[tuple[int, int, int]]] = attrs.field(init=False, repr=False, eq=False)
    _eps: list[list[int]] = attrs.field(init=False, repr=False, eq=False)
    _start: int = attrs.field(init=False, repr=False, eq=False)
    _accept: int = attrs.field(init=False, repr=False, eq=False)
    _live: frozenset[int] = attrs.field(init=False, repr=False, eq=False)
    _alphabet: frozenset[int] = attrs.field(init=False, repr=False, eq=False)
    _anywhere: frozenset[int] = attrs.field(init=False, repr=False, eq=False)
    _anywhere_memo: dict = attrs.field(init=False, repr=False, eq=False)

    @staticmethod
    def check_parameters(values: dict[str, Any]) -> None:
        """At validation: the pattern's automaton fits the configured ``max_states``."""
        states, _ = measure_pattern(values["pattern"])
        if 1 + states > values["max_states"]:
            exc = _too_many_states(1 + states, values["max_states"], ceiling=False)
            raise ValueError(exc.message + (f"; {exc.hint}" if exc.hint else ""))

    def __attrs_post_init__(self) -> None:
        nfa, self._start, self._accept = compile_nfa(self.pattern, self.max_states)
        tokenizer = self.ctx.tokenizer if self.ctx is not None else None
        if tokenizer is not None and getattr(tokenizer, "has_byte_view", False):
            nfa = self._restrict(nfa, tokenizer)
        self._edges = nfa.edges
        self._eps = nfa.eps
        self._live = nfa.co_reachable(self._accept)
        reached = nfa.reachable(self._start)
        self._alphabet = frozenset(b for s in reached for lo, hi, t in nfa.edges[s] if t in self._live
                                   for b in range(lo, hi + 1))
        self._anywhere = self._closure(reached)
        self._anywhere_memo = {}

    def _restrict(self, nfa: _NFA, tokenizer: Any) -> _NFA:
        """``nfa`` reading only bytes some token contains; an error when it then accepts nothing."""
        allowed = producible_bytes(tokenizer)
        if len(allowed) == 256:
            return nfa
        restricted = nfa.restricted(allowed)
        if self._start in restricted.co_reachable(self._accept):
            return restricted
        live, reached = nfa.co_reachable(self._accept), nfa.reachable(self._start)
        needed = sorted({b for s in reached for lo, hi, t in nfa.edges[s] if t in live
                         for b in range(lo, hi + 1) if b not in allowed})
        raise IncompatibleComponentsError(
            f"no string matching {self.pattern!r} can be generated with tokenizer "
            f"'{getattr(tokenizer, 'name', type(tokenizer).__name__)}': every match needs one of the "
            f"bytes {bytes(needed).hex(' ')}, and no token contains them", component=_COMPONENT,
            hint="tokenizer.unrepresentable_bytes lists the missing bytes; change the pattern or the model")

    def byte_alphabet(self) -> frozenset[int]:
        """The bytes some accepted string contains: the labels of the edges between states
        that are reachable from the start and can still reach the accept state (decoders
        prune tokens with any other byte, a priori)."""
        return self._alphabet

    def can_occur(self, piece: bytes) -> bool:
        """Can ``piece`` occur anywhere inside an accepted string? Its bytes are walked from the
        set of every live reachable state at once, so a false answer holds after any prefix:
        decoders prune such tokens a priori (finer than the alphabet: a token of Unicode-digit
        bytes in the wrong order is refused too)."""
        key: frozenset[int] | None = self._anywhere
        memo = self._anywhere_memo
        for byte in piece:
            nxt = memo.get((key, byte), ())
            if nxt == ():
                nxt = memo[(key, byte)] = self._step(key, byte)
            if nxt is None:
                return False
            key = nxt
        return True

    def _closure(self, states) -> frozenset[int]:
        out, todo = set(states), list(states)
        while todo:
            for t in self._eps[todo.pop()]:
                if t not in out:
                    out.add(t)
                    todo.append(t)
        return frozenset(out & self._live)

    def _start_key(self) -> frozenset[int] | None:
        return self._closure({self._start}) or None

    def _step(self, key: frozenset[int], byte: int) -> frozenset[int] | None:
        targets = {t for s in key for lo, hi, t in self._edges[s] if lo <= byte <= hi}
        return self._closure(targets) or None

    def _is_final(self, key: frozenset[int]) -> bool:
        return self._accept in key

    def _key_size(self, key: frozenset[int]) -> int:
        return len(key)
