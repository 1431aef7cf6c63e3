"""The Unicode-centric tokenizer of Bochkov (TMLR 2025, arXiv 2507.04886; step 1, "bvv241").

The paper's vocabulary lives in the 16-bit code space of Unicode's Basic Multilingual Plane:
every code point is a token whose code is the code point itself (monograms), and the frequent
bigrams and trigrams of a corpus take the codes of the Private Use Area U+E000..U+F8FF. Here
each token has such a *slot code* and the ids are the slots in increasing order, so a
monogram's id follows its code point and every n-gram comes after the characters it is made of.

- ``alphabet = "bmp"`` is the paper's layout: every BMP code point except the surrogates
  (which are not text) and the PUA slots the n-grams take, so the id of every code point below
  U+D800 *is* that code point, but for U+2581: the core reads that character as SentencePiece's
  space marker in byte-fallback vocabularies, so it is spelled in bytes and its slot holds the
  end-of-text token.
- ``alphabet = "corpus"`` (the small-scale choice) keeps printable ASCII, tab and newline and
  the BMP characters seen at least ``min_frequency`` times in the corpus: a few hundred rows
  instead of 65,536, so that a tiny model's embedding table and output head stay small.

Text outside the monograms (astral code points such as emoji, or characters the corpus did
not have) is spelled in UTF-8 bytes by 256 byte-fallback tokens ``<0x00>..<0xFF>`` in the
first surrogate slots U+D800..U+D8FF (codes no character can have): every text is encoded
losslessly, nothing is dropped. The end-of-text token takes the slot of U+2581 (see below).

The segmentation is a BPE over code points (Hugging Face ``tokenizers``, no pre-tokenizer):
each bigram ``ab`` is the merge ``(a, b)``, each trigram ``abc`` the merge ``(ab, c)`` or
``(a, bc)`` from whichever of its bigrams merges first (a trigram neither of whose bigrams was
selected cannot be reached by merges and is passed over for the next most frequent); bigrams
merge first, by frequency. The paper does not spell out its segmentation; a BPE keeps the result an ordinary
``tokenizer.json`` with a verified byte view that ``hf-file`` reloads.
"""

from __future__ import annotations

import collections
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import attrs

from tokensmith import (
    ConfigError,
    InputError,
    TokenizerTrainer,
    non_negative_int,
    positive_int,
    require_text,
)

PUA = (0xE000, 0xF8FF)  # the n-grams' slots (6,400)
BYTE_SLOT = 0xD800  # <0x00>..<0xFF> at U+D800..U+D8FF: surrogate codes, never a character
EOS = "<|endoftext|>"
# U+2581 LOWER ONE EIGHTH BLOCK is SentencePiece's word marker: the core byte view of a
# byte-fallback vocabulary reads it as a space, so it is no monogram here (it is spelled in bytes)
# and the end-of-text token takes its slot, which keeps every other code point's id in place
METASPACE = "\u2581"
SPECIAL_SLOT = ord(METASPACE)
BASE = tuple(chr(c) for c in range(0x20, 0x7F)) + ("\t", "\n")


def byte_token(b: int) -> str:
    return f"<0x{b:02X}>"


def _texts(texts: Iterable[str], component: str) -> Iterator[str]:
    """The corpus, streamed and checked: a lone ``str``, a non-``str`` text, a lone surrogate, an
    empty corpus or one of empty texts only are ``InputError``s."""
    if isinstance(texts, (str, bytes, bytearray)) or not isinstance(texts, Iterable):
        raise InputError(f"expected an iterable of texts, got {type(texts).__name__}", component=component,
                         hint="pass a list of texts (or a generator), e.g. train([text])")
    seen = False
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {index} is {type(text).__name__}, not str", component=component,
                             hint="decode bytes first (bytes.decode('utf-8'))")
        require_text(text, component)
        seen = seen or bool(text)
        yield text
    if not seen:
        raise InputError("the corpus has no text (no texts, or only empty ones)", component=component,
                         hint="give the trainer the texts to learn its n-grams from")


def slot_codes(tokenizer: Any) -> list[int]:
    """The slot code of every id of a tokenizer this trainer made: a monogram's code point, a
    byte token's U+D800 + byte, the end-of-text token's U+2581, an n-gram's PUA code."""
    vocab = tokenizer.vocab()
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    codes, ngrams = [], 0
    for token, _ in by_id:
        if len(token) == 1:
            codes.append(ord(token))
        elif token == EOS:
            codes.append(SPECIAL_SLOT)
        elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            codes.append(BYTE_SLOT + int(token[3:5], 16))
        else:
            codes.append(PUA[0] + ngrams)
            ngrams += 1
    return codes


@attrs.define
class UnicodeNgrams(TokenizerTrainer):
    """Code-point monograms plus the corpus's most frequent bigrams and trigrams in PUA slots."""

    name = "unicode-ngrams"

    alphabet: Literal["corpus", "bmp"] = attrs.field(default="corpus", metadata={
        "doc": "monograms: 'corpus' (printable ASCII, tab, newline and the corpus's BMP characters) or "
               "'bmp' (every BMP code point, the paper's 65,536-slot layout)"})
    bigrams: int = attrs.field(default=256, validator=non_negative_int, metadata={
        "doc": "most frequent bigrams to add (each a PUA slot)"})
    trigrams: int = attrs.field(default=128, validator=non_negative_int, metadata={
        "doc": "most frequent trigrams to add (each containing a selected bigram)"})
    min_frequency: int = attrs.field(default=2, validator=positive_int, metadata={
        "doc": "occurrences a character ('corpus' alphabet) or an n-gram needs to become a token"})

    @staticmethod
    def check_parameters(values: dict[str, Any]) -> None:
        if values["bigrams"] + values["trigrams"] > PUA[1] - PUA[0] + 1:
            raise ValueError(f"bigrams + trigrams = {values['bigrams'] + values['trigrams']} exceeds the "
                             f"{PUA[1] - PUA[0] + 1} Private Use Area slots U+E000..U+F8FF")

    def train(self, texts: Iterable[str], *, progress: bool = True) -> Any:
        component = f"tokenizer_trainer '{self.name}'"
        try:  # the registry checks this before building; a trainer made in Python is checked here
            self.check_parameters(attrs.asdict(self))
        except ValueError as exc:
            raise ConfigError(str(exc), component=component) from None
        chars: collections.Counter[str] = collections.Counter()
        pairs: collections.Counter[str] = collections.Counter()
        triples: collections.Counter[str] = collections.Counter()
        from tokensmith import progress as bar

        # a bar on a terminal only (enabled=None), never when the caller says progress=False
        for text in bar(_texts(texts, component), desc="counting n-grams", unit="text",
                        enabled=None if progress else False):
            chars.update(text)
            pairs.update(text[i:i + 2] for i in range(len(text) - 1))
            triples.update(text[i:i + 3] for i in range(len(text) - 2))
        monograms = self._monograms(chars)
        known = set(monograms)
        usable = self.min_frequency

        def ranked(counter: collections.Counter[str]) -> list[str]:
            # frequency first, then the string: the same corpus gives the same vocabulary
            return [s for s, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
                    if n >= usable and all(ch in known for ch in s)]

        chosen_pairs = ranked(pairs)[:self.bigrams]
        rank = {p: r for r, p in enumerate(chosen_pairs)}
        merges = [(p[0], p[1]) for p in chosen_pairs]
        chosen_triples = []
        for t in ranked(triples):
            if len(chosen_triples) == self.trigrams:
                break
            # BPE merges the better-ranked of the trigram's two bigrams first, so the trigram's
            # merge must start from that one (else "abc" alone would never become one token)
            first = min((g for g in (t[:2], t[1:]) if g in rank), key=rank.__getitem__, default=None)
            if first is None:
                continue
            merges.append((first, t[2]) if first == t[:2] else (t[0], first))
            chosen_triples.append(t)
        return build_tokenizer(monograms, chosen_pairs + chosen_triples, merges, name=self.name)

    def _monograms(self, chars: collections.Counter[str]) -> list[str]:
        if self.alphabet == "bmp":
            # the PUA slots the n-grams take are no longer monograms (the paper's layout); the
            # rest of the PUA stays as characters
            taken = range(PUA[0], PUA[0] + self.bigrams + self.trigrams)
            return [chr(c) for c in range(0x10000)
                    if not 0xD800 <= c <= 0xDFFF and c not in taken and chr(c) != METASPACE]
        seen = {ch for ch, n in chars.items() if n >= self.min_frequency and ord(ch) < 0x10000
                and not PUA[0] <= ord(ch) <= PUA[1] and unicodedata.category(ch) != "Cs" and ch != METASPACE}
        return sorted(set(BASE) | seen, key=ord)


def build_tokenizer(monograms: list[str], ngrams: list[str], merges: list[tuple[str, str]], *,
                    name: str = "unicode-ngrams") -> Any:
    """The ``HFTokenizer`` of a vocabulary: ids in slot order (monograms and EOS below U+D800,
    bytes, n-grams in the PUA by rank, monograms above the PUA)."""
    import tokenizers
    from tokenizers import decoders, models

    from tokensmith import HFTokenizer

    if len(set(ngrams)) != len(ngrams) or any(len(g) < 2 for g in ngrams):
        raise ConfigError("n-grams must be distinct strings of 2 or more characters",
                          component="tokenizer 'unicode-ngrams'")
    slots = [(ord(ch), ch) for ch in monograms]
    slots += [(BYTE_SLOT + b, byte_token(b)) for b in range(256)]
    slots.append((SPECIAL_SLOT, EOS))
    # an n-gram takes its PUA code; on a tie with a PUA monogram ('bmp' never has one, since the
    # taken slots are removed) the n-gram comes second
    slots += [(PUA[0] + rank, gram) for rank, gram in enumerate(ngrams)]
    slots.sort(key=lambda s: (s[0], len(s[1])))
    vocab = {token: i for i, (_, token) in enumerate(slots)}
    if len(vocab) != len(slots):
        raise ConfigError("two tokens of the vocabulary have the same string",
                          component=f"tokenizer '{name}'")
    backend = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=True, fuse_unk=False))
    backend.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    backend.add_special_tokens([tokenizers.AddedToken(EOS, special=True, normalized=False)])
    return HFTokenizer(backend, name=name, eos_token=EOS, samples=("Unicode: café, Ωμέγα, 漢字, 🙂",))
