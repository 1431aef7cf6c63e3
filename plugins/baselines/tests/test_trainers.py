import pytest
from tokensmith_baselines.trainers import BYTE_TOKENS, ByteLevelBPE, CharBPE, Unigram, WordPiece

from tokensmith import ConfigError, HFTokenizer, UnrepresentableTextError
from tokensmith.testing import TokenizerTrainerContract, trainer_corpus


class TestByteLevelBPE(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return ByteLevelBPE(vocab_size=400, added_tokens=("    ",))


class TestCharBPE(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return CharBPE(vocab_size=420)


class TestCharBPEWithoutByteFallback(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return CharBPE(vocab_size=150, byte_fallback=False)


class TestUnigram(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return Unigram(vocab_size=150)


class TestWordPiece(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return WordPiece(vocab_size=200)


def test_byte_level_bpe_represents_every_byte_and_matches_added_tokens():
    tok = ByteLevelBPE(vocab_size=300, added_tokens=("    ",)).train(trainer_corpus(), progress=False)
    assert tok.model_type == "byte-level-bpe" and tok.lossless and tok.unrepresentable_bytes == frozenset()
    text = "def g():\n    return '✓ \x00 🦊'"
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text and tok.token_to_id("    ") in ids
    assert tok.special_tokens == {0: "<|endoftext|>"} and tok.eos_id == 0 and tok.bos_id is None


def test_nfkc_folds_compatibility_characters():
    tok = ByteLevelBPE(vocab_size=300, normalizer="nfkc").train(trainer_corpus(), progress=False)
    assert not tok.lossless
    assert tok.decode(tok.encode("ﬁne Ⅸ").ids) == "fine IX"


def test_char_bpe_spells_unseen_characters_in_bytes():
    tok = CharBPE(vocab_size=400).train(trainer_corpus(), progress=False)
    assert tok.model_type == "bpe" and tok.lossless and tok.prefix_bytes == b" "
    assert [tok.token_to_id(t) for t in BYTE_TOKENS] == list(range(3, 259))  # after the 3 specials
    text = "zebra ✓ 🦊"  # none of these characters is in the corpus but 'e', 'r', 'a', ' '
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text and set(ids) & set(range(3, 259))
    # no merge produces a byte token: text reaches them only through the fallback
    assert not any(a + b in BYTE_TOKENS for a, b in tok.merges())


def test_without_byte_fallback_an_unseen_character_is_an_error():
    tok = CharBPE(vocab_size=150, byte_fallback=False).train(trainer_corpus(), progress=False)
    assert tok.token_to_id("<0x41>") is None
    with pytest.raises(UnrepresentableTextError):
        tok.encode("✓")


def test_limit_alphabet_keeps_the_vocabulary_within_its_size():
    corpus = ["".join(chr(0x4E00 + i) for i in range(300))] * 2  # 300 distinct characters
    tok = CharBPE(vocab_size=320).train(corpus, progress=False)  # room for 61 characters only
    assert tok.vocab_size <= 320
    assert tok.decode(tok.encode(corpus[0]).ids) == corpus[0]  # the rest in byte tokens


def test_unigram_needs_room_for_the_corpus_alphabet():
    corpus = ["".join(chr(0x4E00 + i) for i in range(300))]
    with pytest.raises(ConfigError, match="tokenizers refused to train") as info:
        Unigram(vocab_size=100).train(corpus, progress=False)
    assert "vocab_size" in info.value.hint and "unigram" in str(info.value)


def test_wordpiece_marks_continuations():
    tok = WordPiece(vocab_size=200, lowercase=True).train(trainer_corpus(), progress=False)
    assert tok.model_type == "wordpiece" and not tok.lossless
    assert tok.decode(tok.encode("The Capital").ids) == "the capital"
    assert any(t.startswith("##") for t in tok.vocab()) and tok.pad_id == 0 and tok.unk_id == 1


@pytest.mark.parametrize("make, message", [
    (lambda: ByteLevelBPE(vocab_size=200), "below the 257 ids"),
    (lambda: ByteLevelBPE(vocab_size=300, added_tokens=("a",) * 2), "more than once"),
    (lambda: ByteLevelBPE(eos_token="</s>"), "eos_token '</s>' is not one of special_tokens"),
    (lambda: ByteLevelBPE(added_tokens=("<|endoftext|>",)), "both a special and an added token"),
    (lambda: ByteLevelBPE(special_tokens=("",)), "non-empty strings"),
    (lambda: ByteLevelBPE(normalizer="nfd"), "normalizer"),
    (lambda: CharBPE(vocab_size=259), "below the 260 ids"),
    (lambda: CharBPE(vocab_size=3, byte_fallback=False), "below the 4 ids"),
    (lambda: CharBPE(unk_token="[UNK]"), r"unk_token '\[UNK\]'"),
    (lambda: CharBPE(byte_fallback=1), "byte_fallback must be true or false"),
    (lambda: Unigram(shrinking_factor=1.5), "shrinking_factor"),
    (lambda: WordPiece(vocab_size=0), "vocab_size"),
])
def test_parameters_are_checked_when_built_in_python(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_the_registry_checks_parameters_before_building(installed_registry):
    trainer = installed_registry.build("tokenizer_trainer", {"type": "byte-level-bpe", "vocab_size": 300})
    assert isinstance(trainer, ByteLevelBPE) and trainer.vocab_size == 300
    with pytest.raises(ConfigError, match="below the 257 ids"):
        installed_registry.build("tokenizer_trainer", {"type": "byte-level-bpe", "vocab_size": 100})
    with pytest.raises(ConfigError, match="bos_token"):
        installed_registry.build("tokenizer_trainer", {"type": "bpe", "bos_token": "<bos>"})
    for name in ("bpe", "unigram", "wordpiece"):
        assert installed_registry.get("tokenizer_trainer", name).distribution == "tokensmith-baselines"


def test_a_trained_tokenizer_loads_as_hf_file_from_its_directory(installed_registry, tmp_path):
    trained = ByteLevelBPE(vocab_size=300).train(trainer_corpus(), progress=False)
    path = trained.save(tmp_path / "my-tokenizer")
    assert path == tmp_path / "my-tokenizer" / "tokenizer.json"
    loaded = installed_registry.build("tokenizer", {"type": "hf-file", "path": str(path.parent)})
    assert isinstance(loaded, HFTokenizer) and loaded.fingerprint() == trained.fingerprint()
    assert loaded.eos_id == trained.eos_id == 0 and loaded.encode("fox").ids == trained.encode("fox").ids


def test_a_wordpiece_without_the_letter_a_still_verifies():
    """Continuation tokens are checked after a word-initial token, whichever the vocabulary has."""
    tok = WordPiece(vocab_size=60, min_frequency=1).train(["XYZ xyzzy Q"] * 3, progress=False)
    assert tok.token_to_id("a") is None and tok.decode(tok.encode("xyzzy").ids) == "xyzzy"
