"""Bad input is a clear, typed error naming the component: unreadable or empty corpora, a
missing or non-text field, words with no letters, unknown validators, bad parameters."""

from __future__ import annotations

import pytest
from tokensmith_linguistic_integrity.evaluation import LinguisticIntegrity
from tokensmith_linguistic_integrity.validators import WordList, resolve_validator

from tokensmith import ConfigError, DataUnavailableError, InputError, Registry


def _evaluation(spec, validator, **kw):
    return LinguisticIntegrity(dataset="text-files", dataset_options=spec, validator=validator, **kw)


def test_an_unreadable_corpus_names_the_dataset(tmp_path, tiny_tokenizer, tiny_validator):
    with pytest.raises(DataUnavailableError, match="text-files"):
        _evaluation({"paths": [str(tmp_path / "absent.txt")]}, tiny_validator).run(tiny_tokenizer)
    undecodable = tmp_path / "latin1.txt"
    undecodable.write_bytes("göz\n".encode("latin-1"))
    with pytest.raises(DataUnavailableError, match="latin1.txt"):
        _evaluation({"paths": [str(undecodable)], "unit": "line"}, tiny_validator).run(tiny_tokenizer)


def test_an_empty_corpus_is_an_error(write_corpus, tiny_tokenizer, tiny_validator):
    with pytest.raises(DataUnavailableError, match="holds no (text|examples)"):
        _evaluation(write_corpus([]), tiny_validator).run(tiny_tokenizer)
    with pytest.raises(DataUnavailableError, match="holds no (text|examples)"):
        _evaluation(write_corpus(["", "   ", ""]), tiny_validator).run(tiny_tokenizer)  # blank lines only


def test_a_missing_or_non_text_field_names_the_evaluation(write_corpus, tiny_tokenizer, tiny_validator):
    with pytest.raises(InputError, match="no field 'body'") as info:
        _evaluation(write_corpus(["ev"]), tiny_validator, field="body").run(tiny_tokenizer)
    assert "evaluation 'linguistic-integrity'" in str(info.value) and "line, path, text" in str(info.value)
    with pytest.raises(InputError, match="is a int, not text"):
        _evaluation(write_corpus(["ev"]), tiny_validator, field="line").run(tiny_tokenizer)


def test_words_with_no_letters_are_refused_by_validators(tmp_path, tiny_validator):
    for word in ("123", ".,;", "", "  "):
        with pytest.raises(InputError, match="no letters") as info:
            tiny_validator.is_valid(word)
        assert "validator 'word-list'" in str(info.value)
    with pytest.raises(InputError, match="must be a str"):
        tiny_validator.is_pure(b"ev")
    with pytest.raises(InputError, match="'42' has no letters"):
        WordList(roots=("ev", "42"))
    listed = tmp_path / "roots.txt"
    listed.write_text("ev\nkitap\n--\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"roots.txt line 3: '--' has no letters"):
        WordList(roots_files=(str(listed),))
    with pytest.raises(ConfigError, match="no roots, affixes or words"):
        WordList()


def test_tokens_without_letters_are_counted_apart_never_asked(write_corpus, tiny_tokenizer):
    class Strict(WordList):
        def is_valid(self, word):
            assert any(c.isalpha() for c in word), word
            return super().is_valid(word)

    m = _evaluation(write_corpus(["ev, 42 kitap!"]), Strict(roots=("ev",))).run(tiny_tokenizer).metrics
    assert m["no_letter_tokens"] >= 2
    assert m["unique_tokens"] == sum(m[k] for k in ("pure_tokens", "valid_not_pure_tokens", "invalid_tokens",
                                                    "no_letter_tokens", "partial_character_tokens",
                                                    "special_tokens"))


def test_unknown_validators_and_bad_options():
    with pytest.raises(ConfigError, match="did you mean 'turkish'"):
        resolve_validator("turkis", {}, "evaluation 'linguistic-integrity'")
    with pytest.raises(ConfigError, match="does not take these options"):
        resolve_validator("word-list", {"roots": ["ev"], "colour": 1}, "evaluation 'linguistic-integrity'")
    with pytest.raises(ConfigError, match="neither|registered name"):
        resolve_validator(42, {}, "evaluation 'linguistic-integrity'")


def test_parameters_are_checked_before_anything_runs():
    registry = Registry.from_environment()
    for bad, name in (({"sample": 0}, "sample"), ({"dataset_options": {"limit": 3}}, "limit"),
                      ({"top": -1}, "top"), ({"sample": "all"}, "sample")):
        with pytest.raises(ConfigError, match=name):
            registry.build("evaluation", {"type": "linguistic-integrity", **bad})


def test_boundaries_need_gold_segmentation(write_corpus, tiny_tokenizer, tiny_validator):
    with pytest.raises(ConfigError, match="no gold"):
        _evaluation(write_corpus(["ev"]), tiny_validator, boundaries=True).run(tiny_tokenizer)
    report = _evaluation(write_corpus(["ev"]), tiny_validator).run(tiny_tokenizer)
    assert "boundary_recall" not in report.metrics and any("no boundary score" in n for n in report.notes)
