"""The ``dataset`` kind: an offline corpus or task set as a component (the first-party
``tokensmith-datasets`` plugin wraps every source in DATA.md; docs/datasets.md).

A dataset yields examples — plain mappings such as ``{"text": ...}`` or
``{"prompt": ..., "answer": ...}`` — of one split. The split is decided per example by a
stable hash of its key and a seed (:func:`split_of`), never by position or by Python's salted
``hash()``: the same example lands in the same split whatever the order of the source,
whatever ``limit`` is asked, in every process. :class:`SplitDataset` does the splitting,
the limit and the seeded sample once, so a source only says how to read its records.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import attrs

from .errors import ConfigError, InputError, ParameterTypeError
from .validators import non_negative_int, positive_int, unit_interval

T = TypeVar("T")

#: what ``examples(split)`` accepts: the two sides of the seeded split, or everything
SPLITS: tuple[str, ...] = ("train", "eval", "all")


@attrs.frozen
class DatasetInfo:
    """What a dataset is: its fields (name -> meaning), splits, where the data comes from,
    its licence and the command that installs it (empty when nothing needs installing)."""

    name: str
    fields: Mapping[str, str] = attrs.field(factory=dict)
    splits: tuple[str, ...] = SPLITS
    source: str = ""
    licence: str = ""
    install: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "fields": dict(self.fields), "splits": list(self.splits),
                "source": self.source, "licence": self.licence, "install": self.install}


class Dataset(ABC):
    """Yields the examples of one split, deterministically for a seed.

    ``fields`` documents the keys of every example; ``keyed(split)`` yields ``(key, example)``
    pairs, the key being the example's stable identity (a path, an id) that splits use.
    """

    name: str = "dataset"
    fields: ClassVar[Mapping[str, str]] = {}
    splits: ClassVar[tuple[str, ...]] = SPLITS

    @abstractmethod
    def examples(self, split: str = "train") -> Iterator[dict[str, Any]]: ...

    def keyed(self, split: str = "train") -> Iterator[tuple[str, dict[str, Any]]]:
        """``(key, example)`` pairs; by default the key is a hash of the example's content."""
        for example in self.examples(split):
            yield content_key(example), example

    def describe(self) -> DatasetInfo:
        return DatasetInfo(self.name, dict(self.fields), tuple(self.splits))


def content_key(example: Mapping[str, Any]) -> str:
    """A stable key for an example without an identity of its own: the hash of its canonical JSON."""
    text = json.dumps(example, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def unit_hash(key: str, seed: int, purpose: str = "split") -> float:
    """A number in [0, 1) fixed by ``key``, ``seed`` and ``purpose`` (BLAKE2b, so the same in
    every process and Python version), uniform over keys."""
    material = f"tokensmith:{purpose}:{seed}:".encode() + key.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big") / 2.0**64


def split_of(key: str, *, eval_fraction: float, seed: int = 0) -> str:
    """``"eval"`` for a fraction ``eval_fraction`` of keys, ``"train"`` for the rest.

    Raising ``eval_fraction`` only moves examples from train to eval (the eval sets are nested).
    """
    return "eval" if unit_hash(key, seed) < eval_fraction else "train"


def _check_split(split: Any, allowed: tuple[str, ...], component: str) -> str:
    if not isinstance(split, str) or split not in allowed:
        raise InputError(f"unknown split {split!r}", component=component,
                         hint=f"use one of {', '.join(repr(s) for s in allowed)}")
    return split


def _check_fraction(eval_fraction: Any, component: str) -> float:
    if isinstance(eval_fraction, bool) or not isinstance(eval_fraction, (int, float)) \
            or not 0 <= eval_fraction <= 1:
        raise ConfigError(f"eval_fraction must be a number in [0, 1], got {eval_fraction!r}",
                          component=component)
    return float(eval_fraction)


def seeded_split(records: Iterable[tuple[str, T]], split: str, *, eval_fraction: float = 0.1,
                 seed: int = 0) -> Iterator[tuple[str, T]]:
    """The ``(key, item)`` records of ``split`` (``"train"``, ``"eval"`` or ``"all"``), in their
    order, lazily: each record is assigned by :func:`split_of` on its own key alone."""
    _check_split(split, SPLITS, "seeded_split")
    _check_fraction(eval_fraction, "seeded_split")
    for key, item in records:
        if split == "all" or split_of(key, eval_fraction=eval_fraction, seed=seed) == split:
            yield key, item


def seeded_sample(records: Iterable[tuple[str, T]], n: int | None, *, seed: int = 0) -> list[tuple[str, T]]:
    """A seeded uniform sample of ``n`` records (all of them when ``n`` is None), in a seeded
    order: the ``n`` whose key hashes are smallest. Independent of the source's order, and
    nested (the sample of ``n`` is the first ``n`` of the sample of ``n + 1``); reads every
    record but keeps only ``n`` in memory."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise ConfigError(f"the sample size must be an int >= 0 or None, got {n!r}",
                          component="seeded_sample")
    ranked = ((unit_hash(key, seed, "order"), key, item) for key, item in records)
    best = heapq.nsmallest(n, ranked, key=lambda r: (r[0], r[1])) if n is not None \
        else sorted(ranked, key=lambda r: (r[0], r[1]))
    return [(key, item) for _, key, item in best]


def take(items: Iterable[T], limit: int | None) -> Iterator[T]:
    """The first ``limit`` items (all when ``limit`` is None), read lazily: a streaming source
    stops being read once ``limit`` items are out."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(f"limit must be an int >= 0 or None, got {limit!r}", component="take")
    return iter(items) if limit is None else itertools.islice(items, limit)


def _optional_positive_int(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        positive_int(instance, attribute, value)


def _boolean(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, bool):
        raise ParameterTypeError(f"{attribute.name} must be true or false, got {value!r}")


def _checked_records(records: Iterable[Any], component: str) -> Iterator[tuple[str, Any]]:
    """``records()`` as it streams, each checked: a ``(key, example)`` pair, the key a ``str``
    (the split hashes it), the example a mapping."""
    from .errors import ComponentError

    hint = "records() yields (key, example) pairs: a str key (e.g. str(id)) and a dict"
    for i, record in enumerate(records):
        if not isinstance(record, tuple) or len(record) != 2:
            raise ComponentError(f"records() yielded {type(record).__name__} {record!r:.60} at {i}, not a "
                                 "(key, example) pair", component=component, hint=hint)
        key, example = record
        if not isinstance(key, str):
            raise ComponentError(f"records() yielded the key {key!r:.60} ({type(key).__name__}) at {i}; keys "
                                 "are str", component=component, hint=hint)
        if not isinstance(example, Mapping):
            raise ComponentError(f"records() yielded {type(example).__name__} as the example of key "
                                 f"{key!r:.60}, not a mapping", component=component, hint=hint)
        yield key, example


@attrs.define(kw_only=True)
class SplitDataset(Dataset):
    """A dataset read as ``(key, example)`` records (:meth:`records`, in the source's order,
    streamed), with the parameters every dataset shares: a seeded train/eval split, a limit
    and an optional seeded shuffle. A subclass implements :meth:`records` and declares
    ``name`` and ``fields``; its own parameters are further attrs fields."""

    eval_fraction: float = attrs.field(default=0.1, validator=unit_interval, metadata={
        "doc": "fraction of examples in the 'eval' split, chosen by a hash of each example's key"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "seed of the split (and of the order when shuffle = true)"})
    limit: int | None = attrs.field(default=None, validator=_optional_positive_int, metadata={
        "doc": "at most this many examples of the split (the source stops being read there)"})
    shuffle: bool = attrs.field(default=False, validator=_boolean, metadata={
        "doc": "a seeded random order (with limit: a uniform sample); reads the whole source"})

    @abstractmethod
    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every example with its stable key, in the source's order, read lazily."""

    def keyed(self, split: str = "train") -> Iterator[tuple[str, dict[str, Any]]]:
        _check_split(split, tuple(self.splits), f"dataset '{self.name}'")
        records = _checked_records(self.records(), f"dataset '{self.name}'")
        chosen = seeded_split(records, split, eval_fraction=self.eval_fraction, seed=self.seed)
        if self.shuffle:
            return iter(seeded_sample(chosen, self.limit, seed=self.seed))
        return take(chosen, self.limit)

    def examples(self, split: str = "train") -> Iterator[dict[str, Any]]:
        return (example for _, example in self.keyed(split))
