"""Fixtures: a tiny word-list validator, text-files corpora, and three Hugging Face tokenizers
with the same segmentation of the same words but different word-boundary markers (Ġ, ▁, ##)."""

from __future__ import annotations

import pytest

#: word -> its morphs (the segmentation every marker tokenizer gives it)
WORDS = {
    "evlerde": ("ev", "ler", "de"),
    "kitaplarda": ("kitap", "lar", "da"),
    "gözlükçü": ("göz", "lük", "çü"),
    "ev": ("ev",),
    "kitap": ("kitap",),
    "gözler": ("göz", "ler"),
    "qzx": ("qz", "x"),
}


@pytest.fixture(scope="session")
def marker_words():
    return dict(WORDS)


@pytest.fixture
def tiny_validator():
    from tokensmith_linguistic_integrity.validators import WordList

    return WordList(roots=("ev", "kitap", "göz"), affixes=("ler", "lar", "de", "da", "lük", "çü"),
                    words=("evler", "gözlük"), case="turkish")


@pytest.fixture
def write_corpus(tmp_path):
    """A text-files dataset spec (one example per line) for the given lines."""

    def write(lines, name="corpus.txt"):
        path = tmp_path / name
        path.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        return {"paths": [str(path)], "unit": "line"}

    return write


def _bpe(marker: str):
    """A BPE whose merges build exactly the morphs of WORDS, word-initial morphs with the marker."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    byte_level = marker == "Ġ"
    table = ByteLevel.alphabet() if byte_level else None
    to_symbols = (lambda s: list("".join(_bytes_to_unicode()[b] for b in s.encode("utf-8")))) if byte_level \
        else list
    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []

    def add(symbol):
        vocab.setdefault(symbol, len(vocab))

    for symbol in sorted(table) if table else ():
        add(symbol)
    for morphs in WORDS.values():
        for i, morph in enumerate(morphs):
            symbols = ([marker] if i == 0 else []) + to_symbols(morph)
            for s in symbols:
                add(s)
            piece = symbols[0]
            for s in symbols[1:]:
                if (piece, s) not in merges:
                    merges.append((piece, s))
                piece += s
                add(piece)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    if byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=marker, prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement=marker, prepend_scheme="always")
    return tok


def _wordpiece():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"[UNK]": 0}
    for morphs in WORDS.values():
        for i, morph in enumerate(morphs):
            vocab.setdefault(morph if i == 0 else "##" + morph, len(vocab))
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()
    return tok


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's byte alphabet (the one tokenizers' ByteLevel uses)
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@pytest.fixture(scope="session")
def marker_tokenizers():
    """{marker: HFTokenizer}: the same segmentation of WORDS rendered with Ġ, ▁ and ##."""
    from tokensmith import HFTokenizer

    return {"Ġ": HFTokenizer(_bpe("Ġ"), name="bytelevel-bpe"),
            "▁": HFTokenizer(_bpe("▁"), name="metaspace-bpe"),
            "##": HFTokenizer(_wordpiece(), name="wordpiece")}
