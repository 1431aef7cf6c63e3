"""Shared fixtures: the shipped 'home' forest and strategies over its paraphrases."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from tokensmith_dahsf import Forest, load_forest, realize


@pytest.fixture(scope="session")
def home() -> Forest:
    return load_forest("home")


def _data_values(forest: Forest) -> dict[str, st.SearchStrategy[str]]:
    """Slot values drawn per data class: numbers, times, and names of letters that are no
    phrase of the forest (so they stay data words)."""
    word = st.text(alphabet="bcdfghjklmnpqrstvwxyzaeiou", min_size=2, max_size=8)
    name = st.lists(word.map(str.capitalize) | word, min_size=1, max_size=3).map(" ".join)
    number = st.integers(0, 10**6).map(str) | st.tuples(st.integers(0, 99), st.integers(0, 99)).map(
        lambda t: f"{t[0]}.{t[1]}"
    )
    time = st.tuples(st.integers(1, 12), st.sampled_from(["am", "pm", "AM", "pm"])).map(
        lambda t: f"{t[0]} {t[1]}"
    ) | st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda t: f"{t[0]}:{t[1]:02d}")
    return {"number": number, "time": time, "text": name}


def _is_data_word(forest: Forest, value: str, cls: str) -> bool:
    """Whether ``value`` digests to one data word of class ``cls``, exactly as written."""
    nodes = forest.digest(value).nodes
    return len(nodes) == 1 and getattr(nodes[0], "text", None) == value and nodes[0].cls == cls


@st.composite
def _commands(draw, forest: Forest):
    """A paraphrase of one of the forest's commands by the multiplication rule (every
    alternative, category value and data value drawn), with the parse it must give."""
    from hypothesis import assume

    template = draw(st.sampled_from(forest.templates))
    strategies = _data_values(forest)

    def data(cls: str):
        def draw_value() -> str:
            value = draw(strategies[cls])
            assume(_is_data_word(forest, value, cls))
            return value

        return draw_value

    return realize(
        forest,
        template,
        lambda seq: draw(st.sampled_from(list(seq))),
        data={cls: data(cls) for cls in strategies},
    )


@pytest.fixture(scope="session")
def commands(home):
    """A strategy of (paraphrase, parse) examples of the 'home' forest."""
    return _commands(home)


@pytest.fixture(scope="session")
def data_values(home):
    """Strategies of data-slot values per data class."""
    return _data_values(home)
