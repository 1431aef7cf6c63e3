"""The paper's invariants (brief): 0 <= %Pure <= %TR <= 100, independence from the word-boundary
marker, %TR = 100 for whole words of the lexicon; and exact agreement with a brute-force count."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokensmith_linguistic_integrity.evaluation import LinguisticIntegrity
from tokensmith_linguistic_integrity.validators import WordList, has_letter

from tokensmith import ConfigError


def lines(words):
    """Corpora of the fixture's words; each line starts with a space, so its first word has the
    byte-level BPE's word-initial form too."""
    line = st.lists(st.sampled_from(sorted(words)), min_size=1, max_size=6).map(lambda ws: " " + " ".join(ws))
    return st.lists(line, min_size=1, max_size=8)
_SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _run(tokenizer, spec, validator, **kw):
    evaluation = LinguisticIntegrity(dataset="text-files", dataset_options=spec, validator=validator, **kw)
    return evaluation.run(tokenizer)


def _brute_force(tokenizer, texts, validator):
    """Unique surfaces by hand: every token's bytes, stripped of whitespace, then the lists."""
    surfaces = set()
    for text in texts:
        for i in tokenizer.encode(text).ids:
            raw = tokenizer.token_bytes(i)
            surfaces.add(raw.strip() or raw)
    words = [s.decode("utf-8") for s in surfaces]
    valid = sum(1 for w in words if has_letter(w) and validator.is_valid(w))
    pure = sum(1 for w in words if has_letter(w) and validator.is_pure(w))
    return len(surfaces), valid, pure


@_SLOW
@given(data=st.data(), roots=st.sets(st.sampled_from(["ev", "kitap", "göz", "qz", "evler", "x"]), max_size=4),
       affixes=st.sets(st.sampled_from(["ler", "lar", "de", "da", "lük", "çü"]), max_size=4),
       words=st.sets(st.sampled_from(["gözlük", "evlerde", "ler", "kitaplarda"]), max_size=3))
def test_percentages_are_ordered_and_agree_with_brute_force(marker_tokenizers, marker_words, write_corpus,
                                                            data, roots, affixes, words):
    texts = data.draw(lines(marker_words))
    if not (roots or affixes or words):
        words = {"ev"}
    validator = WordList(roots=tuple(roots), affixes=tuple(affixes), words=tuple(words))
    tokenizer = marker_tokenizers["Ġ"]
    m = _run(tokenizer, write_corpus(texts), validator).metrics
    assert 0.0 <= m["pure_percent"] <= m["tr_percent"] <= 100.0
    unique, valid, pure = _brute_force(tokenizer, texts, validator)
    assert (m["unique_tokens"], m["tr_tokens"], m["pure_tokens"]) == (unique, valid, pure)
    assert m["tr_percent"] == 100.0 * valid / unique and m["pure_percent"] == 100.0 * pure / unique
    assert m["token_count"] == sum(len(tokenizer.encode(t).ids) for t in texts)


@_SLOW
@given(data=st.data())
def test_metrics_do_not_depend_on_the_boundary_marker(marker_tokenizers, marker_words, write_corpus,
                                                      tiny_validator, data):
    texts = data.draw(lines(marker_words))
    spec = write_corpus(texts)
    reports = {marker: _run(tok, spec, tiny_validator) for marker, tok in marker_tokenizers.items()}
    strings = {marker: {tok.id_to_token(i) for t in texts for i in tok.encode(t).ids}
               for marker, tok in marker_tokenizers.items()}
    assert len({frozenset(s) for s in strings.values()}) == 3  # the vocabularies really differ
    keys = ("tr_percent", "pure_percent", "unique_tokens", "token_count", "tr_tokens", "pure_tokens",
            "invalid_tokens", "tr_percent_of_occurrences")
    first = reports["Ġ"].metrics
    for report in reports.values():
        assert {k: report.metrics[k] for k in keys} == {k: first[k] for k in keys}


def test_the_naive_count_over_token_strings_depends_on_the_marker(marker_tokenizers, tiny_validator):
    """The baseline the invariant guards against: checking the vocabulary strings as they are."""
    text = " evlerde kitaplarda gözlükçü"
    naive = {}
    for marker, tok in marker_tokenizers.items():
        pieces = {tok.id_to_token(i) for i in tok.encode(text).ids}
        naive[marker] = sum(tiny_validator.is_valid(p) for p in pieces if has_letter(p)) / len(pieces)
    assert len(set(naive.values())) > 1


def test_whole_words_of_the_lexicon_score_100(write_corpus):
    """Invariant (iii): a whole-word tokenizer on a corpus of lexicon words gives %TR = 100."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from tokensmith import HFTokenizer

    lexicon = ("ev", "kitap", "göz", "ler", "masa")
    backend = Tokenizer(models.WordPiece(vocab={"[UNK]": 0, **{w: i + 1 for i, w in enumerate(lexicon)}},
                                         unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece()
    tokenizer = HFTokenizer(backend, name="whole-words")
    spec = write_corpus(["ev kitap göz", "masa ler ev"])
    m = _run(tokenizer, spec, WordList(words=lexicon)).metrics
    assert m["tr_percent"] == 100.0 and m["pure_percent"] == 0.0
    assert _run(tokenizer, spec, WordList(roots=lexicon)).metrics["pure_percent"] == 100.0


class _Broken:
    name = "broken"

    def is_valid(self, word):
        return False

    def is_pure(self, word):
        return True


class _NotBool(_Broken):
    def is_valid(self, word):
        return 1


@pytest.mark.parametrize("validator, message",
                         [(_Broken(), "pure but not valid"), (_NotBool(), "must return bool")])
def test_a_validator_that_breaks_the_contract_is_refused(marker_tokenizers, write_corpus, validator, message):
    with pytest.raises(ConfigError, match=message) as info:
        _run(marker_tokenizers["##"], write_corpus([" ev"]), validator)
    assert "linguistic-integrity" in str(info.value)
