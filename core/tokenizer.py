"""The Tokenizer interface: text <-> ids, with character offsets and the byte view.

The byte view (:meth:`Tokenizer.token_bytes`) is the exact bytes each token
contributes to the decoded text. Byte-level decoding, constraints, ensembles
across vocabularies and embedding transplant all stand on it, so a tokenizer's
byte view is checked against its own ``decode`` when it is loaded
(:func:`check_byte_view`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import cached_property

from .errors import ByteViewError, InputError, UnrepresentableTextError
from .records import Encoding, PreToken


def require_text(text: object, component: str) -> str:
    if not isinstance(text, str):
        raise InputError(f"expected text of type str, got {type(text).__name__}",
                         component=component, hint="decode bytes first (bytes.decode('utf-8'))")
    return text


class Tokenizer(ABC):
    """Text <-> token ids.

    Subclasses implement :meth:`encode`, :meth:`decode`, :meth:`token_bytes`
    and :attr:`vocab_size`; the rest has sensible defaults.

    ``prefix_bytes`` are bytes the tokenizer puts in front of every text it
    encodes (a SentencePiece ``▁`` becomes ``b" "``) and that ``decode``
    strips again. ``lossless`` says whether the token bytes of ``encode(text)``
    are exactly ``prefix_bytes + text.encode()`` (true for byte-level BPE and
    byte-fallback models without a lossy normalizer; false for WordPiece).
    """

    name: str = "tokenizer"
    prefix_bytes: bytes = b""
    lossless: bool = True

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode(self, text: str, *, add_special_tokens: bool = False) -> Encoding:
        """Ids and character offsets. Raises :class:`UnrepresentableTextError` rather
        than dropping text the vocabulary cannot represent."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str: ...

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes | None:
        """The exact bytes token ``token_id`` contributes; ``None`` for tokens that
        contribute no text (special/control tokens)."""

    def encode_batch(self, texts: Sequence[str], *, add_special_tokens: bool = False) -> list[Encoding]:
        return [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]

    @property
    def special_tokens(self) -> dict[int, str]:
        """Special/control tokens by id, with the literal string that ``encode`` maps
        to each (as in HF tokenizers, e.g. chat-template markers)."""
        return {}

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset(self.special_tokens)

    bos_id: int | None = None
    eos_id: int | None = None
    pad_id: int | None = None
    unk_id: int | None = None

    @property
    def has_byte_view(self) -> bool:
        return True

    def pretokenize(self, text: str) -> list[PreToken]:
        """Pre-tokenization boundaries: tokens never cross them. Default: one unit."""
        require_text(text, self.name)
        return [PreToken(text, (0, len(text)))] if text else []

    @cached_property
    def byte_table(self) -> tuple[bytes | None, ...]:
        """``token_bytes`` for every id, computed once."""
        return tuple(self.token_bytes(i) for i in range(self.vocab_size))

    @cached_property
    def unrepresentable_bytes(self) -> frozenset[int]:
        """Byte values that no single token represents on its own.

        A text containing one of them cannot be encoded losslessly (SmolLM2's
        byte-level BPE lacks 21 of the 256 byte symbols)."""
        single = {b[0] for b in self.byte_table if b is not None and len(b) == 1}
        return frozenset(set(range(256)) - single)

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Concatenated byte view of ``ids`` (special tokens contribute nothing)."""
        table = self.byte_table
        out = b"".join(table[i] or b"" for i in ids)
        if self.prefix_bytes and out.startswith(self.prefix_bytes):
            out = out[len(self.prefix_bytes):]
        return out

    def check_representable(self, text: str, ids: Sequence[int]) -> None:
        """Raise :class:`UnrepresentableTextError` when ``ids`` lost part of ``text``."""
        if not self.lossless:
            return
        special = self.special_tokens
        got = b"".join(special[i].encode("utf-8") if i in special else self.byte_table[i] or b""
                       for i in ids)
        if self.prefix_bytes and got.startswith(self.prefix_bytes):
            got = got[len(self.prefix_bytes):]
        want = text.encode("utf-8")
        if got == want:
            return
        missing = bytes(sorted({b for b in want if b in self.unrepresentable_bytes}))
        raise UnrepresentableTextError(
            f"text cannot be encoded without loss: bytes {missing.hex(' ') or '(none)'} have no "
            f"token (encoded {len(got)} of {len(want)} bytes)",
            missing=missing, component=f"tokenizer '{self.name}'",
            hint="remove or replace those characters; tokenizer.unrepresentable_bytes lists all")


def check_byte_view(tokenizer: Tokenizer, samples: Iterable[str] = (),
                    anchor: int | None = None) -> None:
    """Verify the byte view against ``decode``; raise :class:`ByteViewError` listing mismatches.

    Every single token is checked (its bytes, decoded with replacement, must
    equal ``decode([id])``; with ``anchor``, ``decode([anchor, id])``, for
    vocabularies such as WordPiece whose lone continuation tokens decode
    differently), then each sample text must round-trip.
    """
    bad: list[str] = []
    table = tokenizer.byte_table
    ids = [i for i, b in enumerate(table) if b is not None]
    head = [] if anchor is None else [anchor]
    for i in ids:
        want = tokenizer.decode(head + [i])
        got = b"".join(table[j] for j in head + [i])
        if tokenizer.prefix_bytes and got.startswith(tokenizer.prefix_bytes):
            got = got[len(tokenizer.prefix_bytes):]
        if got.decode("utf-8", errors="replace") != want:
            bad.append(f"id {i}: byte view {table[i]!r} but decode gives {want!r}")
            if len(bad) >= 5:
                break
    for text in samples:
        enc = tokenizer.encode(text)
        decoded = tokenizer.decode(enc.ids)
        got = tokenizer.decode_bytes(enc.ids).decode("utf-8", errors="replace")
        if got != decoded:
            bad.append(f"text {text!r}: byte view gives {got!r} but decode gives {decoded!r}")
    if bad:
        raise ByteViewError(
            "byte view disagrees with decode:\n    " + "\n    ".join(bad),
            component=f"tokenizer '{tokenizer.name}'",
            hint="the tokenizer's byte mapping is not understood; report it with the tokenizer file")
