"""Tiny corpora trained on in seconds: legal-style sentences, and pseudo-random words (enough
distinct short strings for a 4k character vocabulary to fill without padding past 3 characters)."""

from __future__ import annotations

import random

import pytest

LEGAL_WORDS = (
    "the licensor grants to the licensee a non-exclusive royalty-free worldwide license to use copy "
    "modify and distribute the work subject to the conditions of section 12(iv) notwithstanding any "
    "warranty of merchantability or fitness for a particular purpose in no event shall the contributor "
    "be liable for consequential damages arising from the termination of this agreement pursuant to "
    "42 U.S.C. 1983 and the governing law of the jurisdiction in 1999 or 2024 herein thereof"
).split()


def legal_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(LEGAL_WORDS) for _ in range(rng.randint(6, 18))]
        out.append(f"({chr(97 + i % 26)}) " + " ".join(words).capitalize() + ".\n")
    return out


def random_words(n: int, seed: int = 1) -> list[str]:
    """Lines of pseudo-random lower-case words: thousands of distinct 2- and 3-letter strings."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(12)) + "\n"
        for _ in range(n)
    ]


@pytest.fixture(scope="session")
def builders():
    """The corpus builders, for tests that write their own files (conftest is not importable)."""
    from types import SimpleNamespace

    return SimpleNamespace(legal_sentences=legal_sentences, random_words=random_words)


@pytest.fixture(scope="session")
def words_corpus() -> list[str]:
    return random_words(400, seed=2)


@pytest.fixture(scope="session")
def legal_corpus() -> list[str]:
    return legal_sentences(400)


@pytest.fixture(scope="session")
def mixed_corpus() -> list[str]:
    return legal_sentences(200) + random_words(800)


@pytest.fixture(scope="session")
def char_4k(mixed_corpus):
    from tokensmith_kl3m.trainers import KL3MChar

    return KL3MChar(vocab_size=4096).train(mixed_corpus, progress=False)


@pytest.fixture(scope="session")
def naive_bpe(mixed_corpus):
    """The naive byte-level BPE of the same corpus: no length cap, no custom tokens."""
    from tokensmith_kl3m.trainers import KL3MBPE

    return KL3MBPE(vocab_size=4096, custom_groups=(), min_frequency=2).train(mixed_corpus, progress=False)


@pytest.fixture(scope="session")
def legal_bpe(legal_corpus):
    from tokensmith_kl3m.trainers import KL3MBPE

    return KL3MBPE(vocab_size=4096, min_frequency=2).train(legal_corpus, progress=False)
