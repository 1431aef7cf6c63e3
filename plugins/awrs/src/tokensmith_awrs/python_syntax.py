"""Python-syntax constraint: CPython's parser decides, a witness completion proves a prefix.

Constraint for AWRS (Lipkin et al., arXiv 2504.05410). Python's grammar has no
prefix-viability check in the standard library (``codeop`` only recognises
input that is incomplete *at a line end*: ``"x = 1 +"`` is a syntax error to
it), so this constraint defines prefix validity by a witness:

* ``accepts(s)``: ``s`` is UTF-8 and CPython's parser accepts it as a module
  (``ast.parse(s)``: the grammar, not later compiler passes such as
  "'return' outside function").
* ``allows(p)``: some string of a finite, explicit candidate set ``S(p)``
  completes ``p`` into a string the parser accepts. ``S(p)`` closes an open
  string literal or comment, then tries a few fillers for a dangling operand
  or a partially typed keyword, closes the open brackets, and ends a block
  header; :meth:`PythonConstraint.completion` returns the witness (bytes).

So ``allows`` is *sound* (every allowed prefix can be completed: the witness
parses) but not complete: a prefix that needs a completion outside
``S(p)`` is refused. The README reports how many prefixes of real code
(``tokensmith_awrs`` itself) are allowed. Checks are memoised per prefix.
"""

from __future__ import annotations

import ast
import keyword
import warnings

import attrs

from tokensmith import Constraint

_OPEN = {"(": ")", "[": "]", "{": "}"}
#: what may be missing before the brackets close: nothing, an operand, the rest of a clause
_FILLERS = ("", "0", " 0", "=0", "''", "x", " x", " in x", " x in x", " x else 0", " f()", " import x",
            " x import x", "():0", "*x", "> x", " def f():0")
#: what may follow a keyword completed from a partially typed name
_AFTER_KEYWORD = (" x", " x in x", " x else 0", " x import x", " x():0", ":0", "")
#: what may be missing after the brackets close
_ENDINGS = ("", ":0", ":pass", " pass", "pass", "\n pass", ":pass\nexcept:pass", "\nexcept:pass",
            "\ndef f():pass", " else 0")


def _scan(text: str) -> tuple[tuple[str, ...], list[str], str]:
    """(ways to close an open string or comment, open brackets, the trailing name characters)."""
    i, n, brackets = 0, len(text), []
    while i < n:
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            if end < 0:
                return ("\n",), brackets, ""
            i = end + 1
            continue
        if ch in "'\"":
            quote = text[i:i + 3] if text[i:i + 3] in ("'''", '"""') else ch
            j = i + len(quote)
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j) or (len(quote) == 1 and text[j] == "\n"):
                    break
                j += 1
            if j >= n:  # unterminated: a dangling backslash still needs its escaped char
                escape = "n" if (n - i) > len(quote) and (len(text) - len(text.rstrip("\\"))) % 2 else ""
                fstring = "f" in text[max(0, i - 2):i].lower()
                # a space first keeps trailing quote characters inside a triple-quoted string
                closes = (escape + quote, escape + " " + quote)
                if fstring:
                    closes += tuple(escape + c + "}" + quote for c in ("0", "", "r"))
                return closes, brackets, ""
            i = j + len(quote)
            continue
        if ch in _OPEN:
            brackets.append(_OPEN[ch])
        elif ch in ")]}" and brackets and brackets[-1] == ch:
            brackets.pop()
        i += 1
    stem = len(text)
    while stem > 0 and (text[stem - 1].isalnum() or text[stem - 1] == "_"):
        stem -= 1
    return ("",), brackets, text[stem:]


def _block_endings(text: str) -> tuple[str, ...]:
    """Endings that respect indentation: a body deeper than the last block header, or a
    decorated definition at the decorator's own indentation."""
    lines = text.split("\n")
    current = len(lines[-1]) - len(lines[-1].lstrip(" ")) if not lines[-1].strip() else 0
    header = next((ln for ln in reversed(lines[:-1]) if ln.rstrip().endswith(":")), "")
    deeper = len(header) - len(header.lstrip(" ")) + 1 - current
    last = next((ln for ln in reversed(lines) if ln.strip()), "")
    indent = " " * (len(last) - len(last.lstrip(" ")))
    return (" " * max(deeper, 0) + "pass", "\n" + indent + "def f():pass", "def f():pass")


def _parses(source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences are only warnings
            compile(source, "<constraint>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    except (RecursionError, MemoryError):
        # CPython's parser gives up on deep nesting ("1+1+...+1" of ~3,000 characters raises
        # RecursionError, 6,000 minus signs MemoryError): it does not accept the source
        return False
    return True


def _utf8_tail(prefix: bytes) -> tuple[bytes, bytes]:
    """Split ``prefix`` into complete UTF-8 and a trailing partial character."""
    for k in range(1, min(4, len(prefix)) + 1):
        b = prefix[-k]
        if b & 0xC0 != 0x80:
            need = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
            return (prefix, b"") if need <= k else (prefix[:-k], prefix[-k:])
    return prefix, b""


def _characters(partial: bytes) -> list[str]:
    """A letter and a non-letter completing a partial UTF-8 character (letters fit names)."""
    need = 2 if partial[0] >> 5 == 0b110 else 3 if partial[0] >> 4 == 0b1110 else 4
    out: list[str] = []
    for cont in range(64 ** (need - len(partial))):
        tail = bytes(0x80 | ((cont >> (6 * k)) & 0x3F) for k in reversed(range(need - len(partial))))
        try:
            ch = (partial + tail).decode("utf-8")
        except UnicodeDecodeError:
            continue
        kind = ch.isidentifier()
        if not any(c.isidentifier() == kind for c in out):
            out.append(ch)
        if len(out) == 2:
            break
    return out


@attrs.define
class PythonConstraint(Constraint):
    """Python source code that CPython compiles (``exec`` mode)."""

    name = "python"
    #: memoised witnesses: at most this many, holding at most ``_cache_bytes`` bytes of prefixes
    _cache_limit = 65536
    _cache_bytes = 64 << 20
    _witness: dict[bytes, bytes | None] = attrs.field(factory=dict, init=False, repr=False, eq=False)
    _witness_bytes: int = attrs.field(default=0, init=False, repr=False, eq=False)

    def completion(self, prefix: bytes) -> bytes | None:
        """A suffix that makes ``prefix`` compile, or ``None`` if ``S(prefix)`` has none."""
        if prefix in self._witness:
            return self._witness[prefix]
        head, partial = _utf8_tail(prefix)
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if partial:
            found = None
            for ch in _characters(partial):
                rest = self._complete(text + ch)
                if rest is not None:
                    found = ch.encode("utf-8")[len(partial):] + rest.encode("utf-8")
                    break
        else:
            rest = self._complete(text)
            found = None if rest is None else rest.encode("utf-8")
        if len(self._witness) >= self._cache_limit or self._witness_bytes + len(prefix) > self._cache_bytes:
            self._witness.clear()
            self._witness_bytes = 0
        self._witness[prefix] = found
        self._witness_bytes += len(prefix)
        return found

    def _complete(self, text: str) -> str | None:
        closes, brackets, stem = _scan(text)
        closers = "".join(reversed(brackets))
        fillers = list(_FILLERS)
        if stem and closes == ("",):
            fillers = [k[len(stem):] + f for k in keyword.kwlist if k.startswith(stem) and k != stem
                       for f in _AFTER_KEYWORD] + fillers
        if text.endswith("\\") and closes == ("",):
            closes = ("\n",)
        for close in closes:
            for filler in fillers:
                for ending in _ENDINGS + _block_endings(text):
                    suffix = close + filler + closers + ending
                    if _parses(text + suffix):
                        return suffix
        return None

    def _allows(self, prefix: bytes) -> bool:
        return self.completion(prefix) is not None

    def _accepts(self, text: bytes) -> bool:
        try:
            return _parses(text.decode("utf-8"))
        except UnicodeDecodeError:
            return False
