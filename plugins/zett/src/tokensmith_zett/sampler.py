"""ZeTT's per-batch tokenizer sampling: a UnigramLM built from the batch's own pretokens.

Minixhofer, Ponti & Vulić, "Zero-Shot Tokenizer Transfer" (arXiv 2405.07883), Section 3
("Defining distributions over tokenizers"): the pretokens of a batch are counted, every substring
of a pretoken is a candidate token with the frequency f(t) of its occurrences, the scores
log f(t) are perturbed by noise so that each batch sees a different tokenizer, the top
``vocab_size`` tokens form a UnigramLM, and the batch is tokenized with it (Viterbi: the
segmentation of each pretoken with the highest sum of token scores).

Work is on bytes so that any text, and any cut of a packed block, is tokenized exactly.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence

import attrs

# GPT-2-like pretokenization on bytes: an optional space and a run of letters/digits (or non-ASCII
# bytes), an optional space and a run of punctuation, or whitespace. Every byte falls in exactly one
# class, so the matches cover the text with no gaps.
PRETOKEN = re.compile(rb" ?[A-Za-z0-9\x80-\xff]+| ?[^A-Za-z0-9\s\x80-\xff]+|\s+")


def pretokens(text: bytes) -> list[bytes]:
    return PRETOKEN.findall(text)


@attrs.frozen
class SampledTokenizer:
    """One sampled UnigramLM: its vocabulary (byte strings) and their log-probability scores."""

    vocab: tuple[bytes, ...]
    scores: tuple[float, ...]
    max_len: int

    @property
    def index(self) -> dict[bytes, int]:
        return {t: i for i, t in enumerate(self.vocab)}

    def tokenize(self, text: bytes, cache: dict[bytes, list[int]] | None = None) -> list[int]:
        """Viterbi segmentation of each pretoken under the unigram scores."""
        index, cache = self.index, ({} if cache is None else cache)
        out: list[int] = []
        for p in pretokens(text):
            if p not in cache:
                cache[p] = self._viterbi(p, index)
            out.extend(cache[p])
        return out

    def _viterbi(self, p: bytes, index: dict[bytes, int]) -> list[int]:
        n = len(p)
        best = [0.0] + [-math.inf] * n
        back = [0] * (n + 1)
        for j in range(1, n + 1):
            for i in range(max(0, j - self.max_len), j):
                k = index.get(p[i:j])
                if k is not None and best[i] + self.scores[k] > best[j]:
                    best[j], back[j] = best[i] + self.scores[k], i
        ids, j = [], n
        while j > 0:
            ids.append(index[p[back[j]:j]])
            j = back[j]
        return ids[::-1]


def sample_tokenizer(texts: Sequence[bytes], *, vocab_size: int, max_len: int, noise_mean: float,
                     noise_std: float, generator: random.Random) -> SampledTokenizer:
    """A noisy UnigramLM from the texts' pretoken counts. Every byte that occurs is kept as a
    single-byte token (so every pretoken has a segmentation); the rest of the ``vocab_size`` are
    the substrings with the highest perturbed scores log f(t) + ε, ε ~ N(noise_mean, noise_std) —
    the paper's lognormal noise on the frequencies, exp(ε) f(t), on the log scale."""
    counts = Counter(p for t in texts for p in pretokens(t))
    freq: Counter[bytes] = Counter()
    for p, c in counts.items():
        for i in range(len(p)):
            for j in range(i + 1, min(len(p), i + max_len) + 1):
                freq[p[i:j]] += c
    total = sum(freq.values())
    singles = sorted(t for t in freq if len(t) == 1)
    longer = sorted(t for t in freq if len(t) > 1)
    noisy = {t: math.log(freq[t] / total) + generator.gauss(noise_mean, noise_std) for t in longer}
    keep = sorted(longer, key=lambda t: -noisy[t])[: max(0, vocab_size - len(singles))]
    vocab = tuple(singles) + tuple(keep)
    # The unigram model's own scores are log-probabilities of the kept tokens (renormalised), with
    # the perturbation kept: the noise also changes how the sampled tokenizer segments.
    raw = [math.log(freq[t] / total) for t in singles] + [noisy[t] for t in keep]
    norm = math.log(sum(math.exp(s) for s in raw))
    return SampledTokenizer(vocab, tuple(s - norm for s in raw), max_len)
