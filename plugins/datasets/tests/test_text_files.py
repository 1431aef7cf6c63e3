"""``text-files``: user files as a corpus. The dataset contract on a tiny folder, each unit's
examples against a brute-force reading of the same text, and every bad input (no file, a
pattern matching nothing, an unreadable, empty or undecodable file, a bad parameter) as a typed
error naming the dataset and the path; and it streams (a later file is not opened before its
examples are asked for)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_datasets.files import TextFiles

from tokensmith import ConfigError, DataUnavailableError, ParameterTypeError
from tokensmith.testing import DatasetContract, no_network


def _write(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


@pytest.fixture
def corpus(tmp_path) -> Path:
    return _write(
        tmp_path / "corpus",
        {
            "a.txt": "Section 1.\nThe Licensor grants\n\nSection 2.\r\nNo warranty.\r\n",
            "sub/b.md": "# Title\n\nA paragraph\nover two lines.\n",
            ".hidden/c.txt": "not read",
            ".d.txt": "not read either",
        },
    )


class TestTheContract(DatasetContract):
    @pytest.fixture(params=["file", "line", "paragraph"])
    def dataset(self, request, tmp_path):
        root = _write(tmp_path / "c", {f"f{i}.txt": f"line {i}\nsecond {i}\n\npara {i}\n" for i in range(6)})
        return TextFiles(paths=[str(root)], unit=request.param, eval_fraction=0.5)


def _read(**params) -> list[tuple[str, dict]]:
    with no_network():
        return list(TextFiles(**params).keyed("all"))


def test_each_unit_reads_the_files_in_path_order(corpus):
    files = _read(paths=[str(corpus)])
    assert [e["path"] for _, e in files] == [str(corpus / "a.txt"), str(corpus / "sub/b.md")]
    # newlines are universal ('\r\n' read as '\n'); the trailing newline is kept
    assert files[0][1]["text"] == "Section 1.\nThe Licensor grants\n\nSection 2.\nNo warranty.\n"
    lines = _read(paths=[str(corpus / "a.txt")], unit="line")
    a = str(corpus / "a.txt")
    assert [(k, e["line"], e["text"]) for k, e in lines] == [
        (f"{a}:1", 1, "Section 1."),
        (f"{a}:2", 2, "The Licensor grants"),
        (f"{a}:4", 4, "Section 2."),
        (f"{a}:5", 5, "No warranty."),
    ]
    paragraphs = _read(paths=[str(corpus)], unit="paragraph")
    assert [(e["line"], e["text"]) for _, e in paragraphs] == [
        (1, "Section 1.\nThe Licensor grants"),
        (4, "Section 2.\nNo warranty."),
        (1, "# Title"),
        (3, "A paragraph\nover two lines."),
    ]


def test_globs_files_and_folders_mix_and_a_file_named_twice_is_read_once(corpus):
    got = _read(paths=[str(corpus / "**" / "*.md"), str(corpus / "a.txt"), str(corpus)])
    assert [e["path"] for _, e in got] == [str(corpus / "sub/b.md"), str(corpus / "a.txt")]
    # one path as a string is a list of one (``-p paths=corpus/`` on the command line)
    assert TextFiles(paths=str(corpus)).paths == (str(corpus),)


def test_through_the_registry(installed_registry, corpus):
    params = {"type": "text-files", "paths": [str(corpus)], "unit": "line"}
    dataset = installed_registry.build("dataset", params)
    assert next(iter(dataset.examples("all")))["text"] == "Section 1."


_line_text = st.lists(
    st.tuples(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12),
        st.sampled_from(["\n", "\r\n", "\r"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(lines=_line_text, encoding=st.sampled_from(["utf-8", "utf-16", "utf-8-sig"]))
def test_units_agree_with_a_brute_force_reading(tmp_path_factory, lines, encoding):
    """Against Python's own universal-newline reading of the whole file (form feeds and other
    str.splitlines() breaks are not line ends here)."""
    if not any(text.strip() for text, _ in lines):
        lines = [*lines, ("x", "\n")]
    root = tmp_path_factory.mktemp("h")
    raw = "".join(text + end for text, end in lines)
    (root / "f.txt").write_bytes(raw.encode(encoding))
    with open(root / "f.txt", encoding=encoding, newline=None) as handle:
        whole = handle.read()
    expected_lines = whole.split("\n")
    if whole.endswith("\n"):
        expected_lines.pop()
    path = str(root / "f.txt")
    assert [e["text"] for _, e in _read(paths=[path], encoding=encoding)] == [whole]
    got = _read(paths=[path], unit="line", encoding=encoding)
    assert [(e["line"], e["text"]) for _, e in got] == [
        (i, t) for i, t in enumerate(expected_lines, 1) if t.strip()
    ]
    blocks = [b for b in re.split(r"\n(?:[^\S\n]*\n)+", "\n" + "\n".join(expected_lines) + "\n") if b.strip()]
    got = _read(paths=[path], unit="paragraph", encoding=encoding)
    assert [e["text"].strip("\n") for _, e in got] == [b.strip("\n") for b in blocks]


def test_it_streams_a_later_file_is_not_opened_before_its_examples(tmp_path):
    root = _write(tmp_path, {"1.txt": "first\n", "2.txt": b"\xff\xfe bad\n"})
    examples = TextFiles(paths=[str(root)], unit="line").examples("all")
    assert next(examples)["text"] == "first"
    with pytest.raises(DataUnavailableError, match=r"2\.txt: line 1: not utf-8"):
        next(examples)


# -- bad input: a typed error naming text-files and the path -----------------------------------


def _fails(match: str, **params) -> DataUnavailableError:
    with pytest.raises(DataUnavailableError, match=match) as err:
        _read(**params)
    assert err.value.component == "dataset 'text-files'"
    return err.value


def test_missing_paths_patterns_and_folders_are_named(tmp_path):
    _fails(r"the file '.*nope\.txt' does not exist", paths=[str(tmp_path / "nope.txt")])
    _fails(r"the pattern '.*\*\.txt' matches no file", paths=[str(tmp_path / "*.txt")])
    (tmp_path / "empty").mkdir()
    _fails(r"the folder '.*empty' holds no file", paths=[str(tmp_path / "empty")])


def test_an_empty_or_blank_file_is_an_error_not_zero_examples(tmp_path):
    root = _write(tmp_path, {"ok.txt": "text\n", "blank.txt": " \n\t\n"})
    for unit in ("file", "line", "paragraph"):
        _fails(r"blank\.txt' holds no text", paths=[str(root / "ok.txt"), str(root / "blank.txt")], unit=unit)
    (root / "zero.txt").write_bytes(b"")
    _fails(r"zero\.txt' holds no text", paths=[str(root / "zero.txt")])


def test_undecodable_bytes_name_the_file_and_line_never_replaced(tmp_path):
    root = _write(tmp_path, {"x.txt": b"fine\nstill fine\ncaf\xe9\n"})
    err = _fails(r"x\.txt: line 3: not utf-8", paths=[str(root / "x.txt")], unit="line")
    assert "encoding" in err.hint
    # the right encoding reads it
    assert _read(paths=[str(root / "x.txt")], unit="line", encoding="latin-1")[-1][1]["text"] == "café"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads a chmod 000 file")
def test_an_unreadable_file_is_named(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("text")
    path.chmod(0)
    try:
        _fails(r"secret\.txt' cannot be read", paths=[str(path)])
    finally:
        path.chmod(0o644)


def test_bad_parameters_are_typed(tmp_path, installed_registry):
    for paths in (3, [3], [""], None, {"a": 1}):
        with pytest.raises(ParameterTypeError, match="paths must"):
            TextFiles(paths=paths)
    with pytest.raises(ConfigError, match="at least one"):
        TextFiles(paths=[])
    with pytest.raises(ConfigError, match="not a text encoding Python knows"):
        TextFiles(paths=["x"], encoding="utf-9")
    with pytest.raises(ConfigError, match="bytes to bytes"):
        TextFiles(paths=["x"], encoding="base64")
    with pytest.raises(ConfigError) as err:
        installed_registry.build("dataset", {"type": "text-files", "paths": ["x"], "unit": "sentence"})
    assert err.value.component == "dataset 'text-files'"
    with pytest.raises(ConfigError, match="paths"):
        installed_registry.build("dataset", {"type": "text-files"})
