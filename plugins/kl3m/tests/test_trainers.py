"""The KL3M trainers and the brief's invariants: (i) the vocabulary is a power of two, (ii) a
character tokenizer's tokens are at most 3 (4k, 8k) or 4 (16k) symbols long, (iii) every custom
token encodes as one id, (iv) decode(encode(s)) == NFKC(s); and the trainers keep the core's
trainer contract. Invariant (v), boundary stability, is in test_stability.py."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokensmith_kl3m.custom_tokens import GROUPS, custom_tokens, whitespace_combinations
from tokensmith_kl3m.trainers import KL3MBPE, SPECIAL_TOKENS, KL3MChar

from tokensmith import ConfigError, InputError, ParameterTypeError
from tokensmith.testing import TokenizerTrainerContract

_FEW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class TestKL3MBPEKeepsTheTrainerContract(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return KL3MBPE(vocab_size=1024, custom_groups=("years", "enumerations", "json"), min_frequency=2)


class TestKL3MCharKeepsTheTrainerContract(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        # the contract's corpus is a few lines: too few short tokens to fill 4096, so unpadded here
        return KL3MChar(vocab_size=4096, pad_to_power_of_two=False)


def _model_tokens(tokenizer) -> list[str]:
    """The learned vocabulary: model tokens that are not special."""
    specials = set(tokenizer.special_tokens.values())
    return [t for t in tokenizer.vocab(added_tokens=False) if t not in specials]


# -- (i) power of two ------------------------------------------------------------------


@_FEW
@given(
    exponent=st.integers(10, 12),
    groups=st.sets(st.sampled_from(["years", "json", "xml", "markdown"])),
    min_frequency=st.sampled_from([2, 10, 50]),
)
def test_the_vocabulary_is_exactly_a_power_of_two(legal_corpus, exponent, groups, min_frequency):
    """BPE stops early on this corpus (all the more with min_frequency 50): the padding fills it."""
    trainer = KL3MBPE(
        vocab_size=2**exponent, custom_groups=tuple(sorted(groups)), min_frequency=min_frequency
    )
    tokenizer = trainer.train(legal_corpus, progress=False)
    assert tokenizer.vocab_size == 2**exponent
    assert len(set(tokenizer.vocab().values())) == 2**exponent  # every id once, no gap


def test_padding_is_whitespace_combinations_spaces_and_newlines_first(legal_corpus):
    tokenizer = KL3MBPE(vocab_size=2048, custom_groups=(), min_frequency=50).train(
        legal_corpus, progress=False
    )
    learned = set(tokenizer.vocab(added_tokens=False))
    pads = [t for t, _ in sorted(tokenizer.vocab().items(), key=lambda kv: kv[1]) if t not in learned]
    assert pads and all(set(t) <= set(" \n\t\r") for t in pads)
    assert pads[:4] == ["  ", "\n\n", " \n", " \t"] or pads[:2] == ["  ", "\n\n"]
    combos = list(whitespace_combinations(3))
    assert len(combos) == 4**2 + 4**3 and len(set(combos)) == len(combos) and combos[:2] == ["  ", "\n\n"]


@pytest.mark.parametrize("vocab_size", [1000, 3000, 5000])
def test_a_vocab_size_that_is_not_a_power_of_two_is_refused_unless_unpadded(vocab_size):
    with pytest.raises(ConfigError, match="not a power of two") as err:
        KL3MBPE(vocab_size=vocab_size)
    assert err.value.component == "tokenizer_trainer 'kl3m-bpe'"
    KL3MBPE(vocab_size=vocab_size + 3000, pad_to_power_of_two=False)


# -- (ii) maximum token length -------------------------------------------------------------


@pytest.mark.parametrize(("vocab_size", "limit"), [(4096, 3), (8192, 3), (16384, 4)])
def test_character_tokens_are_at_most_the_papers_length(words_corpus, char_4k, vocab_size, limit):
    tokenizer = (
        char_4k
        if vocab_size == 4096
        else KL3MChar(vocab_size=vocab_size, pad_to_power_of_two=False).train(words_corpus, progress=False)
    )
    lengths = [len(t) for t in _model_tokens(tokenizer)]
    # tokenizers' max_token_length = max_chars + 1 keeps exactly max_chars symbols: the longest is there
    assert max(lengths) == limit
    padded = [t for t in tokenizer.vocab() if t not in tokenizer.vocab(added_tokens=False)]
    assert all(len(t) <= limit for t in padded)


def test_the_4k_character_tokenizer_fills_its_vocabulary_and_its_whole_alphabet(char_4k):
    assert char_4k.vocab_size == 4096 and char_4k.unrepresentable_bytes == frozenset()
    # every byte is one base token, seen in the corpus or not
    assert all(len(char_4k.encode(chr(c)).ids) == 1 for c in range(128))
    # chr(128..254): at most one token per UTF-8 byte of its NFKC form (which can be longer: "¼")
    assert all(
        len(char_4k.encode(chr(c)).ids) <= len(unicodedata.normalize("NFKC", chr(c)).encode())
        for c in range(128, 255)
    )


def test_the_naive_bpe_has_longer_tokens(naive_bpe):
    """The contrast: without the cap, BPE learns whole words."""
    assert max(len(t) for t in _model_tokens(naive_bpe)) > 4


def test_a_char_tokenizer_that_cannot_be_padded_within_its_length_says_so(legal_corpus):
    with pytest.raises(ConfigError, match="whitespace combinations of at most 3 characters") as err:
        KL3MChar(vocab_size=4096).train(legal_corpus, progress=False)
    assert err.value.component == "tokenizer_trainer 'kl3m-char'" and "pad_to_power_of_two" in err.value.hint


def test_padding_beyond_the_length_is_whitespace_only_and_opt_in(legal_corpus):
    tokenizer = KL3MChar(vocab_size=4096, pad_beyond_max_chars=True).train(legal_corpus, progress=False)
    assert tokenizer.vocab_size == 4096
    assert max(len(t) for t in _model_tokens(tokenizer)) <= 3
    learned = set(tokenizer.vocab(added_tokens=False))
    long = [t for t in tokenizer.vocab() if t not in learned and len(t) > 3]
    assert long and all(set(t) <= set(" \n\t\r") for t in long)


@pytest.mark.parametrize("vocab_size", [1024, 5000, 32768])
def test_char_vocab_sizes_are_the_papers(vocab_size):
    with pytest.raises(ConfigError, match="4096, 8192, 16384"):
        KL3MChar(vocab_size=vocab_size)


# -- (iii) custom tokens are single ids ------------------------------------------------------


def test_every_custom_token_is_one_id_alone_and_in_text(legal_bpe):
    trainer = KL3MBPE(vocab_size=4096, min_frequency=2)
    tokens = trainer.custom_tokens()
    assert len(tokens) == len(custom_tokens(GROUPS)) > 1500
    for token in tokens:
        ids = legal_bpe.encode(token).ids
        assert len(ids) == 1, (token, [legal_bpe.id_to_token(i) for i in ids])
        # inside a word it is still one token (matched before the model); "é" is in no custom token
        assert ids[0] in legal_bpe.encode(f"é{token}é").ids, token


@_FEW
@given(data=st.data())
def test_custom_tokens_in_a_sentence_keep_their_id(legal_bpe, data):
    # (a token that starts with a space would meet the sentence's own space: a whitespace run token)
    token = data.draw(
        st.sampled_from(
            [t for t in custom_tokens(["years", "enumerations", "citations", "html"]) if not t[0].isspace()]
        )
    )
    before = data.draw(st.sampled_from(["Section ", "see ", "", "the "]))
    text = f"{before}{token} applies."
    ids = legal_bpe.encode(text).ids
    assert legal_bpe.token_to_id(token) in ids
    assert legal_bpe.decode(ids) == text


def test_the_uncased_variant_lowercases_text_and_custom_tokens(legal_corpus):
    tokenizer = KL3MBPE(vocab_size=4096, cased=False, min_frequency=2).train(legal_corpus, progress=False)
    assert (
        tokenizer.decode(tokenizer.encode("The LICENSOR (IV) Fed.R.Civ.P.").ids)
        == "the licensor (iv) fed.r.civ.p."
    )
    assert len(tokenizer.encode("(IV)").ids) == 1 and tokenizer.token_to_id("(IV)") is None


def test_special_tokens_for_causal_and_masked_lms(legal_bpe):
    assert [legal_bpe.special_tokens[i] for i in range(7)] == list(SPECIAL_TOKENS)
    assert (legal_bpe.bos_id, legal_bpe.eos_id, legal_bpe.pad_id, legal_bpe.unk_id) == (0, 1, 2, 3)


# -- (iv) NFKC round trip ----------------------------------------------------------------------

_TEXT = st.text(
    st.one_of(
        st.characters(min_codepoint=0x20, max_codepoint=0x17F),
        st.sampled_from(list("ﬁﬂ①②Ⅳⅻ½™…§¶“”‘’–—\u00a0\u2009ＡＢ１２ｶﾞ\t\n\r")),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(text=_TEXT)
def test_decode_of_encode_is_the_nfkc_text(legal_bpe, char_4k, text):
    for tokenizer in (legal_bpe, char_4k):
        assert tokenizer.decode(tokenizer.encode(text).ids) == unicodedata.normalize("NFKC", text)


# -- bad parameters and corpora ------------------------------------------------------------------


def test_bad_parameters_are_typed_and_name_the_trainer():
    with pytest.raises(ConfigError, match="unknown group"):
        KL3MBPE(custom_groups=("emoji",))
    with pytest.raises(ConfigError, match="below the .* ids this recipe needs") as err:
        KL3MBPE(vocab_size=1024)  # 2,108 custom tokens do not fit
    assert "custom_groups" in err.value.hint
    with pytest.raises(ConfigError, match="both a special and a custom"):
        KL3MBPE(extra_tokens=("<|start|>",))
    with pytest.raises(ConfigError, match="bos_token '<s>' is not one of special_tokens"):
        KL3MChar(bos_token="<s>")
    with pytest.raises(ParameterTypeError):
        KL3MBPE(cased="yes")
    with pytest.raises(ParameterTypeError):
        KL3MBPE(extra_tokens=("ok", 3))


def test_registry_builds_both_and_checks_parameters(installed_registry):
    trainer = installed_registry.build("tokenizer_trainer", {"type": "kl3m-char", "vocab_size": 8192})
    assert trainer._max_chars() == 3
    with pytest.raises(ConfigError) as err:
        installed_registry.build("tokenizer_trainer", {"type": "kl3m-bpe", "vocab_size": 5000})
    assert "power of two" in str(err.value)


@pytest.mark.parametrize("corpus", [[], ["", " "][:1], "a single string"])
def test_an_empty_corpus_is_an_input_error_naming_the_trainer(corpus):
    with pytest.raises(InputError) as err:
        KL3MChar(pad_to_power_of_two=False).train(corpus, progress=False)
    assert err.value.component == "tokenizer_trainer 'kl3m-char'"
