"""CharBench's items: the brief's invariants (i)-(iv), the bottom-k word sample against brute
force, the paper's parsing, and bad input as typed errors naming the component."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_charbench.covariates import covariates, token_spans
from tokensmith_charbench.evaluation import CharBenchCovariates
from tokensmith_charbench.tasks import TASKS, _rank, bottom_k, candidate_words, parse_answer

from tokensmith import DataUnavailableError, InputError, tiny_tokenizer

from .conftest import solve

words_st = st.lists(
    st.text(alphabet="abcdeABCxyz", min_size=4, max_size=7), min_size=24, max_size=60, unique=True
)


def _items(words, seed, per_cell=1, tasks=TASKS):
    lengths = {len(w) for w in words}
    ev = CharBenchCovariates(
        words=tuple(words), sample=per_cell, seed=seed, tasks=tasks, min_length=4, max_length=7
    )
    # every length 4-7 needs per_cell x tasks words: pad each bucket with fixed words
    assert lengths <= {4, 5, 6, 7}
    return ev.items()


def _padded(words):
    fill = [
        w * 1
        for w in (
            "abab",
            "cdcdc",
            "efefef",
            "ghghghg",
            "AbAb",
            "CdCdC",
            "EfEfEf",
            "GhGhGhG",
            "xyxy",
            "zyzyz",
            "xyzxyz",
            "zzzyyyx",
            "Xyxy",
            "Zyzyz",
            "Xyzxyz",
            "Zzzyyyx",
        )
    ]
    return list(dict.fromkeys([*words, *fill]))


@settings(max_examples=30, deadline=None)
@given(words_st, st.integers(0, 10_000))
def test_gold_answers_queried_characters_and_balance(words, seed):
    items = _items(_padded(words), seed)
    for item in items:
        # (i) the gold answer, recomputed independently from the prompt's text
        assert item.answer == solve(item.prompt)
        # (ii) the queried character occurs in the word
        if item.task == "count_unique_chars":
            assert item.character is None
        else:
            assert item.character in item.word
    # (iii) every (task, length) cell holds the same number of words, none used twice
    cells = Counter((i.task, len(i.word)) for i in items)
    assert set(cells.values()) == {1} and len(cells) == len(TASKS) * 4
    assert len({i.word for i in items}) == len(items)


@pytest.mark.parametrize("kind", ["byte_level", "byte_fallback"])
@settings(max_examples=20, deadline=None)
@given(words=words_st, seed=st.integers(0, 100))
def test_target_token_length_and_spans_cover_the_word(kind, words, seed):
    tokenizer = tiny_tokenizer(kind)
    for item in _items(_padded(words), seed):
        spans = token_spans(tokenizer, item.word, "test")
        pieces = [s for s in spans if s[1] > s[0]]
        # (iv) the non-empty spans tile the word, and the target token holds the answer index
        assert "".join(item.word[a:b] for a, b in pieces) == item.word
        assert all(b1 == a2 for (_, b1), (a2, _) in zip(pieces, pieces[1:]))
        cov = covariates(item, tokenizer, "test")
        assert cov["number_of_tokens"] == len(tokenizer.encode(item.word).ids)
        if item.task.startswith("find_"):
            holder = [b - a for a, b in pieces if a <= item.answer < b]
            assert cov["target_token_length"] == holder[0] >= 1
        else:
            assert cov["target_token_length"] is None


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet="abcXY", min_size=1, max_size=6), max_size=80),
    st.integers(1, 5),
    st.integers(0, 50),
    st.randoms(use_true_random=False),
)
def test_bottom_k_is_the_k_smallest_distinct_hashes_whatever_the_order(words, k, seed, rng):
    got = bottom_k(words, k, seed, range(1, 7))
    for n in range(1, 7):
        distinct = sorted({w for w in words if len(w) == n}, key=lambda w: (_rank(w, seed), w))
        assert got[n] == distinct[:k]
    shuffled = list(words) * 2
    rng.shuffle(shuffled)
    assert bottom_k(shuffled, k, seed, range(1, 7)) == got


def test_words_are_the_papers_regex_matches_of_4_to_10_letters():
    text = "The naïve co-operation of Ångström's 42 cats, e.g. abc and supercalifragilistic words"
    assert list(candidate_words([text], 4, 10)) == ["operation", "cats", "words"]


def test_answers_parse_as_the_paper_parses_them():
    assert parse_answer("3") == 3 and parse_answer(" 12\n") == 12 and parse_answer("-1") == -1
    assert (
        parse_answer("The answer is 3.") is None and parse_answer("3.") is None and parse_answer("") is None
    )


@pytest.mark.parametrize(
    "words, match",
    [
        (("abcd", "12345", "efgh"), "not made of the letters"),
        (("abcd", "----", "efgh"), "not made of the letters"),
        (("abcd", "naïve"), "not made of the letters"),
        (("abc",), "not 4-10 letters long"),
        (("abcd", "abcd"), "more than once"),
        (("abcd", "efgh"), "too few distinct words"),
    ],
)
def test_bad_words_are_input_errors_naming_the_component(words, match):
    with pytest.raises(InputError, match=match) as info:
        CharBenchCovariates(words=words, sample=1).items()
    assert info.value.component == "evaluation 'charbench-covariates'"


def test_a_source_with_too_few_words_is_an_error_not_a_smaller_bucket():
    with pytest.raises(DataUnavailableError, match="too few distinct words"):
        CharBenchCovariates(sample=1, limit=50).items()
