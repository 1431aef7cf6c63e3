"""Similarity sets from gensim's test data, read by path (gensim is not imported): the Lee
corpus (50 news documents rated pairwise by humans, and 300 background documents), WordSim353
and SimLex-999."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from .locate import malformed, module_file, readable_file, text_lines
from .source import Source, path_field

_GENSIM = "gensim"


def _gensim_file(name: str, explicit: Path | None, component: str) -> Path:
    if explicit is not None:
        return readable_file(explicit, _GENSIM, component, "the data file")
    return module_file("gensim", f"test/test_data/{name}", _GENSIM, component)


def _lee_documents(path: Path, component: str) -> list[str]:
    # lee.cor is Latin-1 (ISO-8859-1); the background corpus is ASCII, a subset
    return [line for _, line in text_lines(path, _GENSIM, component, encoding="latin-1") if line.strip()]


@attrs.define(kw_only=True)
class LeeCorpus(Source):
    """The Lee corpus (Lee, Pincombe & Welsh 2005): the 50 rated news documents, or the 300
    background documents used to train document models."""

    name = "lee-corpus"
    package = _GENSIM
    licence = "LGPL-2.1 (gensim test data); texts from the Australian Broadcasting Corporation"
    fields = {"id": "the document's line number in its file, from 0", "text": "the document"}

    part: Literal["documents", "background"] = attrs.field(
        default="documents",
        metadata={"doc": "the 50 rated documents (lee.cor) or the 300 background ones (lee_background.cor)"},
    )
    path: Path | None = path_field("the .cor file to read (default: gensim's)")

    def locate(self) -> Path:
        return _gensim_file(
            "lee.cor" if self.part == "documents" else "lee_background.cor", self.path, self.component
        )

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        for index, text in enumerate(_lee_documents(path, self.component)):
            yield f"{self.part}/{index}", {"id": index, "text": text}


@attrs.define(kw_only=True)
class LeeSimilarity(Source):
    """The 1,225 pairs of the 50 Lee documents with their mean human similarity (the upper
    triangle of gensim's ``similarities0-1.txt``)."""

    name = "lee-similarity"
    package = _GENSIM
    licence = LeeCorpus.licence
    fields = {
        "a": "first document id (0-49)",
        "b": "second document id (> a)",
        "text_a": "first document",
        "text_b": "second document",
        "similarity": "mean human similarity, in [0, 1]",
    }

    path: Path | None = path_field("a folder holding lee.cor and similarities0-1.txt (default: gensim's)")

    def locate(self) -> tuple[Path, Path]:
        if self.path is not None:
            return (
                readable_file(self.path / "lee.cor", _GENSIM, self.component, "the documents"),
                readable_file(self.path / "similarities0-1.txt", _GENSIM, self.component, "the ratings"),
            )
        return (
            _gensim_file("lee.cor", None, self.component),
            _gensim_file("similarities0-1.txt", None, self.component),
        )

    def read(self, located: tuple[Path, Path]) -> Iterator[tuple[str, dict[str, Any]]]:
        docs_path, matrix_path = located
        docs = _lee_documents(docs_path, self.component)
        rows = []
        for number, line in text_lines(matrix_path, _GENSIM, self.component):
            if not line.strip():
                continue
            try:
                row = [float(v) for v in line.split()]
            except ValueError:
                raise malformed(
                    matrix_path, f"line {number}", "a value is not a number", _GENSIM, self.component
                ) from None
            if len(row) != len(docs) or not all(math.isfinite(v) and 0 <= v <= 1 for v in row):
                raise malformed(
                    matrix_path,
                    f"line {number}",
                    f"expected {len(docs)} similarities in [0, 1]",
                    _GENSIM,
                    self.component,
                )
            rows.append(row)
        if len(rows) != len(docs):
            raise malformed(
                matrix_path,
                f"line {len(rows)}",
                f"{len(rows)} rows for {len(docs)} documents",
                _GENSIM,
                self.component,
            )
        for a in range(len(docs)):
            for b in range(a + 1, len(docs)):
                yield (
                    f"{a}-{b}",
                    {"a": a, "b": b, "text_a": docs[a], "text_b": docs[b], "similarity": rows[a][b]},
                )


def _word_pairs(path: Path, component: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``word1<TAB>word2<TAB>score`` lines, ``#`` comments skipped."""
    for number, line in text_lines(path, _GENSIM, component):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        try:
            if len(cells) != 3:
                raise ValueError
            score = float(cells[2])
            if not math.isfinite(score):
                raise ValueError
        except ValueError:
            raise malformed(
                path, f"line {number}", "expected word1<TAB>word2<TAB>score", _GENSIM, component
            ) from None
        yield f"{cells[0]}\t{cells[1]}", {"word1": cells[0], "word2": cells[1], "score": score}


@attrs.define(kw_only=True)
class WordSim353(Source):
    """WordSim353 (Finkelstein et al. 2002): 353 word pairs with mean human relatedness, 0-10."""

    name = "wordsim353"
    package = _GENSIM
    licence = "LGPL-2.1 (gensim test data); WordSim353 by Finkelstein et al."
    fields = {"word1": "first word", "word2": "second word", "score": "mean human rating, 0-10"}

    path: Path | None = path_field("wordsim353.tsv (default: gensim's)")

    def locate(self) -> Path:
        return _gensim_file("wordsim353.tsv", self.path, self.component)

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        return _word_pairs(path, self.component)


@attrs.define(kw_only=True)
class SimLex999(Source):
    """SimLex-999 (Hill, Reichart & Korhonen 2015): 999 word pairs rated for similarity (not
    relatedness), 0-10."""

    name = "simlex999"
    package = _GENSIM
    licence = "LGPL-2.1 (gensim test data); SimLex-999 by Hill et al."
    fields = WordSim353.fields

    path: Path | None = path_field("simlex999.txt (default: gensim's)")

    def locate(self) -> Path:
        return _gensim_file("simlex999.txt", self.path, self.component)

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        return _word_pairs(path, self.component)
