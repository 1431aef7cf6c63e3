"""Language validators: what decides that a token is a word or morpheme of the language (%TR)
and that it is pure, a root or an affix (%Pure), after Bayram et al., *Tokenization Standards
for Linguistic Integrity: Turkish as a Benchmark* (arXiv 2502.07057, Sec. 3).

The paper decides both with a Turkish root/affix list and ITU's online services; here a
validator is any object with ``is_valid(word)`` and ``is_pure(word)`` (:class:`Validator`),
named by the entry-point group :data:`VALIDATOR_GROUP` so that a plugin for another language
adds one without touching this one or the core.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from importlib import metadata
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from tokensmith import ConfigError, InputError

#: entry-point group of validator factories: ``name = "module:factory"``; the factory takes the
#: evaluation's ``validator_options`` as keyword arguments and returns a :class:`Validator`
VALIDATOR_GROUP = "tokensmith.linguistic_validators"


@runtime_checkable
class Validator(Protocol):
    """Decides the two properties the paper counts, for one language.

    ``is_valid(word)``: the token (its text, boundary marker and surrounding whitespace
    removed) is a word or a morpheme of the language: counted by %TR.
    ``is_pure(word)``: it is a root or an affix, a unit that cannot be decomposed into smaller
    meaningful ones: counted by %Pure. **A pure word must be valid** (the paper's pure tokens
    are list entries or roots, both valid), so 0 <= %Pure <= %TR <= 100; the evaluation checks
    this on every token and refuses a validator that breaks it.

    Both are asked only about strings with at least one letter (``str.isalpha`` on some
    character): tokens without letters (punctuation, digits, whitespace, a partial UTF-8
    character) are counted as neither, without asking. Case is the validator's business
    (``"Kitap"`` and ``"kitap"`` are two tokens of the vocabulary, asked about separately).
    """

    name: str

    def is_valid(self, word: str) -> bool: ...

    def is_pure(self, word: str) -> bool: ...


def has_letter(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def check_word(word: Any, component: str) -> str:
    """``word`` when it is a string with a letter; otherwise the InputError every validator
    raises (a word with no letters is not a question a lexicon can answer)."""
    if not isinstance(word, str):
        raise InputError(f"a word must be a str, got {type(word).__name__}", component=component,
                         hint="pass the token's text")
    if not has_letter(word):
        raise InputError(f"{word!r} has no letters: it is not a word of any language", component=component,
                         hint="count tokens without letters apart (the linguistic-integrity evaluation does)")
    return word


_TURKISH_UPPER = str.maketrans({"I": "ı", "İ": "i"})


def turkish_lower(text: str) -> str:
    """Lower case with the Turkish dotted/dotless i (``I`` -> ``ı``, ``İ`` -> ``i``); Python's
    ``str.lower`` would turn ``"KIŞ"`` into ``"kiş"`` and ``"İ"`` into ``"i̇"``."""
    return text.translate(_TURKISH_UPPER).lower()


_CASES = {"exact": lambda s: s, "lower": str.lower, "turkish": turkish_lower}


@attrs.define(kw_only=True)
class WordList:
    """A validator from word lists, for any language: roots and affixes are pure (and valid),
    other listed words (inflected forms) are valid only. The lists are given inline or as
    files of one entry per line (read with the ``text-files`` dataset); an entry without
    letters is an error naming its file and line."""

    name = "word-list"
    roots: tuple[str, ...] = attrs.field(default=(), converter=tuple,
                                         metadata={"doc": "roots (pure and valid)"})
    affixes: tuple[str, ...] = attrs.field(default=(), converter=tuple,
                                           metadata={"doc": "affixes, without hyphens (pure and valid)"})
    words: tuple[str, ...] = attrs.field(default=(), converter=tuple,
                                         metadata={"doc": "other valid words: inflected or derived forms"})
    roots_files: tuple[str, ...] = attrs.field(default=(), converter=tuple,
                                               metadata={"doc": "files of roots/affixes, one per line"})
    words_files: tuple[str, ...] = attrs.field(default=(), converter=tuple,
                                               metadata={"doc": "files of other valid words, one per line"})
    case: Literal["exact", "lower", "turkish"] = attrs.field(
        default="lower", validator=attrs.validators.in_(tuple(_CASES)),
        metadata={"doc": "how tokens and entries are compared: as written, lower-cased, or with "
                         "Turkish casing (I -> ı, İ -> i)"})
    _pure: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    _valid: frozenset[str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        component = f"validator '{self.name}'"
        fold = _CASES[self.case]
        pure = {fold(check_word(w, component)) for w in (*self.roots, *self.affixes)}
        pure |= {fold(w) for w in _file_entries(self.roots_files, component)}
        valid = {fold(check_word(w, component)) for w in self.words}
        valid |= {fold(w) for w in _file_entries(self.words_files, component)}
        if not pure and not valid:
            raise ConfigError("no roots, affixes or words were given", component=component,
                              hint="give roots/affixes/words, or files of them (roots_files, words_files)")
        self._pure = frozenset(pure)
        self._valid = frozenset(valid | pure)

    def is_valid(self, word: str) -> bool:
        return _CASES[self.case](check_word(word, f"validator '{self.name}'")) in self._valid

    def is_pure(self, word: str) -> bool:
        return _CASES[self.case](check_word(word, f"validator '{self.name}'")) in self._pure


def _file_entries(paths: tuple[str, ...], component: str) -> Iterable[str]:
    if not paths:
        return
    from tokensmith import default_registry

    lines = default_registry().build("dataset", {"type": "text-files", "paths": list(paths), "unit": "line"})
    for example in lines.examples("all"):
        entry = example["text"].strip()
        if not has_letter(entry):
            raise InputError(f"{example['path']} line {example['line']}: {entry!r} has no letters",
                             component=component, hint="one word per line; remove the line")
        yield entry


def installed_validators() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=VALIDATOR_GROUP)}


def resolve_validator(spec: Any, options: dict[str, Any], component: str) -> Validator:
    """The validator ``spec`` names (an entry point of :data:`VALIDATOR_GROUP`, built with
    ``options``), or ``spec`` itself when it already is a :class:`Validator`."""
    if not isinstance(spec, str):
        if options:
            raise ConfigError("validator_options apply to a validator given by name, not to an object",
                              component=component, hint="build the validator object with its options")
        if not isinstance(spec, Validator):
            raise ConfigError(f"validator must be a registered name or an object with name, is_valid and "
                              f"is_pure; got {type(spec).__name__}", component=component)
        return spec
    installed = installed_validators()
    if spec not in installed:
        close = difflib.get_close_matches(spec, list(installed), n=2, cutoff=0.5)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ConfigError(f"no validator named {spec!r} is installed (entry-point group {VALIDATOR_GROUP!r})",
                          component=component,
                          hint=hint + f"installed: {', '.join(sorted(installed)) or 'none'}")
    factory = installed[spec].load()
    try:
        validator = factory(**options)
    except TypeError as exc:
        raise ConfigError(f"validator {spec!r} does not take these options {sorted(options)}: {exc}",
                          component=component) from None
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"validator {spec!r}: {exc}", component=component) from None
    if not isinstance(validator, Validator):
        raise ConfigError(f"validator {spec!r} ({installed[spec].value}) built a {type(validator).__name__}, "
                          "which lacks name, is_valid or is_pure", component=component)
    return validator


__all__ = ["VALIDATOR_GROUP", "Validator", "WordList", "check_word", "has_letter", "installed_validators",
           "resolve_validator", "turkish_lower"]
