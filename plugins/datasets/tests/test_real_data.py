"""Every registered dataset on its real data, offline, where the source is installed (CI installs
them: tox.ini and .ci/data.sh); elsewhere each test skips with the install command as the
reason."""

from __future__ import annotations

import json
import lzma

import pytest

from tokensmith import DataUnavailableError, Registry, split_of
from tokensmith.testing import no_network

NAMES = (
    "digits",
    "elementary-math-qa",
    "gsm-symbolic",
    "human-eval",
    "lee-corpus",
    "lee-similarity",
    "licenses",
    "mnist",
    "movielens",
    "natural-instructions",
    "simlex999",
    "squad-shifts",
    "stdlib-code",
    "turkish-lexicon",
    "turkish-speeches",
    "turkish-treebank",
    "udhr",
    "unifont",
    "words",
    "wordsim353",
)

#: how many examples each source has (DATA.md), checked by reading all of it where that is quick
COUNTS = {
    "digits": 1797,
    "human-eval": 164,
    "lee-corpus": 50,
    "lee-similarity": 1225,
    "wordsim353": 353,
    "simlex999": 999,
    "turkish-speeches": 411,
    "turkish-treebank": 4851,
    "turkish-lexicon": 67755,
    "licenses": 2310,
    "movielens": 100004,
    "unifont": 57086,
}


@pytest.fixture(scope="module")
def registry():
    return Registry.from_environment()


def installed(registry, config):
    dataset = registry.build("dataset", config)
    try:
        dataset.locate()
    except DataUnavailableError as exc:
        pytest.skip(f"{config['type']}: {exc.message} — {exc.hint}")
    return dataset


def test_every_catalogued_dataset_is_registered(registry):
    ours = {c.name for c in registry.components() if c.distribution == "tokensmith-datasets"}
    # text-files reads the user's own files: it has no real data of its own (test_text_files.py)
    assert ours == set(NAMES) | {"text-files"}


@pytest.mark.parametrize("name", sorted(set(NAMES) - set(COUNTS)))
def test_the_first_examples_offline(registry, name):
    """One pass over the start of the source (the BIG-bench sdist is 1.8 GB inside: a pass that
    reaches squad_shifts decompresses 1.6 GB of it)."""
    dataset = installed(registry, {"type": name, "limit": 3, "eval_fraction": 0.5})
    with no_network():
        keyed = list(dataset.keyed("eval"))
    assert len(keyed) == 3
    for key, example in keyed:
        assert set(example) == set(dataset.fields)
        assert split_of(key, eval_fraction=0.5) == "eval"
        json.dumps(example, allow_nan=False)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_the_whole_source_offline(registry, name):
    dataset = installed(registry, {"type": name, "eval_fraction": 0.25, "seed": 5})
    with no_network():
        keyed = list(dataset.keyed("all"))
        first_eval = next(iter(dataset.keyed("eval")))
    assert len(keyed) == COUNTS[name] and set(keyed[0][1]) == set(dataset.fields)
    evaluation = [k for k, _ in keyed if split_of(k, eval_fraction=0.25, seed=5) == "eval"]
    assert 0.2 < len(evaluation) / COUNTS[name] < 0.3 and first_eval[0] == evaluation[0]


def test_words_and_the_stdlib(registry):
    words = installed(registry, {"type": "words"})
    with no_network():
        everything = [e["word"] for e in words.examples("all")]
    assert len(everything) > 100_000 and "zebra" in everything
    code = installed(registry, {"type": "stdlib-code", "limit": 5, "shuffle": False})
    paths = [e["path"] for e in code.examples("all")]
    assert paths == sorted(paths) and all(p.endswith(".py") for p in paths)


def test_the_movielens_reader_agrees_with_pandas_on_the_real_file(registry):
    dataset = installed(registry, {"type": "movielens"})
    pd = pytest.importorskip("pandas")
    from tokensmith_datasets.ratings import read_frame

    raw = lzma.decompress(dataset.locate().read_bytes())
    ours, frame = read_frame(raw), pd.read_pickle(dataset.locate(), compression="xz")
    assert list(frame.columns) == [
        "rownames",
        "movieId",
        "title",
        "year",
        "genres",
        "userId",
        "rating",
        "timestamp",
    ]
    for column in frame.columns:
        expected = [None if v != v else v for v in frame[column].tolist()]
        assert [None if v != v else v for v in ours[column]] == expected, column


def test_gsm_symbolic_problems_do_not_depend_on_the_size(registry):
    small = installed(registry, {"type": "gsm-symbolic", "size": 6, "eval_fraction": 0.0})
    large = registry.build("dataset", {"type": "gsm-symbolic", "size": 12, "eval_fraction": 0.0})
    with no_network():
        first, more = list(small.examples("train")), list(large.examples("train"))
    assert first == more[:6] and len(more) == 12
    assert all(e["answer"] and "\n#### " in e["solution"] for e in more)
