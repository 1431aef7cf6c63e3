"""The brief's invariants: threads resolve to their gold value with no cycles, valid JSON with
unique keys, depths within tolerance, same seed same haystack, conditional gold exactly the
keys holding the character; and the scoring rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_needle_threading.haystack import (
    DEPTH_TASKS,
    TASKS,
    TaskSettings,
    follow,
    keys_with_value,
    make_question,
    pairs_for,
    score,
)

lengths = st.integers(600, 6000)
directions = st.sampled_from(["forward", "backward", "random"])


def _settings(**kw):
    return TaskSettings(**kw)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(TASKS),
    lengths,
    st.floats(0, 100),
    st.integers(0, 2**32),
    directions,
    st.sampled_from(["clustered", "depthwise"]),
)
def test_valid_json_with_unique_keys_and_about_the_asked_length(
    task, length, depth, seed, direction, placement
):
    q = make_question(task, length, depth, _settings(direction=direction, placement=placement), seed)
    text = q.haystack.to_json()
    pairs = json.loads(text, object_pairs_hook=list)
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)) == pairs_for(length)
    assert [tuple(p) for p in pairs] == list(q.haystack.pairs)
    # each pair is 80 characters with its separator (conditional keys one more)
    assert abs(len(text) - length) <= 40 + 3


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["threading", "multi_threading"]),
    st.integers(1300, 6000),
    st.integers(0, 2**32),
    directions,
    st.integers(1, 5),
    st.integers(1, 3),
)
def test_every_thread_resolves_to_its_gold_value_without_cycles(task, length, seed, direction, hops, threads):
    s = _settings(direction=direction, thread_length=hops, num_threads=threads)
    q = make_question(task, length, None, s, seed)
    keys = [k for k, _ in q.haystack.pairs]
    index = {k: i for i, k in enumerate(keys)}
    assert len(q.threads) == (1 if task == "threading" else threads)
    for chain, gold in zip(q.threads, q.gold):
        assert len(chain) == hops + 1 and len(set(chain)) == hops + 1  # no cycle
        # every hop's key exists exactly once; the last value is no key
        assert all(keys.count(k) == 1 for k in chain[:-1]) and chain[-1] not in index
        assert follow(q.haystack, chain[0], limit=10 * hops) == list(chain) and chain[-1] == gold
        spots = [index[k] for k in chain[:-1]]
        if direction == "forward":
            assert spots == sorted(spots)
        elif direction == "backward":
            assert spots == sorted(spots, reverse=True)


@settings(max_examples=30, deadline=None)
@given(lengths, st.integers(0, 2**32), directions, st.integers(1, 3), st.integers(1, 3))
def test_a_branched_thread_reaches_exactly_its_gold_keys(length, seed, direction, branches, hops):
    s = _settings(direction=direction, branches=branches, branch_length=hops)
    if sum(branches**h for h in range(1, hops + 1)) > pairs_for(length):
        return
    q = make_question("branched_threading", length, None, s, seed)
    frontier = [q.threads[0][0]]
    for _ in range(hops):
        frontier = keys_with_value(q.haystack, frontier)
        assert len(frontier) == len(set(frontier))
    assert sorted(frontier) == sorted(q.gold) and len(q.gold) == branches**hops


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(DEPTH_TASKS), st.integers(800, 8000), st.floats(0, 100), st.integers(0, 2**32))
def test_needle_depths_are_within_one_pair_of_the_target(task, length, depth, seed):
    q = make_question(task, length, depth, _settings(placement="clustered"), seed)
    n = len(q.haystack.pairs)
    first = q.haystack.depth(q.needles[0])
    # the depth of the (first) needle, in characters, is within one pair of the target, unless a
    # cluster of needles had to move earlier to fit before the end
    one_pair = 100.0 * 81 / len(q.haystack.to_json()) + 1e-9
    assert abs(first - depth) <= one_pair or (q.needles[-1] == n - 1 and first < depth)
    assert list(q.needles) == list(range(q.needles[0], q.needles[0] + len(q.needles))) and q.needles[-1] < n


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(TASKS), lengths, st.integers(0, 2**32))
def test_same_seed_same_haystack_and_another_seed_another(task, length, seed):
    a = make_question(task, length, 50.0, _settings(), seed)
    assert a == make_question(task, length, 50.0, _settings(), seed)
    assert a.haystack != make_question(task, length, 50.0, _settings(), seed + 1).haystack


@settings(max_examples=30, deadline=None)
@given(
    lengths,
    st.integers(0, 2**32),
    st.sampled_from(["*", "#", "Z", "~"]),
    st.integers(1, 5),
    st.sampled_from(["clustered", "depthwise"]),
)
def test_conditional_gold_is_exactly_the_values_of_the_keys_holding_the_character(
    length, seed, char, m, placement
):
    q = make_question(
        "conditional_needles",
        length,
        30.0,
        _settings(conditional_character=char, num_needles=m, placement=placement),
        seed,
    )
    holding = [v for k, v in q.haystack.pairs if char in k]
    assert list(q.gold) == holding and len(holding) == m
    assert f'"{char}"' in q.question


def test_the_scoring_rules():
    q = make_question("single_needle", 1000, 0.0, _settings(), 1)
    gold = q.gold[0]
    assert score(q, gold) == 1.0 and score(q, f' "{gold}" is the value') == 1.0
    assert score(q, gold[:-1]) == 0.0 and score(q, "The value is " + gold) == 0.0
    m = make_question("multiple_needles", 2000, 50.0, _settings(num_needles=3), 1)
    others = [k for k, _ in m.haystack.pairs]
    assert score(m, ", ".join(m.gold)) == 1.0 and score(m, m.gold[0]) == pytest.approx(1 / 3)
    # listing every UUID of the haystack first gains nothing: only the first len(gold) count
    assert score(m, ", ".join(others + list(m.gold))) < 1.0


def test_a_length_too_short_for_a_task_is_a_value_error():
    with pytest.raises(ValueError, match="places 14"):
        make_question("branched_threading", 500, None, _settings(branch_length=3), 0)
