"""Needle Threading's haystacks and its six retrieval tasks.

Roberts, Han & Albanie, "Needle Threading: Can LLMs Follow Threads through Near-Million-Scale
Haystacks?" (ICLR 2025; arXiv 2411.05000), section 3. A haystack is a JSON object of random
UUID keys and values, filled until it reaches a length in *characters* (so lengths compare
across tokenizers). The UUIDs are 128 random bits from a seeded generator, written in UUID
form (as the paper's released data: not v4-stamped). Needles are pairs placed at a depth (0 %
= the first pair, 100 % = the last); threads are chains in which a pair's value is the next
pair's key, laid through the context forward, backward or in random order.

The six tasks (question wordings: the Single Needle one is the paper's, as in its released
data; the others follow it, since the paper's generator is not released):

- ``single_needle``: the value of one key, at a depth;
- ``multiple_needles``: the values of ``num_needles`` keys, clustered at a depth or spread
  evenly through the context (``placement = "depthwise"``);
- ``conditional_needles``: the values of every key holding ``conditional_character`` (inserted
  at a random place in ``num_needles`` keys; no other key can hold it);
- ``threading``: follow a thread of ``thread_length`` hops from its first key to its last value;
- ``multi_threading``: ``num_threads`` disjoint threads at once, every final value;
- ``branched_threading``: a thread that branches into ``branches`` at every hop. JSON keys are
  unique, so a key leads to one value and a branch point is a value shared by several keys: from
  a start value the thread runs to every key holding it, then every key holding one of those, for
  ``branch_length`` hops; the answer is the keys of the last hop. (The paper's appendix task,
  whose generator is not published: this construction is ours.)
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Sequence

import attrs

TASKS = (
    "single_needle",
    "multiple_needles",
    "conditional_needles",
    "threading",
    "multi_threading",
    "branched_threading",
)
#: the tasks whose needles sit at a chosen depth (multiple/conditional only when clustered)
DEPTH_TASKS = ("single_needle", "multiple_needles", "conditional_needles")
#: characters a UUID or the JSON around it can hold: a conditional character must be none of them
UUID_ALPHABET = frozenset("0123456789abcdef-")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

SINGLE = (
    'Extract the value corresponding to the specified key in the JSON object. Key: "{key}"\n'
    " Corresponding value: "
)
MULTIPLE = (
    "Extract the values corresponding to the specified keys in the JSON object. Keys: {keys}\n"
    " Corresponding values: "
)
CONDITIONAL = (
    "Extract the values corresponding to every key in the JSON object that contains the character "
    '"{character}".\n Corresponding values: '
)
THREAD = (
    "In the JSON object a value can itself be a key. Starting from the specified key, follow the chain "
    'of values until reaching a value that is not a key. Key: "{key}"\n Final value: '
)
MULTI_THREAD = (
    "In the JSON object a value can itself be a key. Starting from each of the specified keys, follow "
    "the chain of values until reaching a value that is not a key. Keys: {keys}\n Final values: "
)
BRANCHED = (
    "In the JSON object several keys can have the same value. Starting from the specified value, find "
    "every key that has it as its value, then every key whose value is one of those keys, and so on: "
    '{steps} steps in all. Value: "{value}"\n Keys found at the last step: '
)


@attrs.frozen
class Haystack:
    """UUID key-value pairs in context order; :meth:`to_json` is the text the model reads."""

    pairs: tuple[tuple[str, str], ...]

    def to_json(self) -> str:
        return json.dumps(dict(self.pairs))

    def offset(self, index: int) -> int:
        """The character offset of pair ``index`` (its key's opening quote) in :meth:`to_json`."""
        return 1 + sum(_pair_chars(k, v) + 2 for k, v in self.pairs[:index])

    def depth(self, index: int) -> float:
        """Where pair ``index`` starts, in percent of the text's length."""
        return 100.0 * self.offset(index) / len(self.to_json())


def _pair_chars(key: str, value: str) -> int:
    return len(json.dumps(key)) + 2 + len(json.dumps(value))


@attrs.frozen
class Question:
    """One item: the haystack, the question, the gold answer(s) and what was placed where.
    ``needles`` are the indices of the pairs the answer depends on; ``threads`` the chains of
    UUIDs (start to end) of the threading tasks."""

    task: str
    length: int
    depth: float | None
    haystack: Haystack
    question: str
    gold: tuple[str, ...]
    needles: tuple[int, ...]
    threads: tuple[tuple[str, ...], ...] = ()

    @property
    def prompt(self) -> str:
        """The paper's prompt: the haystack, a newline, the question."""
        return self.haystack.to_json() + "\n" + self.question


@attrs.frozen
class TaskSettings:
    """The task parameters (the evaluation's fields of the same names)."""

    num_needles: int = 3
    placement: str = "clustered"
    conditional_character: str = "*"
    thread_length: int = 3
    num_threads: int = 2
    branches: int = 2
    branch_length: int = 2
    direction: str = "forward"


class _UUIDs:
    """Distinct random UUIDs from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.seen: set[str] = set()

    def __call__(self) -> str:
        while True:
            value = str(uuid.UUID(int=self.rng.getrandbits(128)))
            if value not in self.seen:
                self.seen.add(value)
                return value


def pairs_for(length: int) -> int:
    """How many standard pairs make a haystack of about ``length`` characters: each pair with
    its separator is 80 characters (``"<36>": "<36>", ``) and the braces add 2, less the last
    separator."""
    return max(1, round(length / 80))


def depth_index(depth: float, n: int, width: int = 1) -> int:
    """The first of ``width`` consecutive pairs placed at ``depth`` percent of a haystack of
    ``n`` pairs: the pair whose start is nearest that share of the text (pair ``i`` starts at
    character ``1 + 80 i`` of ``80 n``), kept inside the haystack."""
    return min(max(round((depth / 100.0 * 80 * n - 1) / 80), 0), n - width)


def _ordered(indices: list[int], direction: str, rng: random.Random) -> list[int]:
    """A thread's pair positions in hop order: ascending (forward through the context),
    descending (backward) or shuffled (random)."""
    indices = sorted(indices)
    if direction == "backward":
        return indices[::-1]
    if direction == "random":
        rng.shuffle(indices)
    return indices


def required_pairs(task: str, settings: TaskSettings) -> int:
    """The pairs a task places besides filler."""
    if task == "single_needle":
        return 1
    if task in ("multiple_needles", "conditional_needles"):
        return settings.num_needles
    if task == "threading":
        return settings.thread_length
    if task == "multi_threading":
        return settings.thread_length * settings.num_threads
    return sum(settings.branches**level for level in range(1, settings.branch_length + 1))


def make_question(
    task: str, length: int, depth: float | None, settings: TaskSettings, seed: int, repeat: int = 0
) -> Question:
    """One item of ``task`` in a haystack of about ``length`` characters. The generator is seeded
    by the seed, task, length, depth and repeat alone: the same arguments give the same item in
    any process. Raises ``ValueError`` when the length cannot hold the task's pairs."""
    rng = random.Random(f"needle-threading:{seed}:{task}:{length}:{depth}:{repeat}")
    new = _UUIDs(rng)
    n = pairs_for(length)
    need = required_pairs(task, settings)
    if need > n:
        raise ValueError(f"{length} characters hold {n} key-value pairs, but {task} places {need}")
    pairs: list[tuple[str, str] | None] = [None] * n
    threads: tuple[tuple[str, ...], ...] = ()
    if task == "single_needle":
        at = depth_index(depth, n)
        key, value = new(), new()
        pairs[at] = (key, value)
        needles, gold, question = (at,), (value,), SINGLE.format(key=key)
    elif task in ("multiple_needles", "conditional_needles"):
        m = settings.num_needles
        if settings.placement == "clustered":
            start = depth_index(depth, n, m)
            needles = tuple(range(start, start + m))
        else:  # depthwise: spread evenly from the first pair to the last
            needles = (
                tuple(round(i * (n - 1) / (m - 1)) for i in range(m)) if m > 1 else (depth_index(50, n),)
            )
        keys = [new() for _ in range(m)]
        if task == "conditional_needles":
            keys = [_insert(k, settings.conditional_character, rng) for k in keys]
        values = [new() for _ in range(m)]
        for at, key, value in zip(needles, keys, values):
            pairs[at] = (key, value)
        gold = tuple(values)
        question = (
            MULTIPLE.format(keys=", ".join(f'"{k}"' for k in keys))
            if task == "multiple_needles"
            else CONDITIONAL.format(character=settings.conditional_character)
        )
    elif task in ("threading", "multi_threading"):
        count = 1 if task == "threading" else settings.num_threads
        hops = settings.thread_length
        spots = rng.sample(range(n), hops * count)
        rng.shuffle(spots)
        chains = []
        for t in range(count):
            chain = [new() for _ in range(hops + 1)]
            for hop, at in enumerate(_ordered(spots[t * hops : (t + 1) * hops], settings.direction, rng)):
                pairs[at] = (chain[hop], chain[hop + 1])
            chains.append(tuple(chain))
        threads = tuple(chains)
        needles = tuple(sorted(spots))
        gold = tuple(chain[-1] for chain in chains)
        question = (
            THREAD.format(key=chains[0][0])
            if task == "threading"
            else MULTI_THREAD.format(keys=", ".join(f'"{c[0]}"' for c in chains))
        )
    elif task == "branched_threading":
        b, hops = settings.branches, settings.branch_length
        root = new()
        levels: list[list[tuple[str, str]]] = []
        frontier = [root]
        for _ in range(hops):
            level = [(new(), parent) for parent in frontier for _ in range(b)]
            levels.append(level)
            frontier = [key for key, _ in level]
        spots = sorted(rng.sample(range(n), need))
        # one hop after another through the context, in the thread's direction
        if settings.direction == "backward":
            spots = spots[::-1]
        elif settings.direction == "random":
            rng.shuffle(spots)
        flat = [pair for level in levels for pair in level]
        for at, pair in zip(spots, flat):
            pairs[at] = pair
        needles = tuple(sorted(spots))
        gold = tuple(frontier)
        threads = tuple((root,) + tuple(key for key, _ in level) for level in levels)
        question = BRANCHED.format(steps=hops, value=root)
    else:
        raise ValueError(f"unknown Needle Threading task {task!r}")
    filled = tuple(pair if pair is not None else (new(), new()) for pair in pairs)
    return Question(task, length, depth, Haystack(filled), question, gold, needles, threads)


def _insert(key: str, character: str, rng: random.Random) -> str:
    at = rng.randrange(len(key) + 1)
    return key[:at] + character + key[at:]


def score(question: Question, reply: str) -> float:
    """The share of the gold answer the reply gets right. One answer (single needle, threading):
    the paper's exact match of the reply's leading characters (after whitespace and an opening
    quote). Several: the UUIDs in the reply, the first ``len(gold)`` distinct ones only (listing
    every UUID gains nothing), as a share of the gold set."""
    if len(question.gold) == 1 and question.task in ("single_needle", "threading"):
        text = reply.strip()
        text = text[1:] if text[:1] in ('"', "'") else text
        return float(text[: len(question.gold[0])] == question.gold[0])
    found: list[str] = []
    for match in UUID_RE.findall(reply):
        if match not in found:
            found.append(match)
        if len(found) == len(question.gold):
            break
    return len(set(found) & set(question.gold)) / len(question.gold)


def follow(haystack: Haystack, start: str, limit: int) -> list[str]:
    """The chain of values from key ``start`` until a value that is not a key (at most
    ``limit`` hops; a revisit raises ``ValueError``: a cycle)."""
    table = dict(haystack.pairs)
    chain, seen = [start], {start}
    while chain[-1] in table and len(chain) <= limit:
        nxt = table[chain[-1]]
        if nxt in seen:
            raise ValueError(f"cycle at {nxt}")
        seen.add(nxt)
        chain.append(nxt)
    return chain


def keys_with_value(haystack: Haystack, values: Sequence[str]) -> list[str]:
    """Every key whose value is one of ``values``, in context order."""
    wanted = set(values)
    return [k for k, v in haystack.pairs if v in wanted]
