"""The public Tokenizer surface (model type, vocabulary, merges, the model stage, normalizer,
pre-tokenizer boundaries, pipeline description, to_json/save/fingerprint): HFTokenizer's
answers checked against brute-force references, and the typed errors of a tokenizer that
has none of it."""

import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import (
    Encoding,
    HFTokenizer,
    IncompatibleComponentsError,
    InputError,
    PreToken,
    Tokenizer,
    UnrepresentableTextError,
    byte_level_decoder,
)
from tokensmith.testing import TINY_CORPUS, representable_text

_settings = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def _train(backend, trainer):
    """``backend`` (a ``tokenizers.Tokenizer``) trained with ``trainer`` on TINY_CORPUS."""
    backend.train_from_iterator(TINY_CORPUS.splitlines(keepends=True) * 2, trainer)
    return backend


@pytest.fixture(scope="module")
def nfkc_tokenizer():
    """Byte-level BPE behind an NFKC + lower-case normalizer, with a plain added token."""
    from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers import Tokenizer as Backend

    tok = Backend(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok = _train(tok, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                          show_progress=False))
    tok.add_tokens([AddedToken("    ", normalized=False)])
    return HFTokenizer(tok, name="nfkc", eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def wordpiece_tokenizer():
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

    tok = Backend(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()  # cleanup=True, as BERT ships it
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]"],
                                        show_progress=False)
    return HFTokenizer(_train(tok, trainer), name="wp", unk_token="[UNK]")


def naive_bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE by the book: merge the adjacent pair of lowest rank (leftmost first) until none is left."""
    symbols = list(symbols)
    while True:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        pairs = [(r, i) for r, i in pairs if r is not None]
        if not pairs:
            return symbols
        _, i = min(pairs)
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]


def check_merges_against_naive_bpe(tok: HFTokenizer, text: str) -> None:
    ranks = {pair: r for r, pair in enumerate(tok.merges())}
    vocab = tok.vocab(added_tokens=False)
    chars = {b: c for c, b in byte_level_decoder().items()}
    for pre in tok.pretokenize(text):
        piece = "".join(chars[b] for b in pre.text.encode("utf-8"))
        if tok.describe()["model"].get("ignore_merges") and piece in vocab:
            want = [vocab[piece]]  # Llama-3 style: a whole pre-token in the vocabulary wins
        else:
            want = [vocab[s] for s in naive_bpe(list(piece), ranks)]
        assert tok.model_tokenize(piece) == want, pre


# -- what the tokenizer is made of ---------------------------------------------------

def test_model_types(tiny_tokenizer, tiny_byte_fallback_tokenizer, nfkc_tokenizer, wordpiece_tokenizer):
    assert tiny_tokenizer.model_type == "byte-level-bpe" == nfkc_tokenizer.model_type
    assert tiny_byte_fallback_tokenizer.model_type == "bpe"
    assert wordpiece_tokenizer.model_type == "wordpiece"


def test_vocab_agrees_with_ids_and_the_byte_view(tiny_tokenizer, nfkc_tokenizer):
    for tok in (tiny_tokenizer, nfkc_tokenizer):
        vocab = tok.vocab()
        assert sorted(vocab.values()) == list(range(tok.vocab_size))
        assert all(tok.token_to_id(s) == i and tok.id_to_token(i) == s for s, i in vocab.items())
        table = byte_level_decoder()
        model_vocab = tok.vocab(added_tokens=False)
        for s, i in model_vocab.items():
            if i not in tok.special_ids:
                assert tok.token_bytes(i) == bytes(table[c] for c in s)
    assert "    " in nfkc_tokenizer.vocab() and "    " not in nfkc_tokenizer.vocab(added_tokens=False)
    vocab = tiny_tokenizer.vocab()
    vocab.clear()  # a copy: the tokenizer's own is untouched
    assert tiny_tokenizer.vocab()
    assert tiny_tokenizer.token_to_id("no such token") is None
    with pytest.raises(InputError):
        tiny_tokenizer.token_to_id(3)
    with pytest.raises(InputError):
        tiny_tokenizer.id_to_token(tiny_tokenizer.vocab_size)
    with pytest.raises(InputError):
        tiny_tokenizer.vocab(added_tokens="no")


def test_merges_are_ranked_pairs_of_vocabulary_strings(tiny_tokenizer, tiny_byte_fallback_tokenizer):
    for tok in (tiny_tokenizer, tiny_byte_fallback_tokenizer):
        merges = tok.merges()
        vocab = tok.vocab(added_tokens=False)
        assert merges and all(a in vocab and b in vocab and a + b in vocab for a, b in merges)
        assert len(set(merges)) == len(merges)


@_settings
@given(text=st.text(max_size=30))
def test_merges_reproduce_the_model_by_naive_bpe(tiny_tokenizer, text):
    check_merges_against_naive_bpe(tiny_tokenizer, text)


@pytest.mark.smollm2
def test_merges_reproduce_smollm2_by_naive_bpe(smollm2):
    tok = smollm2[1]
    assert tok.model_type == "byte-level-bpe" and len(tok.merges()) > 48000
    for text in ("def fibonacci(n):\n    return n", "The capital of France is Paris.", " naïve 東京 🦊"):
        check_merges_against_naive_bpe(tok, text)


def test_wordpiece_has_no_merges(wordpiece_tokenizer):
    with pytest.raises(IncompatibleComponentsError, match="wordpiece tokenizer: it has no BPE merges") \
            as info:
        wordpiece_tokenizer.merges()
    assert "byte-level-bpe" in info.value.hint
    ids = wordpiece_tokenizer.model_tokenize("capital")  # the model stage still works: greedy longest match
    assert "".join(wordpiece_tokenizer.id_to_token(i).removeprefix("##") for i in ids) == "capital"
    assert ids == list(wordpiece_tokenizer.encode("capital").ids)


def test_model_tokenize_never_drops_symbols(tiny_tokenizer, wordpiece_tokenizer):
    assert tiny_tokenizer.model_tokenize("Ġthe") == list(tiny_tokenizer.encode(" the").ids)
    with pytest.raises(UnrepresentableTextError):
        tiny_tokenizer.model_tokenize("a b")  # a raw space is no byte-level symbol: BPE alone drops it
    with pytest.raises(UnrepresentableTextError):
        wordpiece_tokenizer.model_tokenize("✓")  # the unknown token
    with pytest.raises(InputError):
        tiny_tokenizer.model_tokenize(b"the")


def test_describe_is_the_pipeline_without_vocabulary(tiny_tokenizer, tiny_byte_fallback_tokenizer):
    spec = tiny_tokenizer.describe()
    assert set(spec) == {"normalizer", "pre_tokenizer", "model", "post_processor", "decoder"}
    assert spec["pre_tokenizer"]["type"] == "ByteLevel" and spec["normalizer"] is None
    assert spec["model"]["type"] == "BPE" and "vocab" not in spec["model"] and "merges" not in spec["model"]
    spec["model"]["dropout"] = 0.5
    assert tiny_tokenizer.describe()["model"]["dropout"] is None  # a copy
    assert tiny_byte_fallback_tokenizer.describe()["model"]["byte_fallback"] is True


# -- normalizer and pre-tokenizer -------------------------------------------------------

def test_normalize(tiny_tokenizer, nfkc_tokenizer, tiny_byte_fallback_tokenizer):
    assert tiny_tokenizer.normalize("Café ﬁ") == "Café ﬁ"
    assert nfkc_tokenizer.normalize("Café ﬁ Ⅸ") == "café fi ix"
    assert tiny_byte_fallback_tokenizer.normalize("a b") == "▁a▁b"
    with pytest.raises(InputError):
        nfkc_tokenizer.normalize("caf\udce9")


def _check_boundaries(tok: Tokenizer, text: str) -> list[PreToken]:
    pieces = tok.pretokenize(text)
    spans = [p.span for p in pieces]
    assert all(text[s:e] == p.text and s < e for p, (s, e) in zip(pieces, spans))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # in order, no overlap
    enc = tok.encode(text)
    for start, end in enc.offsets:  # every token lies inside one pre-token (tokens never cross)
        if end > start:
            assert any(s <= start and end <= e for s, e in spans), ((start, end), spans)
    return pieces


@_settings
@given(data=st.data())
def test_tokens_never_cross_pretoken_boundaries(tiny_tokenizer, tiny_byte_fallback_tokenizer, nfkc_tokenizer,
                                                data):
    tok = data.draw(st.sampled_from([tiny_tokenizer, tiny_byte_fallback_tokenizer, nfkc_tokenizer]))
    pieces = st.one_of(representable_text(tok, max_size=12), st.sampled_from(["    ", "ﬁ", " Ⅸ", "  ", "\n"]))
    text = data.draw(st.lists(pieces, max_size=4).map("".join))
    found = _check_boundaries(tok, text)
    if tok is tiny_tokenizer:  # ByteLevel pre-tokenization without a normalizer covers every character
        assert "".join(p.text for p in found) == text


def test_spans_are_in_the_original_text_through_the_normalizer(nfkc_tokenizer, wordpiece_tokenizer):
    text = "ﬁne  Ⅸ    x"
    pieces = _check_boundaries(nfkc_tokenizer, text)
    assert [p.text for p in pieces] == ["ﬁne", " ", " Ⅸ", "    ", "x"]  # the added token stands alone
    assert pieces[0].span == (0, 3)  # "ﬁ" is one character of the text, two after NFKC
    pieces = _check_boundaries(wordpiece_tokenizer, "The capital, of France.")
    assert [(p.text, p.span) for p in pieces] == [("The", (0, 3)), ("capital", (4, 11)), (",", (11, 12)),
                                                  ("of", (13, 15)), ("France", (16, 22)), (".", (22, 23))]


# -- to_json, save, fingerprint ---------------------------------------------------------

def test_save_writes_the_document_and_reloads_to_the_same_fingerprint(tiny_tokenizer, tmp_path):
    written = tiny_tokenizer.save(tmp_path / "out")
    assert written == tmp_path / "out" / "tokenizer.json"
    assert written.read_text(encoding="utf-8") == tiny_tokenizer.to_json()
    assert sorted(p.name for p in written.parent.iterdir()) == ["tokenizer.json", "tokenizer_meta.json"]
    canonical = json.dumps(json.loads(tiny_tokenizer.to_json()), sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"))
    assert tiny_tokenizer.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()
    for again in (HFTokenizer.from_file(written), HFTokenizer.from_file(written.parent)):
        assert again.fingerprint() == tiny_tokenizer.fingerprint() and again.eos_id == tiny_tokenizer.eos_id
    assert tiny_tokenizer.save(tmp_path / "named.json") == tmp_path / "named.json"  # a file name


def test_the_fingerprint_ignores_formatting_and_sees_every_token(tiny_tokenizer):
    from tokenizers import Tokenizer as Backend

    compact = Backend.from_str(json.dumps(json.loads(tiny_tokenizer.to_json()), indent=None))
    assert HFTokenizer(compact).fingerprint() == tiny_tokenizer.fingerprint()
    spec = json.loads(tiny_tokenizer.to_json())
    a, b = sorted(spec["model"]["vocab"], key=spec["model"]["vocab"].get)[100:102]
    vocab = spec["model"]["vocab"]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    swapped = HFTokenizer(Backend.from_str(json.dumps(spec)), verify=False)
    assert swapped.fingerprint() != tiny_tokenizer.fingerprint()
    from tokensmith.adapters.models import tiny_tokenizer as make

    assert make().fingerprint() == tiny_tokenizer.fingerprint()  # trained again: the same


def test_to_json_is_the_document_as_loaded(wordpiece_tokenizer):
    """HFTokenizer decodes WordPiece without the decoder's cleanup; what it writes is still the
    tokenizer as it came (cleanup on), so the saved file behaves the same elsewhere."""
    assert wordpiece_tokenizer.backend.decoder.cleanup is False
    assert json.loads(wordpiece_tokenizer.to_json())["decoder"]["cleanup"] is True
    assert wordpiece_tokenizer.describe()["decoder"]["cleanup"] is True


# -- a tokenizer that has none of it ------------------------------------------------------

class Letters(Tokenizer):
    """Each lower-case ASCII letter is a token: nothing but the required members."""

    name = "letters"

    @property
    def vocab_size(self):
        return 26

    def encode(self, text, *, add_special_tokens=False, allow_special=False):
        return Encoding([ord(c) - 97 for c in text], [(i, i + 1) for i in range(len(text))])

    def decode(self, ids):
        return "".join(chr(97 + i) for i in ids)

    def token_bytes(self, token_id):
        return bytes([97 + token_id])


@pytest.mark.parametrize("call, what", [
    (lambda t: t.vocab(), "string vocabulary"), (lambda t: t.token_to_id("a"), "string vocabulary"),
    (lambda t: t.merges(), "BPE merges"), (lambda t: t.model_tokenize("ab"), "separate model stage"),
    (lambda t: t.to_json(), "tokenizer.json form"), (lambda t: t.fingerprint(), "tokenizer.json form"),
])
def test_a_tokenizer_without_the_surface_says_what_it_lacks(call, what, tmp_path):
    with pytest.raises(IncompatibleComponentsError, match=f"tokenizer 'letters' .*has no {what}") as info:
        call(Letters())
    assert info.value.component == "tokenizer 'letters'" and info.value.hint
    with pytest.raises(IncompatibleComponentsError):
        Letters().save(tmp_path)
    assert not any(tmp_path.iterdir())


def test_defaults_of_a_plain_tokenizer():
    tok = Letters()
    assert tok.model_type == "custom" and tok.normalize("abc") == "abc"
    assert tok.pretokenize("abc") == [PreToken("abc", (0, 3))]
    assert tok.describe() == {"normalizer": None, "pre_tokenizer": None, "model": {"type": "custom"},
                              "post_processor": None, "decoder": None}
