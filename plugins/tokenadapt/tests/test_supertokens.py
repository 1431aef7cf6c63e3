"""Supertoken learning (TokenAdapt, arXiv 2505.09738): the trainer's contract, lossless round
trips, determinism, tokens that really span word boundaries (an ordinary byte-level BPE never
has one: the invariant the word pre-tokenization keeps it from), the vocabulary cap, the
chunking, and the supertokens benchmark end to end on a small text-files corpus."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_tokenadapt.supertokens import PAPER_CHUNK_LENGTHS, SupertokenBPE, sample_chunks, spans_words

from tokensmith import ConfigError, InputError
from tokensmith.testing import TokenizerTrainerContract

PHRASES = ["the licensee shall", "of the software", "in the event", "subject to the terms",
           "without warranty of any kind", "for the purpose of", "as is", "and the"]


def corpus(n: int = 120, seed: int = 0) -> list[str]:
    """Sentences made of recurring multi-word phrases (as licences are)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(PHRASES) for _ in range(6)) + ".\n" for _ in range(n)]


@pytest.fixture
def registry(make_registry):
    """The installed plugins: this one and the first-party ones it depends on (tokensmith-baselines'
    trainers, tokensmith-datasets' text-files), built by name."""
    return make_registry(entry_points=True)


@pytest.fixture(scope="module")
def trained():
    return SupertokenBPE(vocab_size=600).train(corpus(), progress=False)


class TestContract(TokenizerTrainerContract):
    @pytest.fixture
    def trainer(self):
        return SupertokenBPE(vocab_size=400)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_round_trip_is_lossless(trained, text):
    assert trained.decode(trained.encode(text).ids) == text
    assert b"".join(trained.token_bytes(i) for i in trained.encode(text).ids) == text.encode("utf-8")


def test_determinism_same_seed_same_tokenizer_other_seed_other_chunks():
    texts = corpus(60)
    a = SupertokenBPE(vocab_size=500, seed=3).train(texts, progress=False)
    b = SupertokenBPE(vocab_size=500, seed=3).train(iter(texts), progress=False)
    assert a.fingerprint() == b.fingerprint()
    assert list(SupertokenBPE(seed=1).chunks(texts)) != list(SupertokenBPE(seed=2).chunks(texts))


def test_supertokens_span_word_boundaries_and_plain_bpe_never_does(trained, registry):
    multi = [trained.token_bytes(i) for i in range(trained.vocab_size)
             if spans_words(trained.token_bytes(i) or b"")]
    assert len(multi) >= 20, multi
    text = "subject to the terms of the software"
    used = [trained.token_bytes(i) for i in trained.encode(text).ids]
    assert any(spans_words(b) for b in used), used
    assert len(used) < len(text.split())  # fewer tokens than words: the point of supertokens
    plain = registry.build("tokenizer_trainer", {"type": "byte-level-bpe", "vocab_size": 600}).train(
        corpus(), progress=False)
    assert not any(spans_words(plain.token_bytes(i) or b"") for i in range(plain.vocab_size))


@pytest.mark.parametrize("vocab_size", [257, 300, 450])
def test_vocabulary_cap(vocab_size):
    tokenizer = SupertokenBPE(vocab_size=vocab_size).train(corpus(), progress=False)
    assert tokenizer.vocab_size <= vocab_size
    assert max(len(tokenizer.token_bytes(i) or b"") for i in range(tokenizer.vocab_size)) <= 30 * 4
    with pytest.raises(ConfigError, match="vocab_size 200 is below"):
        SupertokenBPE(vocab_size=200)


def test_max_token_length_caps_supertokens():
    tokenizer = SupertokenBPE(vocab_size=600, max_token_length=6).train(corpus(), progress=False)
    assert all(len(tokenizer.id_to_token(i)) <= 6 for i in range(tokenizer.vocab_size)
               if tokenizer.token_bytes(i) is not None)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.integers(0, 2**16))
def test_chunks_keep_every_character_and_follow_the_ranges(text, seed):
    pieces = list(sample_chunks(text, PAPER_CHUNK_LENGTHS, random.Random(seed)))
    assert "".join(pieces) == text
    assert all(pieces)
    longest = max(high for _, high, _ in PAPER_CHUNK_LENGTHS)
    shortest = min(low for low, _, _ in PAPER_CHUNK_LENGTHS)
    assert all(len(p) <= longest for p in pieces)
    assert all(len(p) >= shortest for p in pieces[:-1])


def test_paper_distribution_is_a_distribution():
    assert sum(p for _, _, p in PAPER_CHUNK_LENGTHS) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("bad", [[[4, 5, 0.5]], [[0, 5, 1.0]], [[6, 5, 1.0]], [[4, 5, -0.5], [6, 7, 1.5]],
                                 [[4, 5]], [], "4-5"])
def test_bad_chunk_lengths_are_config_errors(bad):
    with pytest.raises(ConfigError, match="chunk_lengths"):
        SupertokenBPE(chunk_lengths=bad)


def test_bad_corpora_are_input_errors():
    with pytest.raises(InputError, match="iterable of texts"):
        SupertokenBPE().train("a single text", progress=False)
    with pytest.raises(InputError):
        SupertokenBPE().train([], progress=False)
    with pytest.raises(InputError):
        SupertokenBPE().train(["fine", 3], progress=False)


def test_spans_words():
    assert spans_words(b"of the") and spans_words(b"d to t") and spans_words(b"a\nb")
    assert not spans_words(b" the") and not spans_words(b"the ") and not spans_words(b"   ")
    assert not spans_words(b"") and not spans_words(b"licence")
    assert not spans_words("voilà là".encode()[1:6].replace(b" ", b"x"))  # C3 A0 is no space
    assert not spans_words("Ångström".encode())  # nor C3 85


def test_registered_and_built_from_a_table(registry):
    trainer = registry.build("tokenizer_trainer", {"type": "supertoken-bpe", "vocab_size": 300,
                                                   "chunk_lengths": [[2, 4, 0.5], [5, 9, 0.5]]})
    assert trainer.chunk_lengths == ((2, 4, 0.5), (5, 9, 0.5))


def test_supertokens_benchmark_on_text_files(tmp_path, registry):
    (tmp_path / "corpus.txt").write_text("".join(corpus(400)), encoding="utf-8")
    bench = registry.build("benchmark", {
        "type": "supertokens", "vocab_size": 400, "sample": 20,
        "dataset": {"type": "text-files", "paths": [str(tmp_path)], "unit": "line"}})
    report = bench.run()
    m = report.metrics
    assert m["held_out_texts"] == 20
    assert m["supertoken_bpe_tokens"] < m["byte_level_bpe_tokens"]
    assert m["bytes_per_token_gain"] > 0 and m["byte_level_bpe_multiword_vocab"] == 0
    per_token = m["held_out_bytes"] / m["supertoken_bpe_tokens"]
    assert m["supertoken_bpe_bytes_per_token"] == pytest.approx(per_token)
    with pytest.raises(ConfigError, match="dataset"):
        registry.build("benchmark", {"type": "supertokens", "dataset": 3})
