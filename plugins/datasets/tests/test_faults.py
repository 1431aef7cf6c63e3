"""Datasets under bad input: what was wrong (an undecodable file silently left out of a folder
the user gave, an untyped error for a path that is not a path, "does not exist" for a file
that exists) is now a typed error naming the dataset and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokensmith_datasets.text import Licenses, StdlibCode

from tokensmith import ConfigError, DataUnavailableError, ParameterTypeError
from tokensmith.testing import no_network


def _folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    return tmp_path


def test_an_undecodable_file_outside_the_test_folders_is_an_error(tmp_path):
    root = _folder(tmp_path / "lib", {"a.py": b"x = 1\n", "b.py": b"name = '\xff\xfe'\n"})
    with no_network(), pytest.raises(DataUnavailableError, match=r"b\.py: encoding: not decodable") as err:
        list(StdlibCode(path=root).examples("all"))
    assert err.value.component == "dataset 'stdlib-code'"
    # CPython's own decoder fixtures under test/ are the documented exclusion
    (root / "b.py").unlink()
    _folder(root, {"test/bad_coding.py": b"# -*- coding: uft-8 -*-\n"})
    with no_network():
        assert [e["path"] for e in StdlibCode(path=root).examples("all")] == ["a.py"]


@pytest.mark.parametrize("path", [3, 2.5, b"/tmp", ["a"], ""])
def test_a_path_parameter_that_is_not_a_path_is_typed(path):
    with pytest.raises(ParameterTypeError, match="path must be a file or folder name"):
        StdlibCode(path=path)
    with pytest.raises(ParameterTypeError):
        Licenses(path=path)


def test_a_path_that_is_a_file_is_not_called_missing(tmp_path):
    file = tmp_path / "x.py"
    file.write_text("x = 1\n")
    cases = ((StdlibCode(path=file), "standard library folder"), (Licenses(path=file), "licence folder"))
    for dataset, what in cases:
        with pytest.raises(DataUnavailableError, match=f"the {what} .* is not a folder"):
            list(dataset.examples("all"))
    with pytest.raises(DataUnavailableError, match="does not exist"):
        list(StdlibCode(path=tmp_path / "nope").examples("all"))


def test_bad_shared_parameters_are_config_errors_through_the_registry(installed_registry):
    for params, message in (({"limit": -1}, "limit must be >= 1"), ({"limit": 0}, "limit must be >= 1"),
                            ({"eval_fraction": 1.5}, r"eval_fraction must be in \[0, 1\]"),
                            ({"eval_fraction": float("nan")}, "a finite number"),
                            ({"path": 5}, "path must be a file or folder name")):
        with pytest.raises(ConfigError, match=message) as err:
            installed_registry.build("dataset", {"type": "stdlib-code", **params})
        assert err.value.component == "dataset 'stdlib-code'"
