"""CharBench's items: words, the four task types, the prompt and the answer parsing.

Uzan & Pinter, "CharBench: Evaluating the Role of Tokenization in Character-Level Tasks"
(AAAI 2026; arXiv 2508.02591), section 3 (benchmark construction) and section 4 (evaluation).

Words are the unique matches of ``\\b[a-zA-Z]+\\b`` in a text source with 4 to 10 letters;
every length bucket gets the same number of words, split equally over the four tasks, so
buckets are balanced per task and length. Choosing the words streams the source: per length
the ``k`` distinct words with the smallest seeded BLAKE2b hashes are kept (a bottom-k
sample), so memory does not grow with the corpus, a word repeated in the corpus counts
once, and the choice does not depend on the order of the source.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import re
from collections.abc import Iterable
from typing import Any

import attrs

#: the paper's word pattern (English)
WORD_PATTERN = re.compile(r"\b[a-zA-Z]+\b")
#: a word given explicitly must be exactly letters
LETTERS = re.compile(r"[a-zA-Z]+")

COUNTING = ("count_character_frequency", "count_unique_chars")
INDEXING = ("find_first_occurrence", "find_last_occurrence")
TASKS = COUNTING + INDEXING

#: the question templates of the paper's benchmark code, one per task
TEMPLATES = {
    "count_character_frequency": "How many times does the character '{character}' appear in the string "
    "'{word}'?",
    "count_unique_chars": "How many unique characters appear in the string '{word}'?",
    "find_first_occurrence": "What is the index of the first occurrence of the character '{character}' "
    "in the "
    "string '{word}'?\nStart counting from 0.",
    "find_last_occurrence": "What is the index of the last occurrence of the character '{character}' in the "
    "string '{word}'?\nStart counting from 0.",
}

#: the evaluation prompt around a question (the reference code's triple-quoted string without
#: its source indentation)
PROMPT = (
    "Answer this question only with the final number, without any other text. Lower case and upper "
    "case letters are considered different characters.\n\nQuestion: {question}\n"
)

#: the paper's size: 25,000 words per length bucket, 6,250 per task
PAPER_WORDS_PER_CELL = 6250


@attrs.frozen
class Item:
    """One CharBench question: its task, word, queried character (``None`` for
    count_unique_chars) and gold answer."""

    task: str
    word: str
    character: str | None
    answer: int

    @property
    def question(self) -> str:
        return TEMPLATES[self.task].format(word=self.word, character=self.character)

    @property
    def prompt(self) -> str:
        return PROMPT.format(question=self.question)


def gold_answer(task: str, word: str, character: str | None) -> int:
    """The answer as the paper computes it: ``str.count``, ``len(set())``, ``index``, ``rindex``."""
    if task == "count_character_frequency":
        return word.count(character)
    if task == "count_unique_chars":
        return len(set(word))
    if task == "find_first_occurrence":
        return word.index(character)
    if task == "find_last_occurrence":
        return word.rindex(character)
    raise ValueError(f"unknown CharBench task {task!r}")


def parse_answer(reply: str) -> int | None:
    """``int()`` of the raw reply, as the paper parses it (surrounding whitespace aside);
    ``None`` (counted wrong) when it is not a bare integer."""
    try:
        return int(reply.strip())
    except ValueError:
        return None


def candidate_words(texts: Iterable[str], min_length: int, max_length: int) -> Iterable[str]:
    """Every match of :data:`WORD_PATTERN` in ``texts`` with a length in range, in order."""
    for text in texts:
        for match in WORD_PATTERN.finditer(text):
            if min_length <= match.end() - match.start() <= max_length:
                yield match.group()


def _rank(word: str, seed: int) -> int:
    digest = hashlib.blake2b(f"charbench:{seed}:{word}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def bottom_k(words: Iterable[str], k: int, seed: int, lengths: Iterable[int]) -> dict[int, list[str]]:
    """Per word length, the ``k`` distinct words with the smallest seeded hashes, in hash
    order (a uniform sample of the distinct words of that length, in a seeded random order).
    Memory is ``k`` words per length, whatever the source's size."""
    heaps: dict[int, list[tuple[int, str]]] = {n: [] for n in lengths}
    kept: dict[int, set[str]] = {n: set() for n in lengths}
    for word in words:
        n = len(word)
        heap = heaps.get(n)
        if heap is None or word in kept[n]:
            continue
        entry = (-_rank(word, seed), word)  # a max-heap of the k smallest ranks
        if len(heap) < k:
            heapq.heappush(heap, entry)
            kept[n].add(word)
        elif entry > heap[0]:
            _, dropped = heapq.heapreplace(heap, entry)
            kept[n].discard(dropped)
            kept[n].add(word)
    return {n: [w for _, w in sorted(heap, key=lambda e: (-e[0], e[1]))] for n, heap in heaps.items()}


def make_items(buckets: dict[int, list[str]], tasks: tuple[str, ...], per_cell: int, seed: int) -> list[Item]:
    """The benchmark from per-length word lists of ``per_cell * len(tasks)`` words each: the
    words of a length are dealt to the tasks in consecutive slices (as the paper's code does
    after shuffling), and the queried character is drawn from the word's letters (so a
    letter that occurs twice is twice as likely), with a generator seeded by the seed, task
    and word alone."""
    items: list[Item] = []
    for length in sorted(buckets):
        words = buckets[length]
        for t, task in enumerate(tasks):
            for word in words[t * per_cell : (t + 1) * per_cell]:
                character = None
                if task != "count_unique_chars":
                    character = random.Random(f"charbench:{seed}:{task}:{word}").choice(word)
                items.append(Item(task, word, character, gold_answer(task, word, character)))
    return items


def check_words(words: Iterable[Any], min_length: int, max_length: int, component: str) -> list[str]:
    """Words given explicitly: each a ``str`` of letters only, of a length in range, none twice;
    anything else is an :class:`~tokensmith.InputError` naming the words (never dropped)."""
    from tokensmith import InputError

    words = list(words)
    bad_type = [w for w in words if not isinstance(w, str)]
    if bad_type:
        raise InputError(
            f"words must be str, got {type(bad_type[0]).__name__} {bad_type[0]!r:.40}",
            component=component,
            hint="give words as a list of strings",
        )
    no_letters = [w for w in words if not LETTERS.fullmatch(w)]
    if no_letters:
        shown = ", ".join(repr(w) for w in no_letters[:5])
        raise InputError(
            f"{len(no_letters)} word(s) are not made of the letters a-z/A-Z only: {shown}",
            component=component,
            hint="CharBench words are ASCII letters only (the paper's \\b[a-zA-Z]+\\b); remove "
            "these, or give a corpus as a dataset so words are extracted from it",
        )
    out_of_range = [w for w in words if not min_length <= len(w) <= max_length]
    if out_of_range:
        shown = ", ".join(repr(w) for w in out_of_range[:5])
        raise InputError(
            f"{len(out_of_range)} word(s) are not {min_length}-{max_length} letters long: {shown}",
            component=component,
            hint="remove them, or change min_length/max_length",
        )
    seen: set[str] = set()
    twice = [w for w in words if w in seen or seen.add(w)]
    if twice:
        raise InputError(
            f"word {twice[0]!r} is given more than once",
            component=component,
            hint="every CharBench word is unique; remove the repeats",
        )
    return words
