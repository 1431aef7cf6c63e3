"""Bench helpers, once for every benchmark: timing (best of n after a warm-up, and same-run
ratios against a baseline), peak resident memory, and bits per byte / perplexity from a
summed negative log-likelihood.

Performance is only ever a ratio against a baseline measured in the same run (never a
timed assertion): :func:`compare` interleaves the two sides, so a change in the machine's
load during the run affects both alike. Every number these helpers return is finite, so
it goes into a :class:`~tokensmith.Report` as it is; an impossible input (a zero baseline,
no bytes) is an :class:`InputError`, never a NaN or an infinity.

Standard library only (``import tokensmith`` stays light); what needs torch (tensor bytes,
the CUDA allocator's peak) is in ``tokensmith.adapters.bench``.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from .errors import InputError

_WHERE = "bench"
_LN2 = math.log(2.0)


def _count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{what} must be an int >= {minimum}, got {value!r:.60}", component=_WHERE)
    return value


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value!r:.60}", component=_WHERE)
    return float(value)


# -- timing -------------------------------------------------------------------

@attrs.frozen
class Timing:
    """The durations (seconds) of ``len(seconds)`` timed calls, after ``warmup`` untimed ones.
    ``best`` (the minimum) is the estimate least disturbed by other work on the machine."""

    seconds: tuple[float, ...]
    warmup: int = 0

    def __attrs_post_init__(self) -> None:
        values = tuple(_finite(s, "a duration") for s in self.seconds)
        if not values or any(s < 0 for s in values):
            raise InputError(f"a timing needs at least one duration >= 0, got {values!r:.80}",
                             component=_WHERE)
        object.__setattr__(self, "seconds", values)

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def repeats(self) -> int:
        return len(self.seconds)

    def ratio(self, baseline: Timing) -> float:
        """``self.best / baseline.best``: below 1 means faster than the baseline."""
        return ratio(self.best, baseline.best)


def ratio(value: float, baseline: float) -> float:
    """``value / baseline`` for a same-run ratio; a baseline that is not > 0 (nothing was
    measured) is an :class:`InputError` rather than an infinity in a report."""
    value, baseline = _finite(value, "the measured value"), _finite(baseline, "the baseline")
    if baseline <= 0:
        raise InputError(f"a ratio against the baseline {baseline!r} is undefined (it must be > 0)",
                         component=_WHERE, hint="measure more work per call, or more repeats")
    return value / baseline


def best_of(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Call ``fn()`` ``warmup`` times untimed (caches, lazy tables, the allocator), then
    ``repeats`` times timed with ``clock``."""
    _count(repeats, "repeats", 1)
    _count(warmup, "warmup", 0)
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(repeats):
        start = clock()
        fn()
        seconds.append(clock() - start)
    return Timing(tuple(seconds), warmup)


@attrs.frozen
class Comparison:
    """A technique and its baseline timed in the same run, call for call (see :func:`compare`)."""

    technique: Timing
    baseline: Timing

    @property
    def ratio(self) -> float:
        """Best technique time over best baseline time."""
        return self.technique.ratio(self.baseline)

    @property
    def paired_ratio(self) -> float:
        """The median over rounds of technique/baseline, each pair timed back to back: robust
        to a load that drifts during the run."""
        return statistics.median(ratio(t, b) for t, b in zip(self.technique.seconds, self.baseline.seconds))

    def metrics(self, name: str) -> dict[str, float]:
        """``{name}_s``, ``{name}_baseline_s`` (best times), ``{name}_ratio`` and
        ``{name}_paired_ratio``, ready for ``Report(metrics=...)``."""
        return {f"{name}_s": self.technique.best, f"{name}_baseline_s": self.baseline.best,
                f"{name}_ratio": self.ratio, f"{name}_paired_ratio": self.paired_ratio}


def compare(technique: Callable[[], Any], baseline: Callable[[], Any], *, repeats: int = 5,
            warmup: int = 1, clock: Callable[[], float] = time.perf_counter) -> Comparison:
    """Time ``technique`` against ``baseline`` in one run: both warmed up, then ``repeats``
    rounds of baseline-then-technique, so both see the same machine."""
    _count(repeats, "repeats", 1)
    _count(warmup, "warmup", 0)
    for _ in range(warmup):
        baseline()
        technique()
    times: dict[str, list[float]] = {"technique": [], "baseline": []}
    for _ in range(repeats):
        for side, fn in (("baseline", baseline), ("technique", technique)):
            start = clock()
            fn()
            times[side].append(clock() - start)
    return Comparison(Timing(tuple(times["technique"]), warmup), Timing(tuple(times["baseline"]), warmup))


# -- memory -------------------------------------------------------------------

def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def rss_bytes() -> int | None:
    """The process's resident set size now (``VmRSS``; ``None`` where /proc is absent)."""
    return _status_kib("VmRSS")


def peak_rss_bytes() -> int | None:
    """The process's peak resident set size: ``VmHWM`` from /proc (Linux), else
    ``getrusage``'s ``ru_maxrss`` (KiB on Linux, bytes on macOS); ``None`` if neither exists."""
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def reset_peak_rss() -> bool:
    """Reset the peak to the current RSS (Linux: ``5`` written to /proc/self/clear_refs), so
    the next :func:`peak_rss_bytes` covers only what runs after; ``False`` where that is
    impossible (the peak then stays the process's lifetime peak)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


@attrs.define
class PeakRSS:
    """What :func:`peak_rss` measured: the RSS before the block, the peak during it, and
    whether the peak is scoped to the block (``scoped=False``: the process's lifetime peak)."""

    before: int | None = None
    peak: int | None = None
    scoped: bool = False

    @property
    def increase(self) -> int | None:
        """Peak over the RSS at the start: what the block added at its worst."""
        if self.before is None or self.peak is None:
            return None
        return max(self.peak - self.before, 0)


@contextmanager
def peak_rss() -> Iterator[PeakRSS]:
    """``with peak_rss() as m: work()`` — then ``m.peak`` and ``m.increase`` (bytes)."""
    result = PeakRSS(before=rss_bytes(), scoped=reset_peak_rss())
    try:
        yield result
    finally:
        result.peak = peak_rss_bytes()


# -- bits per byte and perplexity ---------------------------------------------

def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """A summed negative log-likelihood (natural log, over every token of a text) in bits
    per UTF-8 byte of the text: ``nll / ln 2 / n_bytes``. Comparable across tokenizers."""
    nll = _finite(nll_nats, "the summed negative log-likelihood")
    if nll < 0:
        raise InputError(f"a summed negative log-likelihood is >= 0, got {nll!r}", component=_WHERE)
    return nll / _LN2 / _count(n_bytes, "the number of bytes", 1)


def perplexity(nll_nats: float, n_tokens: int) -> float:
    """``exp(nll / n_tokens)``: per token, so only comparable under one tokenizer."""
    nll = _finite(nll_nats, "the summed negative log-likelihood")
    if nll < 0:
        raise InputError(f"a summed negative log-likelihood is >= 0, got {nll!r}", component=_WHERE)
    mean = nll / _count(n_tokens, "the number of tokens", 1)
    if mean > 709.0:  # exp overflows a float
        raise InputError(f"the perplexity exp({mean:.4g}) is too large for a float", component=_WHERE,
                         hint="report bits per byte or the mean NLL instead")
    return math.exp(mean)


@attrs.frozen
class TextScore:
    """The summed NLL (nats) of texts under a language model, with their token and byte counts."""

    nll: float
    tokens: int
    bytes: int

    @property
    def bits_per_byte(self) -> float:
        return bits_per_byte(self.nll, self.bytes)

    @property
    def perplexity(self) -> float:
        return perplexity(self.nll, self.tokens)

    @property
    def bits_per_token(self) -> float:
        return self.nll / _LN2 / _count(self.tokens, "the number of tokens", 1)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}bits_per_byte": self.bits_per_byte, f"{prefix}perplexity": self.perplexity,
                f"{prefix}nll": self.nll, f"{prefix}tokens": self.tokens, f"{prefix}bytes": self.bytes}


def score_texts(lm: Any, texts: Iterable[str]) -> TextScore:
    """Score each text under ``lm`` (a :class:`~tokensmith.LanguageModel`), conditioned on
    ``lm.start_ids`` only: the NLL of its tokens summed over the texts, their tokens, and
    their UTF-8 bytes (``bits_per_byte`` then compares models with different tokenizers)."""
    nll, tokens, n_bytes = 0.0, 0, 0
    for text in texts:
        if not isinstance(text, str) or not text:
            raise InputError(f"a text to score must be a non-empty str, got {text!r:.60}", component=_WHERE)
        ids = list(lm.tokenizer.encode(text).ids)
        nll -= lm.score_ids(ids)
        tokens += len(ids)
        n_bytes += len(text.encode("utf-8"))
    if not tokens:
        raise InputError("no text to score", component=_WHERE)
    return TextScore(nll, tokens, n_bytes)


def text_pieces(text: str, max_bytes: int) -> list[str]:
    """``text`` as consecutive pieces of at most ``max_bytes`` UTF-8 bytes, for scoring held-out
    text within a model's context: cut after a line break where possible, inside a line (at a
    character boundary) only when the line alone is longer. Nothing is dropped:
    ``"".join(text_pieces(text, n)) == text``. ``max_bytes`` must hold the longest character (4)."""
    max_bytes = _count(max_bytes, "max_bytes", 4)
    if not isinstance(text, str):
        raise InputError(f"text_pieces needs a str, got {type(text).__name__}", component=_WHERE)
    out: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > max_bytes:
            cut = len(line.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore"))
            if current:
                out.append(current)
                current = ""
            out.append(line[:cut])
            line = line[cut:]
        if current and len((current + line).encode("utf-8")) > max_bytes:
            out.append(current)
            current = ""
        current += line
    if current:
        out.append(current)
    return out


def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of ``values``, tied values sharing the mean of their ranks (as Spearman's rho
    needs)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r of two equally long sequences; ``None`` where it is undefined: fewer than 3
    points, or either side constant."""
    if len(x) != len(y):
        raise InputError(f"pearson needs sequences of one length, got {len(x)} and {len(y)}",
                         component=_WHERE)
    if len(x) < 3:
        return None
    mx, my = math.fsum(x) / len(x), math.fsum(y) / len(y)
    dx, dy = [a - mx for a in x], [b - my for b in y]
    denominator = math.sqrt(math.fsum(a * a for a in dx) * math.fsum(b * b for b in dy))
    if denominator == 0.0:
        return None
    return max(-1.0, min(1.0, math.fsum(a * b for a, b in zip(dx, dy)) / denominator))


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson's r of the tie-averaged ranks (:func:`average_ranks`);
    ``None`` where it is undefined (as :func:`pearson`)."""
    return pearson(average_ranks(x), average_ranks(y))
