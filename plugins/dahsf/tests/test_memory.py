"""The multiplication rule: coverage grows with the product of the alternatives, the compiled
forest with their sum; the naive phrasebook of every sentence grows with the product."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_dahsf import count, phrasebook, product_forest

from tokensmith import ResourceLimitError


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_structure_is_the_sum_coverage_the_product(sizes):
    forest = product_forest(sizes)
    size = forest.structure_size()
    k, total = len(sizes), sum(sizes)
    # lexicon: a root + one node per word; categories: a root + one per value; commands: a root + k
    assert size["trie_nodes"] == (1 + total) + (1 + total) + (1 + k)
    assert size["alternatives"] == 2 * total + 1  # each word: its phrase and its place in a category
    assert count(forest, "COMMAND") == math.prod(sizes)
    book = phrasebook(forest)
    assert len(book) == math.prod(sizes)  # the naive baseline stores every sentence
    for sentence, parse in list(book.items())[:20]:
        assert forest.parse(sentence) == parse


def test_adding_values_adds_to_the_forest_and_multiplies_the_phrasebook():
    small, large = product_forest([4, 4, 4]), product_forest([8, 8, 8])
    grown = large.structure_size()["trie_nodes"] - small.structure_size()["trie_nodes"]
    assert grown == 2 * 12  # twelve more words: one lexicon node and one category node each
    assert count(large, "COMMAND") == 8 * count(small, "COMMAND")
    assert len(phrasebook(large)) == 8 * len(phrasebook(small))


def test_the_phrasebook_refuses_a_product_past_its_limit(home):
    with pytest.raises(ResourceLimitError, match="phrasebook"):
        phrasebook(product_forest([10] * 7))
    sentences = sum(count(home, t) for t in home.templates)
    assert sentences > 100 * home.structure_size()["alternatives"]
