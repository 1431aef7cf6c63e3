"""The dataset contract: what every ``dataset`` component must do, checked with the network
switched off (:func:`no_network`).

Subclass :class:`DatasetContract` and provide the fixture ``dataset``: a small instance (a
tiny fixture file is best; at most :attr:`DatasetContract.max_examples` examples are read per
split). The checks that need :class:`~tokensmith.SplitDataset`'s parameters (limit, seed,
eval_fraction, shuffle) run when the dataset is one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from tokensmith.core.dataset import Dataset, SplitDataset, seeded_sample, split_of
from tokensmith.core.errors import InputError


class NetworkUsedError(AssertionError):
    """Code under :func:`no_network` tried to open a connection or resolve a name."""


@contextlib.contextmanager
def no_network() -> Iterator[None]:
    """Inside the block, connecting a socket, resolving a host name or creating a connection
    raises :class:`NetworkUsedError` (a test fails instead of reaching out)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkUsedError(f"network access attempted: {args[1:] or args}")

    patched = [(socket.socket, "connect"), (socket.socket, "connect_ex"), (socket.socket, "sendto"),
               (socket, "create_connection"), (socket, "getaddrinfo"), (socket, "gethostbyname")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in patched]
    try:
        for owner, name in patched:
            setattr(owner, name, refuse)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _canonical(example: Any) -> str:
    return json.dumps(example, sort_keys=True, ensure_ascii=False)


class DatasetContract:
    """Needs fixture ``dataset`` (a :class:`~tokensmith.Dataset`, small)."""

    max_examples: int = 400

    @pytest.fixture(autouse=True)
    def _offline(self) -> Iterator[None]:
        with no_network():
            yield

    def _read(self, dataset: Dataset, split: str) -> list[tuple[str, dict[str, Any]]]:
        return list(itertools.islice(dataset.keyed(split), self.max_examples))

    def test_it_is_a_dataset_with_examples(self, dataset):
        assert isinstance(dataset, Dataset)
        assert self._read(dataset, "all"), "the dataset yielded no example (give the contract one with some)"

    def test_examples_have_exactly_the_declared_fields(self, dataset):
        assert dataset.fields, f"{type(dataset).__name__} declares no fields (a mapping name -> meaning)"
        for _, example in self._read(dataset, "all"):
            assert isinstance(example, dict)
            assert set(example) == set(dataset.fields), (sorted(example), sorted(dataset.fields))

    def test_examples_are_json_values(self, dataset):
        for _, example in self._read(dataset, "all"):
            json.dumps(example, allow_nan=False)

    def test_keys_are_unique_strings(self, dataset):
        keys = [key for key, _ in self._read(dataset, "all")]
        assert all(isinstance(k, str) and k for k in keys)
        assert len(set(keys)) == len(keys), "two examples share a key: splits need a unique identity"

    def test_reading_twice_gives_the_same_examples(self, dataset):
        first = [(k, _canonical(e)) for k, e in self._read(dataset, "train")]
        assert first == [(k, _canonical(e)) for k, e in self._read(dataset, "train")]

    def test_examples_are_keyed_without_keys(self, dataset):
        assert [_canonical(e) for e in itertools.islice(dataset.examples("eval"), self.max_examples)] \
            == [_canonical(e) for _, e in self._read(dataset, "eval")]

    def test_train_and_eval_partition_all(self, dataset):
        if isinstance(dataset, SplitDataset):  # a limit applies to each split on its own
            dataset = attrs.evolve(dataset, limit=None)
        everything = self._read(dataset, "all")
        if len(everything) >= self.max_examples:
            pytest.skip(f"more than {self.max_examples} examples: give the contract a smaller dataset")
        train, evaluation = self._read(dataset, "train"), self._read(dataset, "eval")
        assert not {k for k, _ in train} & {k for k, _ in evaluation}
        if not getattr(dataset, "shuffle", False):  # in the source's order, as a stable filter
            train_keys, eval_keys = {k for k, _ in train}, {k for k, _ in evaluation}
            assert [k for k, _ in everything if k in train_keys] == [k for k, _ in train]
            assert [k for k, _ in everything if k in eval_keys] == [k for k, _ in evaluation]
        assert sorted(k for k, _ in train + evaluation) == sorted(k for k, _ in everything)

    def test_an_unknown_split_is_an_input_error(self, dataset):
        with pytest.raises(InputError, match="split"):
            next(iter(dataset.examples("validation-set-that-does-not-exist")))

    def test_describe_names_the_fields(self, dataset):
        info = dataset.describe()
        assert info.name == dataset.name and dict(info.fields) == dict(dataset.fields)
        json.dumps(info.to_json())

    # -- SplitDataset's parameters ----------------------------------------------------------

    def _split_dataset(self, dataset) -> SplitDataset:
        if not isinstance(dataset, SplitDataset):
            pytest.skip("not a SplitDataset")
        return dataset

    def test_each_example_is_in_the_split_its_key_hashes_to(self, dataset):
        ds = self._split_dataset(dataset)
        for split in ("train", "eval"):
            for key, _ in self._read(ds, split):
                assert split_of(key, eval_fraction=ds.eval_fraction, seed=ds.seed) == split

    def test_limit_takes_a_prefix(self, dataset):
        ds = attrs.evolve(self._split_dataset(dataset), shuffle=False, limit=None)
        full = [k for k, _ in self._read(ds, "train")]
        for limit in (1, 2, 5):
            assert [k for k, _ in attrs.evolve(ds, limit=limit).keyed("train")] == full[:limit]

    def test_eval_fraction_zero_and_one(self, dataset):
        ds = self._split_dataset(dataset)
        assert next(iter(attrs.evolve(ds, eval_fraction=0.0).examples("eval")), None) is None
        assert next(iter(attrs.evolve(ds, eval_fraction=1.0).examples("train")), None) is None

    def test_shuffle_is_the_seeded_sample_of_the_split(self, dataset):
        ds = attrs.evolve(self._split_dataset(dataset), shuffle=False, limit=None)
        split = self._read(ds, "train")
        if len(split) >= self.max_examples:
            pytest.skip(f"more than {self.max_examples} examples")
        for limit in (None, 3):
            shuffled = [k for k, _ in attrs.evolve(ds, shuffle=True, limit=limit).keyed("train")]
            assert shuffled == [k for k, _ in seeded_sample(split, limit, seed=ds.seed)]
