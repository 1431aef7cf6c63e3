"""User files as a corpus: ``text-files`` reads files, folders or glob patterns the user names,
one example per file, per line or per paragraph, streamed (one line of one file in memory at a
time for ``line``/``paragraph``, one file at a time for ``file``).

Nothing is replaced or skipped silently: a byte sequence that does not decode is an error naming
the file and the line, a path that matches nothing, a file that cannot be opened and a file that
holds no text are errors naming the path.
"""

from __future__ import annotations

import codecs
import glob
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from tokensmith import ConfigError, DatasetInfo, DataUnavailableError, ParameterTypeError

from .source import Source

_GLOB_CHARS = re.compile(r"[*?\[]")
# universal newlines as Python's text mode reads them; not str.splitlines(), which also breaks at
# form feeds and vertical tabs (common in licence and legal texts) and would renumber the lines
_NEWLINE = re.compile(r"\r\n|\r|\n")
_HINT = "pass paths = files, folders or glob patterns of readable text files (a list)"


def _as_paths(value: Any) -> tuple[str, ...]:
    """A single path (``-p paths=corpus/``) is a list of one; anything but non-empty strings or
    path objects is a type error naming the item."""
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ParameterTypeError(
            f"paths must be a list of file, folder or glob names, got {type(value).__name__} {value!r:.60}"
        )
    out = []
    for item in value:
        if isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, str) or not item:
            raise ParameterTypeError(
                f"paths must hold non-empty strings, got {type(item).__name__} {item!r:.60}"
            )
        out.append(item)
    return tuple(out)


def _non_empty(instance: Any, attribute: Any, value: Any) -> None:
    if not value:
        raise ConfigError(f"{attribute.name} must name at least one file, folder or glob pattern")


def _known_encoding(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ParameterTypeError(f"{attribute.name} must be an encoding name, got {value!r}")
    try:
        info = codecs.lookup(value)
    except LookupError:
        raise ConfigError(f"{attribute.name} {value!r} is not a text encoding Python knows") from None
    if not getattr(info, "_is_text_encoding", True):  # e.g. 'base64', 'zlib': bytes-to-bytes codecs
        raise ConfigError(f"{attribute.name} {value!r} is not a text encoding (it maps bytes to bytes)")


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


@attrs.define(kw_only=True)
class TextFiles(Source):
    """Text files the user names, as examples keyed by path (``unit = "file"``) or by
    ``path:line`` (``"line"``, ``"paragraph"``: the line a paragraph starts on)."""

    name = "text-files"
    licence = "the user's own files"
    fields = {
        "path": "the file, as named by paths (a folder's files and a pattern's matches as found)",
        "line": "the line the example starts on (1 for unit = 'file')",
        "text": "the text, newlines read as '\\n' (Python's universal newlines)",
    }

    paths: tuple[str, ...] = attrs.field(
        converter=_as_paths,
        validator=_non_empty,
        metadata={
            "doc": "files, folders (every file under them, recursively, in path order, hidden "
            "'.' entries left out) or glob patterns ('**' recursive); a list, or one path"
        },
    )
    unit: Literal["file", "line", "paragraph"] = attrs.field(
        default="file",
        validator=attrs.validators.in_(("file", "line", "paragraph")),
        metadata={
            "doc": "one example per file, per non-blank line, or per paragraph (lines between blank lines)"
        },
    )
    encoding: str = attrs.field(
        default="utf-8",
        validator=_known_encoding,
        metadata={"doc": "the files' encoding; a byte that does not decode is an error naming file and line"},
    )

    def _error(self, message: str, hint: str = _HINT) -> DataUnavailableError:
        return DataUnavailableError(message, component=self.component, hint=hint)

    def locate(self) -> list[Path]:
        """Every file the paths name, in the order given (a folder's and a pattern's in path
        order), each once; names only, nothing is read. A path that does not exist, a pattern
        that matches no file and a folder with no file are errors naming it."""
        found: list[Path] = []
        seen: set[str] = set()
        for given in self.paths:
            expanded = os.path.expanduser(given)
            if _GLOB_CHARS.search(expanded) and not os.path.exists(expanded):
                matches = [Path(m) for m in sorted(glob.glob(expanded, recursive=True))]
                files = [m for m in matches if m.is_file()]
                if not files:
                    raise self._error(f"the pattern {given!r} matches no file")
            else:
                path = Path(expanded)
                if path.is_dir():
                    files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
                    if not files:
                        raise self._error(f"the folder {given!r} holds no file")
                elif path.is_file():
                    files = [path]
                elif path.exists():
                    raise self._error(f"{given!r} is neither a file nor a folder")
                else:
                    raise self._error(f"the file {given!r} does not exist")
            for file in files:
                identity = os.path.realpath(file)
                if identity not in seen:  # a file named twice (a folder and a pattern) is one file
                    seen.add(identity)
                    found.append(file)
        return found

    def _lines(self, path: Path) -> Iterator[tuple[int, str, bool]]:
        """``(line number, line, ended by a newline)`` of one file, decoded incrementally (a
        multi-byte character split across reads is whole), strictly: a bad byte names its line."""
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        number, pending = 0, ""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below; its OSError is reported here
        except OSError as exc:
            raise self._error(
                f"{str(path)!r} cannot be read ({exc.strerror or type(exc).__name__})",
                hint=f"make it readable (chmod a+r {path}) or leave it out of paths",
            ) from None
        with handle:
            while True:
                try:
                    raw = handle.readline(1 << 16)  # bounded: a file with no newline is read in pieces
                except OSError as exc:
                    raise self._error(f"{str(path)!r} cannot be read ({exc})") from None
                try:
                    pending += decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:
                    line = number + 1 + len(_NEWLINE.findall(pending))
                    raise self._error(
                        f"{path}: line {line}: not {self.encoding} ({exc.reason}, byte "
                        f"{exc.object[exc.start:exc.start + 1]!r})",
                        hint="pass the files' encoding (encoding = 'latin-1', 'cp1252', ...) or fix the file",
                    ) from None
                # a '\r' at the end of a read may be the first half of a '\r\n': held back
                hold = "\r" if raw and pending.endswith("\r") else ""
                parts = _NEWLINE.split(pending[: len(pending) - len(hold)])
                pending = parts.pop() + hold  # the unfinished last line
                for part in parts:
                    number += 1
                    yield number, part, True
                if not raw:
                    break
        if pending:
            yield number + 1, pending, False

    def _file_records(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        key = str(path)
        if self.unit == "file":
            text = "".join(line + "\n" * ended for _, line, ended in self._lines(path))
            if text.strip():
                yield key, {"path": key, "line": 1, "text": text}
            return
        if self.unit == "line":
            for number, text, _ in self._lines(path):
                if text.strip():  # blank lines separate, they are not examples (documented)
                    yield f"{key}:{number}", {"path": key, "line": number, "text": text}
            return
        start, block = 0, []
        for number, text, _ in self._lines(path):
            if text.strip():
                if not block:
                    start = number
                block.append(text)
            elif block:
                yield f"{key}:{start}", {"path": key, "line": start, "text": "\n".join(block)}
                block = []
        if block:
            yield f"{key}:{start}", {"path": key, "line": start, "text": "\n".join(block)}

    def read(self, files: list[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
        for path in files:
            empty = True
            for record in self._file_records(path):
                empty = False
                yield record
            if empty:
                raise self._error(
                    f"{str(path)!r} holds no text (it is empty or only whitespace)",
                    hint="leave it out of paths, or pass files with text",
                )

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        # located now, so a missing path fails when examples() is called, not at the first next()
        return self.read(self.locate())

    def describe(self) -> DatasetInfo:
        try:
            where = f"{len(self.locate())} file(s) named by {list(self.paths)}"
        except DataUnavailableError as exc:
            where = f"not available ({exc.message})"
        return DatasetInfo(
            self.name,
            dict(self.fields),
            tuple(self.splits),
            source=f"user files: {where}",
            licence=self.licence,
        )
