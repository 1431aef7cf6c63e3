"""The unicode-ngrams trainer: the tokenizer contract, lossless round trips on any Unicode text
(astral code points through byte fallback), the paper's slot layout, and the n-grams against a
brute-force count."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_glyph_embeddings.tokenizer import BYTE_SLOT, EOS, PUA, SPECIAL_SLOT, UnicodeNgrams, slot_codes

from tokensmith import ConfigError
from tokensmith.testing import TokenizerTrainerContract


class TestUnicodeNgrams(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return UnicodeNgrams(bigrams=30, trigrams=10, min_frequency=1)


@settings(max_examples=60, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=40))
def test_any_unicode_text_round_trips_byte_for_byte(ngram_tokenizer, text):
    ids = list(ngram_tokenizer.encode(text).ids)
    assert ngram_tokenizer.decode(ids) == text
    assert ngram_tokenizer.decode_bytes(ids) == text.encode("utf-8")
    assert ngram_tokenizer.eos_id not in ids  # its literal string is text


def test_astral_and_unseen_characters_are_spelled_in_bytes(ngram_tokenizer):
    vocab = ngram_tokenizer.vocab()
    for ch in ("\U0001F642", "\U00010348", "\u0b95"):  # emoji, Gothic, Tamil (not in the corpus)
        ids = list(ngram_tokenizer.encode(ch).ids)
        assert ids == [vocab[f"<0x{b:02X}>"] for b in ch.encode("utf-8")]


def test_ids_follow_the_paper_s_slot_codes(ngram_tokenizer):
    codes = slot_codes(ngram_tokenizer)
    assert codes == sorted(codes) and len(set(codes)) == len(codes)
    by_id = {i: t for t, i in ngram_tokenizer.vocab().items()}
    for i, code in enumerate(codes):
        token = by_id[i]
        if len(token) == 1:
            assert code == ord(token) < 0x10000  # a monogram's code is its code point
        elif token == EOS:
            assert code == SPECIAL_SLOT and i == ngram_tokenizer.eos_id
        elif token.startswith("<0x") and len(token) == 6:
            assert code == BYTE_SLOT + int(token[3:5], 16)
        else:
            assert PUA[0] <= code <= PUA[1] and 2 <= len(token) <= 3  # n-grams in the Private Use Area


def test_the_ngrams_are_the_most_frequent_ones_by_brute_force():
    corpus = ["abracadabra abracadabra", "cabbage and banana bread", "a b c abc abcd"]
    trainer = UnicodeNgrams(bigrams=5, trigrams=3, min_frequency=1)
    tok = trainer.train(corpus, progress=False)
    counts = collections.Counter(t[i:i + 2] for t in corpus for i in range(len(t) - 1))
    expected = [s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:5]
    grams = [t for t, _ in sorted(tok.vocab().items(), key=lambda kv: kv[1])
             if 2 <= len(t) <= 3 and not t.startswith("<")]
    assert grams[:5] == expected
    triples = collections.Counter(t[i:i + 3] for t in corpus for i in range(len(t) - 2))
    reachable = [s for s, _ in sorted(triples.items(), key=lambda kv: (-kv[1], kv[0]))
                 if s[:2] in expected or s[1:] in expected][:3]
    assert grams[5:] == reachable
    assert all(list(tok.encode(g).ids) == [tok.vocab()[g]] for g in grams)  # each n-gram is one token


def test_the_bmp_alphabet_gives_every_code_point_below_the_surrogates_its_own_id():
    tok = UnicodeNgrams(alphabet="bmp", bigrams=3, trigrams=1, min_frequency=1).train(["the theme"],
                                                                                         progress=False)
    for ch in ("\x00", "A", "é", "Ж", "\u2580", "\u2582", "漢", "\ud7ff"):
        assert list(tok.encode(ch).ids) == [ord(ch)]
    assert [tok.id_to_token(i) for i in tok.encode("\u2581").ids] == ["<0xE2>", "<0x96>", "<0x81>"]
    assert tok.eos_id == 0x2581
    # the BMP minus the surrogates, the 4 PUA slots the n-grams took and U+2581; + bytes, EOS, n-grams
    assert tok.vocab_size == 0x10000 - 0x800 - 4 - 1 + 256 + 1 + 4


def test_more_ngrams_than_pua_slots_is_a_config_error(plugin_registry):
    with pytest.raises(ConfigError, match="Private Use Area"):
        plugin_registry.build("tokenizer_trainer",
                              {"type": "unicode-ngrams", "bigrams": 6000, "trigrams": 401})
