"""The base of every dataset here: a located source read as keyed records (the split, limit
and shuffle come from :class:`tokensmith.SplitDataset`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs

from tokensmith import DatasetInfo, DataUnavailableError, ParameterTypeError, SplitDataset

from .locate import PACKAGES, malformed


def optional_path(value: Any) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if isinstance(value, os.PathLike):
        return Path(value)
    if not isinstance(value, str) or not value:
        raise ParameterTypeError(f"path must be a file or folder name (a non-empty string), got {value!r}")
    return Path(value)


def path_field(doc: str) -> Any:
    return attrs.field(default=None, converter=optional_path, metadata={"doc": doc})


def boolean(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise ParameterTypeError(f"{attribute.name} must be true or false, got {value!r}")


@attrs.define(kw_only=True)
class Source(SplitDataset):
    """A dataset whose files are found by :meth:`locate` (a typed error naming the package
    and its install command when they are absent) and read lazily by :meth:`read`."""

    #: the key of :data:`~tokensmith_datasets.locate.PACKAGES` ("" for the standard library)
    package: ClassVar[str] = ""
    licence: ClassVar[str] = ""

    @property
    def component(self) -> str:
        return f"dataset '{self.name}'"

    def locate(self) -> Any:
        """The files to read; raises :class:`DataUnavailableError` when they are absent."""
        raise NotImplementedError

    def read(self, located: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        # located now, so a missing source fails when examples() is called, not at first next()
        located = self.locate()
        return self._not_empty(self.read(located), located)

    def _not_empty(self, records: Iterator[Any], located: Any) -> Iterator[Any]:
        """An empty (e.g. truncated to nothing) file is an error, not a dataset of no examples."""
        empty = True
        for record in records:
            empty = False
            yield record
        if empty:
            raise malformed(located, "contents", "holds no examples", self.package, self.component)

    def describe(self) -> DatasetInfo:
        origin = PACKAGES[self.package].describe() if self.package else "the Python standard library"
        try:
            where = str(self.locate())
        except DataUnavailableError as exc:
            where = f"not available ({exc.message})"
        return DatasetInfo(
            self.name,
            dict(self.fields),
            tuple(self.splits),
            source=f"{origin}: {where}",
            licence=self.licence,
            install=PACKAGES[self.package].install if self.package else "",
        )
