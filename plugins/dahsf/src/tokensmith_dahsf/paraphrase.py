"""Paraphrases of a forest's commands by the multiplication rule (DAHSF, Kevin You, arXiv
2412.14054): a template whose items have m_1 .. m_k alternatives has Π m_i surface forms, each
of which digests to the same template and slot values.

``realize`` builds one surface form from a chooser (a seeded ``random.Random``, or a hypothesis
draw in the tests), ``paraphrases`` enumerates them all for fixed slot values, ``count`` gives
Π/Σ without enumerating, and ``phrasebook`` is the naive baseline that stores every sentence.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import product
from typing import Any

import attrs

from tokensmith import InputError, ResourceLimitError

from .forest import Forest, Parse

Chooser = Callable[[Sequence[Any]], Any]


@attrs.frozen
class Example:
    """A generated command and the parse it must digest to."""

    text: str
    parse: Parse


def _item_forms(forest: Forest, item: Any, slots: Mapping[str, str]) -> list[str]:
    if item.slot and item.is_data:
        return [slots[item.slot]]
    key = slots[item.slot] if item.slot else item.key  # a category slot: the value symbol chosen
    return list(surface_forms(forest, key, slots))


def surface_forms(forest: Forest, symbol: str, slots: Mapping[str, str]) -> Iterator[str]:
    """Every surface form of ``symbol`` with these slot values: the product, over the items of
    each alternative, of their forms (the multiplication rule), summed over alternatives."""
    rule = forest.rules[symbol]
    if rule.layer == 0:
        for alt in rule.alternatives:
            yield " ".join(alt.text.split())
        return
    for alt in rule.alternatives:
        for parts in product(*(_item_forms(forest, item, slots) for item in alt.items)):
            yield " ".join(p for p in parts if p)


def paraphrases(forest: Forest, parse: Parse) -> Iterator[str]:
    """All paraphrases of one parse (its template with those slot values)."""
    forest.render_parse(parse)  # checks the template, the slot names and the category values
    yield from surface_forms(forest, parse.template, parse.slots)


def count(forest: Forest, symbol: str) -> int:
    """How many sentences ``symbol`` covers over the forest's slot values (data slots: their
    examples): Σ over alternatives of Π over items, computed without enumerating them."""
    memo: dict[str, int] = {}

    def of(key: str) -> int:
        if key not in memo:
            rule = forest.rules[key]
            memo[key] = (
                len(rule.alternatives)
                if rule.layer == 0
                else sum(math.prod(item_count(item) for item in alt.items) for alt in rule.alternatives)
            )
        return memo[key]

    def item_count(item: Any) -> int:
        if item.is_data:
            return len(forest.data_class(item.key[1:]).examples)
        return of(item.key)  # a category: the sum over its values

    return of(symbol)


def realize(
    forest: Forest, template: str, choose: Chooser, data: Mapping[str, Callable[[], str]] | None = None
) -> Example:
    """One paraphrase of ``template``: every alternative, category value and data example
    picked by ``choose`` (data values by ``data[class]()`` when given)."""
    slots: dict[str, str] = {}
    for slot in forest.slot_names(template):
        item = forest.slot_item(template, slot)
        if item.is_data and data is not None and item.key[1:] in data:
            slots[slot] = data[item.key[1:]]()
        else:
            slots[slot] = choose(forest.slot_values(template, slot))

    def form(symbol: str) -> str:
        rule = forest.rules[symbol]
        alt = choose(rule.alternatives)
        if rule.layer == 0:
            return " ".join(alt.text.split())
        parts = []
        for item in alt.items:
            if item.slot and item.is_data:
                parts.append(slots[item.slot])
            else:
                parts.append(form(slots[item.slot] if item.slot else item.key))
        return " ".join(p for p in parts if p)

    return Example(form(template), Parse(template, slots))


def sample(forest: Forest, n: int, *, seed: int = 0) -> list[Example]:
    """``n`` paraphrases, templates taken in turn, every choice drawn by a seeded generator."""
    if n < 1:
        raise InputError(f"asked for {n} examples; ask for at least 1", component=forest.component)
    rng = random.Random(seed)
    return [realize(forest, forest.templates[i % len(forest.templates)], rng.choice) for i in range(n)]


def phrasebook(forest: Forest, *, limit: int = 1_000_000) -> dict[str, Parse]:
    """The naive baseline DAHSF replaces: a table from every sentence the forest covers to its
    parse. Its size is the product of the alternatives, so past ``limit`` entries it is a
    ResourceLimitError rather than an exhausted memory."""
    total = sum(count(forest, t) for t in forest.templates)
    if total > limit:
        raise ResourceLimitError(
            f"a phrasebook of forest {forest.name!r} has {total:,} sentences, over the limit of {limit:,}",
            component=forest.component,
            hint="that product is the point: digest with the forest instead",
        )
    book: dict[str, Parse] = {}
    for template in forest.templates:
        names = forest.slot_names(template)
        for values in product(*(forest.slot_values(template, s) for s in names)):
            parse = Parse(template, dict(zip(names, values, strict=True)))
            for sentence in surface_forms(forest, template, parse.slots):
                book[sentence.casefold()] = parse
    return book


def product_forest(sizes: Sequence[int]) -> Forest:
    """A forest with one command of ``len(sizes)`` category slots, slot i holding ``sizes[i]``
    one-word values: it covers Π sizes sentences with Σ sizes lexicon entries (the
    multiplication rule, for the memory test and the benchmark's size curve)."""
    if not sizes or any(not isinstance(m, int) or m < 1 for m in sizes):
        raise InputError(
            f"slot sizes must be positive ints, got {list(sizes)!r}", component="dahsf product forest"
        )
    lexicon = {f"W{i}_{j}": [f"word{i}x{j}"] for i, m in enumerate(sizes) for j in range(m)}
    categories = {f"SLOT{i}": [f"W{i}_{j}" for j in range(m)] for i, m in enumerate(sizes)}
    command = " ".join(f"s{i}=SLOT{i}" for i in range(len(sizes)))
    return Forest.from_dict(
        {
            "layers": [
                {"name": "lexicon", "rules": lexicon},
                {"name": "categories", "rules": categories},
                {"name": "commands", "rules": {"COMMAND": [command]}},
            ]
        },
        name=f"product-{'x'.join(map(str, sizes))}",
    )
