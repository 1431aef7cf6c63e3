"""The linguistic-integrity evaluation of a tokenizer, after Bayram et al., *Tokenization
Standards for Linguistic Integrity: Turkish as a Benchmark* (arXiv 2502.07057): vocabulary
size, token count, unique tokens, processing time, %TR and %Pure (Sec. 3), plus the
tokenizer's word-internal boundaries against the treebank's gold morpheme boundaries.

**Unique tokens** are the distinct token *surfaces*: the bytes a token contributes to the text
(the tokenizer's byte view) without the whitespace its word-boundary marker stands for. So
``Ġev``, ``▁ev``, the word-initial WordPiece ``ev`` and a marker-less ``ev`` are one unique
token ``ev``, whatever the marker, and a tokenizer's metrics do not depend on its marker
convention (the paper strips the marker before its check). Following the paper's table (e.g.
Gemma-2: 3,104 / 6,383 = 48.63 %), both percentages divide by the unique tokens:

    %TR   = 100 * |{unique tokens the validator accepts as words or morphemes}| / |unique tokens|
    %Pure = 100 * |{unique tokens that are roots or affixes}| / |unique tokens|

(the prose definition, over token occurrences, is reported too: ``*_percent_of_occurrences``).
Unique tokens without a letter (punctuation, digits, whitespace, part of a UTF-8 character,
an unknown-token id) stay in the denominator and are counted as neither, each class reported.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import attrs

from tokensmith import (
    BuildContext,
    ConfigError,
    Evaluation,
    InputError,
    Provenance,
    Report,
    Series,
    Table,
    positive_int,
)

from .boundaries import BoundaryScore, gold_words, token_boundaries
from .validators import Validator, has_letter, resolve_validator

#: texts read by ``quick=True`` (at most)
QUICK_SAMPLE = 200

#: the class of a unique token, and the metric counting the unique tokens of each class
_CATEGORIES = {"pure": "pure_tokens", "valid, not pure": "valid_not_pure_tokens", "invalid": "invalid_tokens",
               "no letters": "no_letter_tokens", "partial character": "partial_character_tokens",
               "special": "special_tokens"}


def _no_limit(instance: Any, attribute: Any, value: Any) -> None:
    if "limit" in value:
        raise ValueError("dataset_options must not set limit: use sample (the texts read)")


@attrs.define(kw_only=True)
class LinguisticIntegrity(Evaluation):
    """%TR, %Pure, unique tokens, token count, processing time and boundary precision/recall
    of a tokenizer on a corpus (paper: TR-MMLU; here the Turkish treebank by default)."""

    name = "linguistic-integrity"
    targets = ("pipeline", "tokenizer")

    dataset: str = attrs.field(default="turkish-treebank", metadata={
        "doc": "a registered dataset to tokenize (e.g. turkish-speeches, or text-files for your own)"})
    dataset_options: dict[str, Any] = attrs.field(factory=dict, validator=_no_limit, metadata={
        "doc": "the dataset's parameters, e.g. {part = \"wiki\"} or {paths = [...], unit = \"line\"}"})
    field: str = attrs.field(default="text", metadata={"doc": "the field of each example holding its text"})
    sample: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive_int),
        metadata={"doc": f"texts read, the first ones (None: all; quick: at most {QUICK_SAMPLE})"})
    validator: Any = attrs.field(default="turkish", metadata={
        "doc": "the language validator: a name in the entry-point group tokensmith.linguistic_validators "
               "(turkish, word-list, or a plugin's), or a Validator object"})
    validator_options: dict[str, Any] = attrs.field(factory=dict, metadata={
        "doc": "keyword arguments of a named validator, e.g. {analyser = false}"})
    boundaries: bool | None = attrs.field(default=None, metadata={
        "doc": "score token boundaries against gold morpheme boundaries (the examples need forms and "
               "lemmas, as turkish-treebank's); None: when the examples have them"})
    top: int = attrs.field(default=20, validator=positive_int, metadata={
        "doc": "rows of the most-frequent-tokens table"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def component(self) -> str:
        return f"evaluation '{self.name}'"

    def run(self, target: Any, *, quick: bool = False) -> Report:
        from tokensmith import progress

        tokenizer = self.tokenizer_of(target)
        validator = resolve_validator(self.validator, dict(self.validator_options), self.component)
        sample = self.sample
        if quick:
            sample = min(sample or QUICK_SAMPLE, QUICK_SAMPLE)
        corpus = self._dataset(sample)

        counts: Counter[bytes | int] = Counter()
        ids_seen: set[int] = set()
        surfaces: dict[int, bytes | int] = {}
        score = BoundaryScore()
        texts = characters = words = unaligned = skipped = 0
        scored: bool | None = self.boundaries
        seconds = 0.0
        for key, example in progress(corpus.keyed("all"), total=sample, desc=self.name, unit="text"):
            text = self._text(key, example)
            began = time.perf_counter()
            encoding = tokenizer.encode(text)
            seconds += time.perf_counter() - began
            texts += 1
            characters += len(text)
            words += len(text.split())
            for token_id in encoding.ids:
                if token_id not in surfaces:
                    surfaces[token_id] = _surface(tokenizer.token_bytes(token_id), token_id)
                counts[surfaces[token_id]] += 1
            ids_seen.update(encoding.ids)
            if scored is None:
                scored = "forms" in example and "lemmas" in example
            if scored:
                alignment = self._gold(key, example, text)
                if alignment is None:
                    unaligned += 1
                    continue
                skipped += alignment.skipped
                cuts = token_boundaries(encoding.offsets)
                for word in alignment.words:
                    score.add(word, cuts)
        if texts == 0:
            raise InputError(f"dataset {self.dataset!r} gave no texts", component=self.component,
                             hint="check the dataset's parameters (dataset_options, sample)")
        token_count = sum(counts.values())
        if token_count == 0:
            raise InputError(f"the {texts} texts of dataset {self.dataset!r} are empty: nothing to tokenize",
                             component=self.component,
                             hint=f"check the field ({self.field!r}) and the corpus")

        classes = self._classify(validator, counts, progress)
        unique = len(counts)
        tr = [k for k, c in classes.items() if c in ("valid, not pure", "pure")]
        pure = [k for k, c in classes.items() if c == "pure"]
        metrics: dict[str, Any] = {
            "tr_percent": 100.0 * len(tr) / unique,
            "pure_percent": 100.0 * len(pure) / unique,
            "vocab_size": tokenizer.vocab_size,
            "token_count": token_count,
            "unique_tokens": unique,
            "unique_ids": len(ids_seen),
            "tr_tokens": len(tr),
            "processing_s": seconds,
            "tr_percent_of_occurrences": 100.0 * sum(counts[k] for k in tr) / token_count,
            "pure_percent_of_occurrences": 100.0 * sum(counts[k] for k in pure) / token_count,
            "texts": texts,
            "characters": characters,
            "words": words,
            "tokens_per_word": token_count / words if words else 0.0,
        }
        by_class = Counter(classes.values())
        for category, metric in _CATEGORIES.items():
            metrics[metric] = by_class[category]
        notes = [
            f"validator: {validator!r}",
            "unique tokens: distinct token surfaces (byte view without the boundary marker's whitespace); "
            "%TR and %Pure divide by them, as the paper's table does",
            "tokens without letters (punctuation, digits, whitespace, part of a UTF-8 character, special "
            "ids) are in the denominator and counted as neither valid nor pure",
        ]
        series = [Series("linguistic integrity", ("%TR", "%Pure"),
                         (metrics["tr_percent"], metrics["pure_percent"]),
                         y_label="% of unique tokens", plot="bar", group="integrity")]
        if scored:
            metrics.update(score.metrics())
            metrics["boundary_words_skipped"] = skipped
            metrics["unaligned_texts"] = unaligned
            notes.append("gold boundaries: the treebank's inflectional-group (derivational) splits; "
                         "inflectional suffixes are not split in the gold, so a cut there counts as a false "
                         "positive: recall is the informative number, precision a lower bound")
            notes.append(f"boundary score over {score.words} words of letters only ({skipped} other words, "
                         f"e.g. numbers and apostrophe forms, left out; {unaligned} texts whose forms do not "
                         "spell their text left out)")
            series.append(Series("boundaries", ("precision", "recall", "F1"),
                                 (metrics["boundary_precision"], metrics["boundary_recall"],
                                  metrics["boundary_f1"]), y_label="vs gold morpheme boundaries",
                                 plot="bar", group="boundaries"))
        elif self.boundaries is None:
            notes.append(f"no boundary score: the examples of {self.dataset!r} carry no gold segmentation")
        tables = (
            Table("unique tokens by class", ("class", "unique tokens", "% of unique"),
                  tuple((c, by_class[c], 100.0 * by_class[c] / unique) for c in _CATEGORIES)),
            Table(f"the {self.top} most frequent tokens", ("token", "occurrences", "class"),
                  tuple((_show(k), n, classes[k]) for k, n in counts.most_common(self.top))),
        )
        extra = {"dataset": self.dataset, "dataset_options": self.dataset_options, "sample": sample,
                 "tokenizer": getattr(tokenizer, "name", "")}
        return Report(name=self.name, metrics=metrics, tables=tables, series=tuple(series),
                      notes=tuple(notes), provenance=Provenance(extra=extra))

    def _dataset(self, sample: int | None) -> Any:
        registry = self.ctx.registry if self.ctx is not None and self.ctx.registry is not None else None
        if registry is None:
            from tokensmith import default_registry

            registry = default_registry()
        spec = {"type": self.dataset, **self.dataset_options, "limit": sample}
        return registry.build("dataset", spec)

    def _text(self, key: str, example: dict[str, Any]) -> str:
        if self.field not in example:
            raise InputError(f"example {key!r} of dataset {self.dataset!r} has no field {self.field!r}",
                             component=self.component, hint=f"its fields: {', '.join(sorted(example))}")
        text = example[self.field]
        if not isinstance(text, str):
            raise InputError(f"field {self.field!r} of example {key!r} of dataset {self.dataset!r} is a "
                             f"{type(text).__name__}, not text", component=self.component,
                             hint="choose a text field")
        return text

    def _gold(self, key: str, example: dict[str, Any], text: str) -> Any:
        forms, lemmas = example.get("forms"), example.get("lemmas")
        if not isinstance(forms, list | tuple) or not isinstance(lemmas, list | tuple):
            raise ConfigError(f"example {key!r} of dataset {self.dataset!r} has no forms/lemmas: no gold "
                              "morpheme boundaries to score against", component=self.component,
                              hint="use turkish-treebank, or boundaries = false")
        return gold_words(text, forms, lemmas)

    def _classify(self, validator: Validator, counts: Counter, progress: Any) -> dict[Any, str]:
        classes: dict[Any, str] = {}
        for key in progress(list(counts), total=len(counts), desc="validating", unit="token"):
            if isinstance(key, int):
                classes[key] = "special"
                continue
            try:
                word = key.decode("utf-8")
            except UnicodeDecodeError:
                classes[key] = "partial character"
                continue
            if not has_letter(word):
                classes[key] = "no letters"
                continue
            valid, pure = validator.is_valid(word), validator.is_pure(word)
            if not isinstance(valid, bool) or not isinstance(pure, bool):
                raise ConfigError(f"validator {validator.name!r} answered {valid!r}/{pure!r} for {word!r}: "
                                  "is_valid and is_pure must return bool", component=self.component)
            if pure and not valid:
                raise ConfigError(f"validator {validator.name!r} says {word!r} is pure but not valid; a pure "
                                  "token (root or affix) must be a valid one", component=self.component,
                                  hint="make is_pure(w) imply is_valid(w)")
            classes[key] = "pure" if pure else "valid, not pure" if valid else "invalid"
        return classes


def _surface(raw: bytes | None, token_id: int) -> bytes | int:
    """A token's unique-token key: its bytes without surrounding whitespace (the boundary
    marker's), a whitespace-only token as it is, a token without text (special) by its id."""
    if raw is None:
        return token_id
    return raw.strip() or raw


def _show(key: bytes | int) -> str:
    if isinstance(key, int):
        return f"<special id {key}>"
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return repr(key)
    return text if text.strip() else repr(text)
