"""The Tokenizer interface: text <-> ids, with character offsets and the byte view.

The byte view (:meth:`Tokenizer.token_bytes`) is the exact bytes each token
contributes to the decoded text. Byte-level decoding, constraints, ensembles
across vocabularies and embedding transplant all stand on it, so a tokenizer's
byte view is checked against its own ``decode`` when it is loaded
(:func:`check_byte_view`).

Text is only text: a special-token string inside it (``"<|im_end|>"``, ``"[SEP]"``)
is encoded like any other characters, so user text cannot inject control tokens.
Special tokens enter through explicit ids or ``encode(..., allow_special=True)``.

Techniques that work on the tokenizer itself (merging tokens, transplanting embeddings,
training new vocabularies) read it through the public surface: :attr:`Tokenizer.model_type`,
:meth:`~Tokenizer.vocab`, :meth:`~Tokenizer.merges`, :meth:`~Tokenizer.model_tokenize`,
:meth:`~Tokenizer.normalize`, :meth:`~Tokenizer.pretokenize`, :meth:`~Tokenizer.describe`,
and save or identify it with :meth:`~Tokenizer.to_json`, :meth:`~Tokenizer.save` and
:meth:`~Tokenizer.fingerprint` (docs/tokenizers.md). A tokenizer that cannot provide one
raises :class:`IncompatibleComponentsError` saying so.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from functools import cached_property
from pathlib import Path
from typing import Any

from .errors import ByteViewError, IncompatibleComponentsError, InputError, UnrepresentableTextError
from .records import Encoding, PreToken


def require_text(text: object, component: str) -> str:
    """``text`` if it is a ``str`` with a UTF-8 form; :class:`InputError` otherwise.

    A lone surrogate (``"\\udce9"``, what ``surrogateescape`` makes of the non-UTF-8 byte
    0xE9 on a command line) is not Unicode text: no tokenizer, byte view or file can hold it.
    """
    if not isinstance(text, str):
        raise InputError(f"expected text of type str, got {type(text).__name__}",
                         component=component, hint="decode bytes first (bytes.decode('utf-8'))")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            code = ord(text[err.start])
            escaped = (f" (surrogateescape's stand-in for the non-UTF-8 byte 0x{code - 0xDC00:02X})"
                       if 0xDC80 <= code <= 0xDCFF else "")
            raise InputError(f"text contains a lone surrogate U+{code:04X} at index {err.start}{escaped}; "
                             "it is not Unicode text and has no UTF-8 form", component=component,
                             hint="read the input as UTF-8 (or decode it with errors='replace')") from None
    return text


def require_texts(texts: object, component: str) -> list[str]:
    """A batch of texts as a list; a lone ``str`` (a batch of its characters) is refused."""
    if isinstance(texts, (str, bytes, bytearray)) or not isinstance(texts, Iterable) \
            or isinstance(texts, (Set, Mapping)):
        raise InputError(f"expected a list of texts, got {type(texts).__name__}", component=component,
                         hint="wrap a single text in a list: encode_batch([text]), or call encode(text)")
    return [require_text(t, component) for t in texts]


def require_flag(value: object, name: str, component: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r}", component=component)
    return value


def _id_kind(value: object) -> str | None:
    """Why ``value`` is not a token id (``None`` when it is an integer, of any integer type)."""
    if isinstance(value, bool) or "bool" in str(getattr(value, "dtype", "")):
        return "a bool"
    try:
        operator.index(value)
    except TypeError:
        return f"of type {type(value).__name__}"
    return None


def require_ids(ids: object, size: int, component: str) -> list[int]:
    """``ids`` as a list of Python ints in ``[0, size)``; :class:`InputError` for anything else.

    Integers of any integer type (numpy, 0-d torch tensors) are accepted; bools, floats
    (never truncated), strings and nested sequences are not, nor is a lone string, a set
    or a mapping in place of the sequence.
    """
    if isinstance(ids, (str, bytes, bytearray, memoryview)) or isinstance(ids, (Set, Mapping)) \
            or not isinstance(ids, Iterable) and not hasattr(ids, "tolist"):
        raise InputError(f"expected a sequence of token ids, got {type(ids).__name__}",
                         component=component, hint="pass a list of ints (encode text with .encode(text).ids)")
    if hasattr(ids, "tolist") and not isinstance(ids, (list, tuple)):
        ids = ids.tolist()  # a tensor or array: its elements as Python scalars
        if not isinstance(ids, list):
            raise InputError("expected a sequence of token ids, got a scalar", component=component)
    out: list[int] = []
    bad: list[tuple[int, int]] = []
    for pos, i in enumerate(ids):
        if type(i) is not int:
            kind = _id_kind(i)
            if kind is not None:
                raise InputError(f"token id {i!r} at position {pos} is {kind}, not an int",
                                 component=component, hint="token ids are ints in [0, vocab_size)")
            i = operator.index(i)
        if not 0 <= i < size:
            bad.append((pos, i))
        out.append(i)
    if bad:
        shown = ", ".join(f"{i} (position {pos})" for pos, i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        verb = "are" if len(bad) > 1 else "is"
        raise InputError(f"token id{'s' if len(bad) > 1 else ''} {shown}{more} {verb} outside the "
                         f"vocabulary [0, {size})", component=component)
    return out


class TrustedText(str):
    """A prompt from a trusted source (a chat template, your own code) whose special-token
    strings are control tokens: decoders encode it with ``allow_special=True``. Plain
    ``str`` prompts never are — user text cannot inject ``<|im_start|>system``::

        pipeline.generate(TrustedText("<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n"))
    """

    __slots__ = ()


def encode_prompt(tokenizer: Tokenizer, prompt: str) -> Encoding:
    """``tokenizer.encode(prompt)``, parsing special-token strings only in a :class:`TrustedText`."""
    if isinstance(prompt, TrustedText):
        return tokenizer.encode(str(prompt), allow_special=True)
    return tokenizer.encode(prompt)


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
    #: what maps a pre-token to tokens: ``"byte-level-bpe"``, ``"bpe"``, ``"unigram"``,
    #: ``"wordpiece"``, ``"wordlevel"``, or ``"custom"`` for anything else
    model_type: str = "custom"

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @abstractmethod
    def encode(self, text: str, *, add_special_tokens: bool = False,
               allow_special: bool = False) -> Encoding:
        """Ids and character offsets. Raises :class:`UnrepresentableTextError` rather
        than dropping text the vocabulary cannot represent.

        ``text`` is plain text: special-token strings in it are encoded as the characters
        they are. ``allow_special=True`` (for trusted text such as a chat template's
        output) maps them to their special ids instead; ``add_special_tokens`` adds what
        the tokenizer's post-processor adds (BOS, ``[CLS]``...). Implementations written
        before ``allow_special`` existed (without specials of their own) need not take it."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` (special tokens contribute nothing); ids are checked with
        :func:`require_ids`."""

    @abstractmethod
    def token_bytes(self, token_id: int) -> bytes | None:
        """The exact bytes token ``token_id`` contributes; ``None`` for tokens that
        contribute no text (special/control tokens)."""

    def encode_batch(self, texts: Sequence[str], *, add_special_tokens: bool = False,
                     allow_special: bool = False) -> list[Encoding]:
        component = f"tokenizer '{self.name}'"
        texts = require_texts(texts, component)
        # passed on only when asked for, so an ``encode`` without the argument keeps working
        extra = {"allow_special": True} if require_flag(allow_special, "allow_special", component) else {}
        return [self.encode(t, add_special_tokens=add_special_tokens, **extra) for t in texts]

    @property
    def special_tokens(self) -> dict[int, str]:
        """Special/control tokens by id, with the literal string that
        ``encode(..., allow_special=True)`` maps to each (e.g. chat-template markers);
        plain ``encode`` treats those strings as text."""
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
        """Pre-tokenization boundaries: tokens never cross them. Default: one unit.

        Each :class:`PreToken` has the characters of ``text`` it covers (``text[start:end]``)
        and their span in ``text`` (the coordinates of :attr:`Encoding.offsets`), so a
        token belongs to the pre-token whose span holds its offsets. Characters no
        pre-token covers (whitespace a WordPiece pre-tokenizer drops) belong to none."""
        require_text(text, f"tokenizer '{self.name}'")
        return [PreToken(text, (0, len(text)))] if text else []

    def normalize(self, text: str) -> str:
        """``text`` after the tokenizer's normalizer (NFKC, lower-casing...): what the
        pre-tokenizer and the model see. Default: unchanged."""
        return require_text(text, f"tokenizer '{self.name}'")

    def _lacks(self, what: str, hint: str) -> IncompatibleComponentsError:
        return IncompatibleComponentsError(
            f"tokenizer '{self.name}' ({type(self).__name__}, model type {self.model_type!r}) has no {what}",
            component=f"tokenizer '{self.name}'", hint=hint)

    def vocab(self, *, added_tokens: bool = True) -> dict[str, int]:
        """Token string -> id for every token, added and special tokens included (only the
        model's own with ``added_tokens=False``: what its merges and pieces can produce). The
        strings are spelled in the model's own alphabet (``"Ġthe"`` in byte-level BPE,
        ``"▁the"`` in SentencePiece-style models, ``"##ing"`` in WordPiece); the bytes a
        token contributes to text are :meth:`token_bytes`."""
        raise self._lacks("string vocabulary", "use token_bytes(id) / byte_table for what each token spells")

    def token_to_id(self, token: str) -> int | None:
        """The id of the vocabulary string ``token`` (see :meth:`vocab`), ``None`` if absent."""
        return self.vocab().get(token)

    def id_to_token(self, token_id: int) -> str | None:
        """The vocabulary string of ``token_id`` (see :meth:`vocab`)."""
        (token_id,) = require_ids([token_id], self.vocab_size, f"tokenizer '{self.name}'")
        return {i: t for t, i in self.vocab().items()}.get(token_id)

    def merges(self) -> tuple[tuple[str, str], ...]:
        """The BPE merges in priority order (index = rank; lower merges first), as pairs of
        vocabulary strings whose concatenation is the merged token."""
        raise self._lacks("BPE merges", "techniques that need merges work with BPE tokenizers "
                                        "(model_type 'bpe' or 'byte-level-bpe')")

    def model_tokenize(self, piece: str) -> list[int]:
        """The ids the model alone gives one pre-token spelled in the vocabulary's alphabet
        (as :meth:`vocab` spells tokens): no normalizer, no pre-tokenizer, no added tokens."""
        raise self._lacks("separate model stage", "encode text with encode() instead")

    def describe(self) -> dict[str, Any]:
        """The tokenizer's pipeline in ``tokenizer.json`` terms: ``normalizer``,
        ``pre_tokenizer``, ``post_processor`` and ``decoder`` (JSON objects with a ``"type"``,
        or ``None``) and ``model`` (its settings: ``type``, ``dropout``, ``byte_fallback``...,
        without vocabulary and merges). Default: a model with nothing around it."""
        return {"normalizer": None, "pre_tokenizer": None, "model": {"type": self.model_type},
                "post_processor": None, "decoder": None}

    def to_json(self) -> str:
        """The tokenizer as a Hugging Face ``tokenizer.json`` document."""
        raise self._lacks("tokenizer.json form", "save the tokenizer's own files; HFTokenizer and the "
                                                 "trained tokenizers have one")

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` atomically to ``path`` (a ``.json`` file name; any other path is
        a directory that gets a ``tokenizer.json``) and return the file written."""
        from tokensmith.adapters.artifacts import atomic_write_text  # light: no torch

        target = tokenizer_file(path)
        atomic_write_text(target, self.to_json())
        return target

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical :meth:`to_json` (keys sorted, no whitespace): the
        same for the same tokenizer however it was written, loaded or trained, for
        checkpoints and artifacts to record."""
        return canonical_fingerprint(self.to_json())

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
        out = b"".join(table[i] or b"" for i in require_ids(ids, len(table), f"tokenizer '{self.name}'"))
        if self.prefix_bytes and out.startswith(self.prefix_bytes):
            out = out[len(self.prefix_bytes):]
        return out

    def check_representable(self, text: str, ids: Sequence[int]) -> None:
        """Raise :class:`UnrepresentableTextError` when ``ids`` lost part of ``text``."""
        if not self.lossless:
            return
        special, table, prefix = self.special_tokens, self.byte_table, self.prefix_bytes
        # the prefix is put in front of each piece of text, and with allow_special=True the
        # pieces between special tokens are encoded one by one
        pieces: list[bytes] = []
        run: list[bytes] = []
        for i in [*ids, None]:
            if i is None or i in special:
                piece = b"".join(run)
                pieces.append(piece[len(prefix):] if prefix and piece.startswith(prefix) else piece)
                pieces.append(b"" if i is None else special[i].encode("utf-8"))
                run = []
            else:
                run.append(table[i] or b"")
        got = b"".join(pieces)
        want = text.encode("utf-8")
        if got == want:
            return
        missing = bytes(sorted({b for b in want if b in self.unrepresentable_bytes}))
        raise UnrepresentableTextError(
            f"text cannot be encoded without loss: bytes {missing.hex(' ') or '(none)'} have no "
            f"token (encoded {len(got)} of {len(want)} bytes)",
            missing=missing, component=f"tokenizer '{self.name}'",
            hint="remove or replace those characters; tokenizer.unrepresentable_bytes lists all")


def tokenizer_file(path: str | Path) -> Path:
    """``path`` if it names a ``.json`` file, else ``path / "tokenizer.json"`` (a directory)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError(f"a tokenizer is saved to a path (a .json file or a folder), not "
                         f"{type(path).__name__} {path!r:.40}", component="tokenizer",
                         hint="e.g. tokenizer.save('my-tokenizer')")
    path = Path(path)
    return path if path.suffix == ".json" and not path.is_dir() else path / "tokenizer.json"


def canonical_fingerprint(document: str) -> str:
    """sha256 of a JSON document in canonical form (sorted keys, compact separators, UTF-8)."""
    canonical = json.dumps(json.loads(document), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_byte_view(tokenizer: Tokenizer, samples: Iterable[str] = (),
                    anchor: int | None = None, decode: Callable[[list[int]], str] | None = None) -> None:
    """Verify the byte view against ``decode``; raise :class:`ByteViewError` listing mismatches.

    Every single token is checked (its bytes, decoded with replacement, must
    equal ``decode([id])``; with ``anchor``, ``decode([anchor, id])``, for
    vocabularies such as WordPiece whose lone continuation tokens decode
    differently), then each sample text must round-trip. ``decode`` is the reference
    to check against (default ``tokenizer.decode``; an adapter whose ``decode`` is
    defined through the byte view passes its backend's own decoder).
    """
    decode = decode or tokenizer.decode
    bad: list[str] = []
    table = tokenizer.byte_table
    ids = [i for i, b in enumerate(table) if b is not None]
    head = [] if anchor is None else [anchor]
    for i in ids:
        want = decode(head + [i])
        got = b"".join(table[j] for j in head + [i])
        if tokenizer.prefix_bytes and got.startswith(tokenizer.prefix_bytes):
            got = got[len(tokenizer.prefix_bytes):]
        if got.decode("utf-8", errors="replace") != want:
            bad.append(f"id {i}: byte view {table[i]!r} but decode gives {want!r}")
            if len(bad) >= 5:
                break
    for text in samples:
        enc = tokenizer.encode(text)
        decoded = decode(list(enc.ids))
        got = tokenizer.decode_bytes(enc.ids).decode("utf-8", errors="replace")
        if got != decoded:
            bad.append(f"text {text!r}: byte view gives {got!r} but decode gives {decoded!r}")
    if bad:
        raise ByteViewError(
            "byte view disagrees with decode:\n    " + "\n    ".join(bad),
            component=f"tokenizer '{tokenizer.name}'",
            hint="the tokenizer's byte mapping is not understood; report it with the tokenizer file")
