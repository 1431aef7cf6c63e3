"""Byte tables of a tokenizer and the paper's valid-encoding rule ``enc(dec(t)) == t``.

Phan, Amos, Gat, Havasi, Muckley, Ullrich, "Exact Byte-Level Probabilities from
Tokenized Language Models for FIM-Tasks and Model Ensembles" (ICLR 2025,
arXiv 2410.09303), Sec. 3 (valid encodings, cover sets).

All byte strings here are *internal*: the tokenizer's ``prefix_bytes`` (the
space a SentencePiece-style ``▁`` prepends) followed by the text, because that
is what the token byte view concatenates to.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tokensmith import BYTE_EOS, ByteViewError, LanguageModel, Tokenizer

from .bpe_spines import MergeSpines
from .pretokens import TokenClasses, split_candidates

#: characters the GPT-2 pre-tokenization regex never lets a match run across (Sec. 3.3 "div_enc")
_WHITESPACE = frozenset(" \t\n\r\x0b\x0c")


def _utf8_text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def check_byte_tokenizer(tokenizer: Tokenizer, component: str) -> None:
    """Raise :class:`ByteViewError` unless token bytes concatenate exactly to the text."""
    if not tokenizer.has_byte_view:
        raise ByteViewError(f"tokenizer '{tokenizer.name}' has no byte view", component=component,
                            hint="use a byte-level BPE or byte-fallback tokenizer")
    if not tokenizer.lossless:
        raise ByteViewError(
            f"tokenizer '{tokenizer.name}' is not lossless: its token bytes do not spell the text "
            "(e.g. WordPiece normalizes), so byte probabilities are undefined", component=component,
            hint="use a byte-level BPE or byte-fallback tokenizer")


class TokenBytes:
    """Per-(tokenizer, model) tensors: token lengths, first bytes, a padded byte matrix.

    Ids without text (special tokens, and model rows beyond the tokenizer's
    vocabulary) have length 0 and first byte :data:`BYTE_EOS`: generating one
    ends the text. The first-byte index turns "sum of p(v) over tokens starting
    with byte b" (Sec. 3.2, part (b)) into one ``scatter_add`` per state.
    """

    def __init__(self, tokenizer: Tokenizer, vocab_size: int) -> None:
        import torch

        table = list(tokenizer.byte_table) + [None] * (vocab_size - tokenizer.vocab_size)
        special = tokenizer.special_ids
        self.bytes: list[bytes | None] = [None if (i in special or not b) else b
                                          for i, b in enumerate(table[:vocab_size])]
        self.vocab_size = vocab_size
        width = max((len(b) for b in self.bytes if b), default=1)
        flat = bytearray()
        lens = [len(b) if b else 0 for b in self.bytes]
        for b in self.bytes:
            flat += (b or b"").ljust(width, b"\x00")
        grid = torch.frombuffer(flat, dtype=torch.uint8).view(vocab_size, width).to(torch.int16)
        lengths = torch.tensor(lens, dtype=torch.long)
        matrix = grid.masked_fill(torch.arange(width)[None, :] >= lengths[:, None], -1)
        self.matrix = matrix
        self.lengths = lengths
        self.first = torch.where(lengths > 0, matrix[:, 0].long(), torch.full_like(lengths, BYTE_EOS))
        self.text_ids = torch.nonzero(lengths > 0).flatten()
        self.by_first = [torch.nonzero(self.first == b).flatten() for b in range(256)]
        #: each token's bytes as text, None where they are not valid UTF-8 on their own
        self.texts: list[str | None] = [None if b is None else _utf8_text(b) for b in self.bytes]


def _utf8_prefix(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 or a prefix of it (may end mid-character)."""
    import codecs

    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _utf8_tail(data: bytes) -> bytes:
    """The bytes of an unfinished final character of ``data`` (b"" at a character boundary)."""
    for k in range(1, min(3, len(data)) + 1):
        lead = data[-k]
        if lead < 0x80:
            return b""
        if lead >= 0xC0:  # a lead byte: complete iff its sequence length is k
            need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
            return b"" if need == k else data[-k:]
    return b""


def utf8_prefix_ok(view: TokenBytes, data: bytes) -> Any:
    """Bool tensor over ids: is ``data + bytes(v)`` still a prefix of valid UTF-8? Ids without text
    end the text, so they are allowed only at a character boundary (the ``invalid_utf8="invalid"``
    option of the canonical meanings: a byte string that is not UTF-8 is not valid)."""
    import torch

    cache = view.__dict__.setdefault("_utf8_masks", {})
    tail = _utf8_tail(data)
    if tail not in cache:
        if "_utf8_alone" not in view.__dict__:
            view._utf8_alone = torch.tensor([b is None or _utf8_prefix(b) for b in view.bytes],
                                            dtype=torch.bool)
        if not tail:
            cache[tail] = view._utf8_alone
        else:
            mask = torch.zeros(view.vocab_size, dtype=torch.bool)
            for v in range(view.vocab_size):
                b = view.bytes[v]
                if b is not None and 0x80 <= b[0] < 0xC0 and _utf8_prefix(tail + b):
                    mask[v] = True
            cache[tail] = mask
    return cache[tail]


class ValidEncodings:
    """The valid-encoding rule of the paper, ``enc(dec(t)) == t``, on byte strings.

    ``enc`` is defined on text, so a token sequence whose bytes are not (yet)
    valid UTF-8 is not judged: it stays valid until its bytes become text again
    (byte-level BPE splits rare characters into byte tokens, and the prefix of
    such a character is not text). :meth:`next_mask` gives, for a sequence
    ``t``, the validity of ``t + [v]`` for every id ``v`` in one batched encode.

    For byte-level BPE with the GPT-2 pre-tokenization regex, no regex match
    runs from a non-whitespace character into whitespace, so everything before
    the last whitespace run is tokenized the same whatever bytes follow (the
    paper's ``div_enc``): :meth:`cut` finds that point and only the tail after
    it is re-encoded. Other tokenizers (no pre-tokenizer, SentencePiece-style)
    re-encode the whole string.
    """

    def __init__(self, tokenizer: Tokenizer, view: TokenBytes, cache_size: int = 512) -> None:
        self.tokenizer = tokenizer
        self.view = view
        self.prefix = tokenizer.prefix_bytes
        self.whitespace_cut = _gpt2_pretokenizer(tokenizer)
        self._masks: OrderedDict[tuple, Any] = OrderedDict()
        self._classes: TokenClasses | None = None
        self._spines: MergeSpines | None = None
        self._cache_size = cache_size

    def cut(self, data: bytes) -> int:
        """A byte offset before which the canonical tokenization of ``data`` is final."""
        if not self.whitespace_cut:
            return 0
        end = len(data)
        while end and _utf8_text(data[:end]) is None:
            end -= 1
        text = data[:end].decode("utf-8")
        i = len(text)
        while i and text[i - 1] not in _WHITESPACE:
            i -= 1
        if i == 0:
            return 0
        while i and text[i - 1] in _WHITESPACE:
            i -= 1
        return len(text[:i].encode("utf-8"))

    def encode(self, data: bytes) -> tuple[int, ...] | None:
        """The canonical ids of internal bytes ``data``; None when they are not text."""
        if not data.startswith(self.prefix):
            return None
        text = _utf8_text(data[len(self.prefix):])
        if text is None or (not text and self.prefix):
            # ``prefix_bytes`` alone is not text the tokenizer encodes ("" -> no ids), yet every
            # canonical encoding starts with it, so it is not judged either
            return None
        return tuple(self.tokenizer.encode(text).ids) if text else ()

    def next_mask(self, ids: tuple[int, ...], data: bytes) -> Any:
        """Bool tensor over the model's ids: is ``ids + (v,)`` valid? (ids without text: yes)."""
        import torch

        cut = self.cut(data)
        offsets = [0]
        for i in ids:
            offsets.append(offsets[-1] + len(self.view.bytes[i] or b""))
        if cut not in offsets:
            cut = 0
        split = offsets.index(cut)
        head, tail, tail_ids = data[:cut], data[cut:], ids[split:]
        key = (tail, tail_ids, head.startswith(self.prefix))
        if key in self._masks:
            self._masks.move_to_end(key)
            return self._masks[key]
        mask = torch.ones(self.view.vocab_size, dtype=torch.bool)
        # bytes that are not text are not judged; the head (before the cut) is judged once
        tail_text = _utf8_text(tail)
        if cut and self.encode(head) not in (None, tuple(ids[:split])):
            mask[self.view.text_ids] = False
        elif self.whitespace_cut and tail_text and self.encode(tail) == tail_ids:
            mask = self._gpt2_mask(tail, tail_text, tail_ids)
        else:
            mask = self._tail_mask(tail, tail_ids, bool(cut), self.view.text_ids.tolist())
        self._masks[key] = mask
        if len(self._masks) > self._cache_size:
            self._masks.popitem(last=False)
        return mask

    def _gpt2_mask(self, tail: bytes, tail_text: str, tail_ids: tuple[int, ...]) -> Any:
        """The mask from the pre-token case analysis of :mod:`.pretokens` (same result as
        :meth:`_tail_mask`, which it falls back on for the irregular few)."""
        import torch

        if self._classes is None:
            self._classes = TokenClasses(self.view, self._encode_ids)
        pieces = self.tokenizer.pretokenize(tail_text)
        start = pieces[-1].span[0]
        last = tail_text[start:]
        offsets = [0]
        for i in tail_ids:
            offsets.append(offsets[-1] + len(self.view.bytes[i]))
        k = offsets.index(len(tail_text[:start].encode("utf-8")))
        last_ids = list(tail_ids[k:])
        split_ok = len(last) > 1 and sum(self._encode_ids([last[:-1], last[-1]]), []) == last_ids
        after_quote = len(pieces) > 1 and tail_text[pieces[-2].span[0]:start] == "'"
        clean, attach, invalid, messy, join = split_candidates(self._classes, last, split_ok, after_quote)
        mask = torch.ones(self.view.vocab_size, dtype=torch.bool)
        mask[clean] = self._classes.alone[clean]
        mask[invalid] = False
        if bool(attach.any()):
            joined_ids = last_ids if join == last else self._encode_ids([join])[0]
            mask[attach] = self._attach_mask(join, joined_ids, torch.nonzero(attach).flatten())
        if bool(messy.any()):
            mask &= self._tail_mask(tail, tail_ids, True, torch.nonzero(messy).flatten().tolist())
        return mask

    def _attach_mask(self, join: str, joined_ids: list[int], ids: Any) -> Any:
        """BPE(join + bytes(v)) == joined_ids + [v] for each v (one pre-token): the merge-spine
        pair test, and the BPE model itself for tokens with an irregular merge history."""
        import numpy as np
        import torch

        if self._spines is None:
            self._spines = MergeSpines(self.tokenizer, self.view.vocab_size)
        spines = self._spines
        u = joined_ids[-1]
        if not spines.regular_right(u):
            return self._bpe_mask(join, joined_ids, ids.tolist())
        ok = self._classes.alone[ids] & ~torch.from_numpy(np.isin(ids.numpy(), spines.crossing(u)))
        odd = torch.from_numpy(spines.irregular_left[ids.numpy()])
        if bool(odd.any()):
            ok[odd] = self._bpe_mask(join, joined_ids, ids[odd].tolist())
        return ok

    def _bpe_mask(self, join: str, joined_ids: list[int], ids: list[int]) -> Any:
        import torch

        from tokensmith import byte_level_decoder

        chars = {b: c for c, b in byte_level_decoder().items()}
        prefix = "".join(chars[b] for b in join.encode("utf-8"))
        tok = self.tokenizer
        want = len(joined_ids) + 1
        out = []
        for v in ids:
            got = tok.model_tokenize(prefix + tok.id_to_token(v))  # the BPE model alone, one pre-token
            out.append(len(got) == want and got[-1] == v and got[:-1] == joined_ids)
        return torch.tensor(out, dtype=torch.bool)

    def _tail_mask(self, tail: bytes, tail_ids: tuple[int, ...], after_cut: bool, only: list[int]) -> Any:
        """Validity of ``tail_ids + [v]`` for ``v`` in ``only`` by re-encoding (others: True)."""
        import torch

        strip = 0 if after_cut else len(self.prefix)
        view = self.view
        texts, ids, bad = [], [], []
        tail_text = _utf8_text(tail[strip:]) if tail.startswith(self.prefix[:len(tail)]) else None
        for v in only:
            if tail_text is not None and view.texts[v] is not None and len(tail) >= strip:
                texts.append(tail_text + view.texts[v])  # text + text is text: skip the decode
                ids.append(v)
                continue
            data = tail + view.bytes[v]
            if not after_cut and not data.startswith(self.prefix):
                bad.append(v)
                continue
            text = _utf8_text(data[strip:])
            if text:
                texts.append(text)
                ids.append(v)
        want = list(tail_ids)
        for v, got in zip(ids, self._encode_ids(texts)):
            if len(got) != len(want) + 1 or got[-1] != v or got[:-1] != want:
                bad.append(v)
        mask = torch.ones(view.vocab_size, dtype=torch.bool)
        mask[torch.tensor(bad, dtype=torch.long)] = False
        return mask

    def _encode_ids(self, texts: list[str]) -> list[list[int]]:
        backend = getattr(self.tokenizer, "backend", None)
        if backend is not None:  # the HF backend directly: no per-text Encoding records
            return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        return [list(e.ids) for e in self.tokenizer.encode_batch(texts)]

def _gpt2_pretokenizer(tokenizer: Tokenizer) -> bool:
    """True for byte-level BPE whose only pre-tokenizer is ByteLevel with the GPT-2 regex."""
    if tokenizer.model_type != "byte-level-bpe":
        return False
    spec = tokenizer.describe()
    pre = spec.get("pre_tokenizer") or {}
    return pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not spec.get("normalizer")


def check_vocab(lm: LanguageModel, component: str) -> None:
    if lm.tokenizer.vocab_size > lm.vocab_size:
        raise ByteViewError(f"tokenizer has {lm.tokenizer.vocab_size} ids but the model only "
                            f"{lm.vocab_size} output rows", component=component,
                            hint="pair the model with its own tokenizer")
