"""The dataset kind's core: the seeded split (a stable hash of each key: the same example in
the same split whatever the order, the sample size or the process), the seeded sample, the
lazy limit, SplitDataset's parameters through the registry, and the dataset contract."""

from __future__ import annotations

import hashlib
import itertools
import json
import socket
import subprocess
import sys

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import (
    ConfigError,
    Dataset,
    DatasetInfo,
    InputError,
    ParameterTypeError,
    SplitDataset,
    ValidationError,
    seeded_sample,
    seeded_split,
    split_of,
)
from tokensmith.core.dataset import content_key, take, unit_hash
from tokensmith.testing import DatasetContract, no_network

keys = st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=60)
fractions = st.floats(min_value=0.0, max_value=1.0)
seeds = st.integers(min_value=0, max_value=2**40)


def _reference_unit(key: str, seed: int, purpose: str) -> float:
    material = f"tokensmith:{purpose}:{seed}:{key}".encode("utf-8", "surrogatepass")
    return int(hashlib.blake2b(material, digest_size=8).hexdigest(), 16) / 2**64


@settings(max_examples=60, deadline=None)
@given(key=st.text(max_size=20), seed=seeds, purpose=st.sampled_from(["split", "order"]))
def test_the_hash_is_blake2b_of_purpose_seed_and_key(key, seed, purpose):
    value = unit_hash(key, seed, purpose)
    assert value == _reference_unit(key, seed, purpose) and 0 <= value < 1


@settings(max_examples=60, deadline=None)
@given(items=keys, fraction=fractions, seed=seeds, data=st.data())
def test_the_split_does_not_depend_on_order_or_on_how_much_is_read(items, fraction, seed, data):
    records = [(k, {"k": k}) for k in items]
    evaluation = [k for k, _ in seeded_split(records, "eval", eval_fraction=fraction, seed=seed)]
    train = [k for k, _ in seeded_split(records, "train", eval_fraction=fraction, seed=seed)]
    assert sorted(evaluation + train) == sorted(items) and not set(evaluation) & set(train)
    assert evaluation == [k for k in items if k in set(evaluation)]  # the source's order is kept
    shuffled = data.draw(st.permutations(records))
    assert {k for k, _ in seeded_split(shuffled, "eval", eval_fraction=fraction, seed=seed)} \
        == set(evaluation)
    prefix = data.draw(st.integers(0, len(records)))
    assert [k for k, _ in seeded_split(records[:prefix], "eval", eval_fraction=fraction, seed=seed)] \
        == [k for k in evaluation if k in {k for k, _ in records[:prefix]}]


@settings(max_examples=60, deadline=None)
@given(items=keys, a=fractions, b=fractions, seed=seeds)
def test_a_larger_eval_fraction_only_moves_examples_into_eval(items, a, b, seed):
    low, high = sorted((a, b))
    assert {k for k in items if split_of(k, eval_fraction=low, seed=seed) == "eval"} \
        <= {k for k in items if split_of(k, eval_fraction=high, seed=seed) == "eval"}


def test_the_eval_fraction_is_honoured_and_the_seed_matters():
    items = [f"example-{i}" for i in range(20000)]
    share = sum(split_of(k, eval_fraction=0.1, seed=0) == "eval" for k in items) / len(items)
    assert abs(share - 0.1) < 5 * (0.1 * 0.9 / len(items)) ** 0.5  # five standard deviations
    assert [split_of(k, eval_fraction=0.5, seed=0) for k in items[:64]] \
        != [split_of(k, eval_fraction=0.5, seed=1) for k in items[:64]]
    assert all(split_of(k, eval_fraction=0.0) == "train" for k in items[:500])
    assert all(split_of(k, eval_fraction=1.0) == "eval" for k in items[:500])


def test_the_split_is_the_same_in_processes_with_different_hash_seeds(tmp_path):
    code = ("import json; from tokensmith import split_of; "
            "print(json.dumps([split_of(f'k{i}', eval_fraction=0.3, seed=7) for i in range(200)]))")
    outputs = set()
    for hash_seed in ("1", "2"):
        run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                             env={"PYTHONHASHSEED": hash_seed, "PATH": ""}, timeout=120)
        assert run.returncode == 0, run.stderr
        outputs.add(run.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == [split_of(f"k{i}", eval_fraction=0.3, seed=7) for i in range(200)]


def test_bad_splits_and_fractions_are_typed_errors():
    with pytest.raises(InputError, match="unknown split 'test'"):
        list(seeded_split([("a", 1)], "test"))
    with pytest.raises(ConfigError, match="eval_fraction"):
        list(seeded_split([("a", 1)], "eval", eval_fraction=1.5))
    with pytest.raises(ConfigError, match="eval_fraction"):
        list(seeded_split([("a", 1)], "eval", eval_fraction=True))
    assert [k for k, _ in seeded_split([("a", 1), ("b", 2)], "all", eval_fraction=0.5)] == ["a", "b"]


@settings(max_examples=60, deadline=None)
@given(items=keys, n=st.integers(0, 70), seed=seeds, data=st.data())
def test_the_seeded_sample_is_the_brute_force_smallest_hashes(items, n, seed, data):
    records = [(k, k.upper()) for k in items]
    expected = sorted(items, key=lambda k: (_reference_unit(k, seed, "order"), k))
    assert [k for k, _ in seeded_sample(records, n, seed=seed)] == expected[:n]
    assert [k for k, _ in seeded_sample(records, None, seed=seed)] == expected
    shuffled = data.draw(st.permutations(records))
    assert seeded_sample(shuffled, n, seed=seed) == seeded_sample(records, n, seed=seed)
    with pytest.raises(ConfigError):
        seeded_sample(records, -1)


def test_take_reads_lazily():
    consumed = []

    def endless():
        for i in itertools.count():
            consumed.append(i)
            yield i

    assert list(take(endless(), 3)) == [0, 1, 2] and consumed == [0, 1, 2]
    assert list(take(iter(range(4)), None)) == [0, 1, 2, 3]
    with pytest.raises(ConfigError):
        take([], -2)


def test_a_content_key_is_stable_and_ignores_key_order():
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


# -- SplitDataset --------------------------------------------------------------------------

READ: list[str] = []


@attrs.define(kw_only=True)
class Numbers(SplitDataset):
    """``count`` numbers with their squares; remembers how many records were read."""

    name = "numbers"
    fields = {"n": "the number", "square": "its square"}
    count: int = 50

    def records(self):
        for i in range(self.count):
            READ.append(str(i))
            yield f"n{i}", {"n": i, "square": i * i}


class TestNumbersContract(DatasetContract):
    @pytest.fixture
    def dataset(self):
        return Numbers(eval_fraction=0.3, seed=3)


class TestShuffledNumbersContract(DatasetContract):
    @pytest.fixture
    def dataset(self):
        return Numbers(eval_fraction=0.5, shuffle=True, limit=7)


def test_a_limit_stops_reading_the_source():
    READ.clear()
    ds = Numbers(count=10**9, eval_fraction=0.2, limit=5)
    first = list(ds.examples("eval"))
    assert len(first) == 5 and len(READ) < 200  # stopped after the fifth eval example
    assert [e["n"] for e in first] == [i for i in range(len(READ)) if split_of(f"n{i}", eval_fraction=0.2)
                                       == "eval"][:5]


def test_the_same_examples_land_in_the_same_split_whatever_the_size():
    small, large = Numbers(count=40), Numbers(count=400)
    assert list(small.examples("eval")) == [e for e in large.examples("eval") if e["n"] < 40]


def test_shuffle_gives_a_seeded_uniform_order():
    a = [e["n"] for e in Numbers(shuffle=True, eval_fraction=0.0).examples("train")]
    b = [e["n"] for e in Numbers(shuffle=True, eval_fraction=0.0, seed=1).examples("train")]
    assert sorted(a) == sorted(b) == list(range(50)) and a != b and a != sorted(a)


def test_split_dataset_parameters_are_validated_in_python():
    with pytest.raises(ConfigError, match="eval_fraction"):
        Numbers(eval_fraction=2.0)
    with pytest.raises(ConfigError, match="limit"):
        Numbers(limit=0)
    with pytest.raises(ParameterTypeError, match="shuffle"):
        Numbers(shuffle="yes")
    with pytest.raises(ParameterTypeError, match="seed"):
        Numbers(seed=1.5)


def test_a_dataset_builds_by_name_and_bad_parameters_are_config_errors(make_registry):
    from tokensmith import Component, hookimpl

    class Plugin:
        @hookimpl
        def tokensmith_register_datasets(self):
            return [Component("numbers", Numbers, "numbers and their squares")]

    registry = make_registry(Plugin())
    ds = registry.build("dataset", {"type": "numbers", "limit": 3, "seed": 2, "count": 30})
    assert isinstance(ds, Numbers) and len(list(ds.examples("train"))) == 3
    for bad, name in (({"limit": 0}, "limit"), ({"eval_fraction": -0.1}, "eval_fraction"),
                      ({"shuffle": "yes"}, "shuffle"), ({"seed": "7"}, "seed"), ({"limt": 3}, "limit")):
        with pytest.raises((ConfigError, ValidationError), match=name):
            registry.build("dataset", {"type": "numbers", **bad})


def test_the_contract_catches_duplicate_keys_and_undeclared_fields():
    @attrs.define(kw_only=True)
    class Broken(SplitDataset):
        name = "broken"
        fields = {"x": "a value"}

        def records(self):
            return iter([("same", {"x": 1}), ("same", {"x": 2, "extra": 0})])

    contract = DatasetContract()
    with pytest.raises(AssertionError, match="share a key"):
        contract.test_keys_are_unique_strings(Broken())
    with pytest.raises(AssertionError):
        contract.test_examples_have_exactly_the_declared_fields(Broken())


def test_a_plain_dataset_has_content_keys_and_a_description():
    class Plain(Dataset):
        name = "plain"
        fields = {"text": "a text"}

        def examples(self, split="train"):
            return iter([{"text": "a"}, {"text": "b"}])

    assert [k for k, _ in Plain().keyed()] == [content_key({"text": "a"}), content_key({"text": "b"})]
    info = Plain().describe()
    assert info == DatasetInfo("plain", {"text": "a text"})
    assert info.to_json()["splits"] == ["train", "eval", "all"]


def test_no_network_blocks_connections_and_restores_them():
    original = socket.create_connection
    with no_network():
        with pytest.raises(AssertionError, match="network"):
            socket.create_connection(("127.0.0.1", 9))
        with pytest.raises(AssertionError, match="network"):
            socket.getaddrinfo("localhost", 80)
    assert socket.create_connection is original
