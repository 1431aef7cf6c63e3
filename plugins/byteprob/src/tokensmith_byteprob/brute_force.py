"""Reference next-byte distributions by enumerating token sequences (exponential; for checks).

Independent of :mod:`tokensmith_byteprob.cover_set`: it walks every token
sequence whose bytes stay consistent with the target string, checks validity
by encoding the whole decoded text with the tokenizer (no pre-token cut), and
computes the masked normalizer ``Z`` over the whole vocabulary. Phan et al.,
arXiv 2410.09303, Lemma (Byte-Token Representation) and Eq. for ``P(b | x)``.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from tokensmith import BYTE_EOS, LanguageModel


class BruteForce:
    """``P(x is a prefix)`` and ``P(next byte | x)`` by enumeration, in float64.

    Meanings as in :mod:`.cover_set`: canonical-local renormalizes q over valid next tokens,
    canonical-global keeps the raw probabilities of valid ones (and the next-byte distribution
    is normalized over the next symbols), marginal keeps every token. ``invalid_utf8="invalid"``:
    a sequence whose bytes are no longer a prefix of valid UTF-8 (or that ends mid-character)
    is invalid."""

    def __init__(self, lm: LanguageModel, meaning: str = "canonical-local",
                 invalid_utf8: str = "unjudged") -> None:
        tok = lm.tokenizer
        self.lm = lm
        self.meaning = {"canonical": "canonical-local"}.get(meaning, meaning)
        self.invalid_utf8 = invalid_utf8
        self.prefix = tok.prefix_bytes
        table = list(tok.byte_table) + [None] * (lm.vocab_size - tok.vocab_size)
        self.bytes = [None if (i in tok.special_ids or not b) else b for i, b in enumerate(table)]
        self.text_ids = [i for i, b in enumerate(self.bytes) if b]
        entries = sorted((self.bytes[i], i) for i in self.text_ids)
        self._keys = [b for b, _ in entries]
        self._sorted_ids = [i for _, i in entries]
        self._next: dict[tuple[int, ...], list[float]] = {}

    def is_valid(self, ids: tuple[int, ...]) -> bool:
        """``enc(dec(t)) == t`` on the whole text; bytes that are not text are not judged."""
        data = b"".join(self.bytes[i] for i in ids)
        if not (data.startswith(self.prefix) or self.prefix.startswith(data)):
            return False
        if len(data) < len(self.prefix) or (self.prefix and data == self.prefix):
            return True
        try:
            text = data[len(self.prefix):].decode("utf-8")
        except UnicodeDecodeError:
            return self.invalid_utf8 == "unjudged" or _utf8_prefix(data)
        return tuple(self.lm.tokenizer.encode(text).ids) == ids

    def next_probs(self, ids: tuple[int, ...]) -> list[float]:
        """q(v | ids) for every id (masked and renormalized in the canonical meaning)."""
        if ids not in self._next:
            import torch

            row = self.lm.logprobs_batch([list(self.lm.start_ids) + list(ids)])[0][-1]
            probs = torch.exp(row.double()).tolist()
            if self.meaning != "marginal":
                valid = self.valid_extensions(ids)
                data = b"".join(self.bytes[i] for i in ids)
                ends_ok = self.invalid_utf8 == "unjudged" or _utf8_complete(data)
                probs = [p if (ends_ok if self.bytes[v] is None else valid[v]) else 0.0
                         for v, p in enumerate(probs)]
                if self.meaning == "canonical-local":  # a dead end (no valid next token) keeps no mass
                    z = sum(probs)
                    probs = [p / z for p in probs] if z > 0 else probs
            self._next[ids] = probs
        return self._next[ids]

    def valid_extensions(self, ids: tuple[int, ...]) -> dict[int, bool]:
        """``is_valid(ids + (v,))`` for every text id, with one batched encode of whole texts."""
        data = b"".join(self.bytes[i] for i in ids)
        out, texts, cands = {}, [], []
        for v in self.text_ids:
            grown = data + self.bytes[v]
            if len(grown) <= len(self.prefix) or not grown.startswith(self.prefix):
                out[v] = self.is_valid(ids + (v,))
                continue
            try:
                texts.append(grown[len(self.prefix):].decode("utf-8"))
                cands.append(v)
            except UnicodeDecodeError:
                out[v] = self.invalid_utf8 == "unjudged" or _utf8_prefix(grown)
        for v, got in zip(cands, self._encode_ids(texts)):
            out[v] = tuple(got) == ids + (v,)
        return out

    def _encode_ids(self, texts: list[str]) -> list[list[int]]:
        """The ids of each text: the HF backend's own batch encode where there is one (the ids the
        tokenizer's ``encode_batch`` returns, without building a checked Encoding record per text,
        which took more than half of a SmolLM2 enumeration), else ``encode_batch``."""
        backend = getattr(self.lm.tokenizer, "backend", None)
        if backend is not None:
            return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
        return [list(e.ids) for e in self.lm.tokenizer.encode_batch(texts)]

    def consistent(self, rest: bytes) -> list[int]:
        """Ids whose bytes are a prefix of ``rest`` or start with it."""
        lo = bisect.bisect_left(self._keys, rest)
        hi = lo
        while hi < len(self._keys) and self._keys[hi].startswith(rest):
            hi += 1
        out = self._sorted_ids[lo:hi]
        for k in range(1, len(rest)):
            lo = bisect.bisect_left(self._keys, rest[:k])
            while lo < len(self._keys) and self._keys[lo] == rest[:k]:
                out.append(self._sorted_ids[lo])
                lo += 1
        return out

    def prefix_mass(self, target: bytes, *, with_end: bool = True) -> tuple[float, float]:
        """(P(cover(target)), P(the text is exactly target)), target in internal bytes."""
        cover, ends = 0.0, 0.0
        stack: list[tuple[tuple[int, ...], bytes, float]] = [((), b"", 1.0)]
        while stack:
            ids, data, q = stack.pop()
            if len(data) >= len(target):
                cover += q
                if with_end and data == target:
                    probs = self.next_probs(ids)
                    ends += q * sum(p for v, p in enumerate(probs) if self.bytes[v] is None)
                continue
            probs = self.next_probs(ids)
            for v in self.consistent(target[len(data):]):
                if probs[v] > 0.0:
                    stack.append((ids + (v,), data + self.bytes[v], q * probs[v]))
        return cover, ends

    def next_byte_probs(self, text: bytes) -> list[float]:
        """257 probabilities: the byte after ``text`` (user bytes), then end of text, normalized
        over the next symbols (for canonical-local and marginal their sum is the cover mass of
        ``text`` already; canonical-global loses the raw mass of invalid next tokens)."""
        target = self.prefix + text
        _, ends = self.prefix_mass(target)
        out = [0.0] * (BYTE_EOS + 1)
        seen = {b for v in self.text_ids for b in self.bytes[v]}
        for b in seen:
            out[b] = self.prefix_mass(target + bytes([b]), with_end=False)[0]
        out[BYTE_EOS] = ends
        total = sum(out)
        return [p / total for p in out]

    def prefix_logprob(self, text: bytes) -> float:
        mass = self.prefix_mass(self.prefix + text)[0]
        return math.log(mass) if mass > 0 else -math.inf


def _utf8_prefix(data: bytes) -> bool:
    import codecs

    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _utf8_complete(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def max_abs_error(got: Any, want: list[float]) -> float:
    import torch

    return float((torch.exp(got.double()) - torch.tensor(want, dtype=torch.float64)).abs().max())
