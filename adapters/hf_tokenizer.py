"""Tokenizer adapter over Hugging Face ``tokenizers`` / ``transformers`` tokenizers.

The byte view is derived from the tokenizer's own definition:

* byte-level BPE (GPT-2 style): each token character maps back to one byte
  through the GPT-2 byte-to-unicode table;
* byte fallback (SentencePiece style): ``<0xAB>`` tokens are single bytes and
  ``▁`` is a space, with the prefix space the Metaspace pre-tokenizer adds;
* WordPiece: ``##`` marks a continuation, other tokens start a new word
  (``b" " + word``); WordPiece normalizes text, so it is not lossless.

The view is then checked against ``decode`` for every token at load time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from tokensmith.core.errors import ByteViewError, UnrepresentableTextError
from tokensmith.core.records import Encoding, PreToken
from tokensmith.core.tokenizer import Tokenizer, check_byte_view, require_text

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@cache
def byte_level_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode``: printable bytes map to themselves,
    the rest to code points from 256 upward, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def _types(node: Any) -> list[dict]:
    """Flatten a (possibly Sequence) pipeline component of tokenizer.json."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        key = next(k for k in ("pretokenizers", "decoders", "normalizers", "processors") if k in node)
        return [x for child in node[key] for x in _types(child)]
    return [node]


class HFTokenizer(Tokenizer):
    """A :class:`Tokenizer` backed by a ``tokenizers.Tokenizer``.

    ``strict`` (default) raises :class:`UnrepresentableTextError` when encoding
    would drop text (byte-level BPE without some byte symbols silently drops
    them) or produce the unknown token.
    """

    def __init__(self, backend: Any, *, name: str = "hf", bos_token: str | None = None,
                 eos_token: str | None = None, pad_token: str | None = None,
                 unk_token: str | None = None, strict: bool = True, verify: bool = True) -> None:
        import tokenizers

        backend = tokenizers.Tokenizer.from_str(backend.to_str())  # own copy
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        self.name = name
        self.strict = strict
        spec = json.loads(backend.to_str())
        self._spec = spec
        model = spec["model"]
        self._model_type = model["type"]
        added = {t["id"]: t for t in spec.get("added_tokens", [])}
        self._special_tokens = {i: t["content"] for i, t in added.items() if t.get("special")}
        self._special = frozenset(self._special_tokens)
        self._added_plain = {i: t["content"] for i, t in added.items() if not t.get("special")}
        self._vocab_size = backend.get_vocab_size(with_added_tokens=True)

        def tid(tok: str | None) -> int | None:
            return None if tok is None else backend.token_to_id(tok)

        self.bos_id, self.eos_id, self.pad_id = tid(bos_token), tid(eos_token), tid(pad_token)
        self.unk_id = tid(unk_token or model.get("unk_token"))
        pre = _types(spec.get("pre_tokenizer"))
        dec = _types(spec.get("decoder"))
        norm = _types(spec.get("normalizer"))
        kinds = {n["type"] for n in pre + dec}
        if "ByteLevel" in kinds:
            self.family = "byte_level"
        elif model.get("byte_fallback") or "ByteFallback" in kinds:
            self.family = "byte_fallback"
        elif self._model_type == "WordPiece":
            self.family = "wordpiece"
        elif "Metaspace" in kinds:
            self.family = "metaspace"
        else:
            raise ByteViewError(
                f"cannot derive a byte view for a {self._model_type} tokenizer with "
                f"pre-tokenizer/decoder {sorted(kinds) or 'none'}", component=f"tokenizer '{name}'",
                hint="supported: byte-level BPE, byte-fallback/Metaspace, WordPiece")
        metaspace = [n for n in pre + dec if n["type"] == "Metaspace"]
        prepend = any(n.get("prepend_scheme", "always") in ("always", "first")
                      or n.get("add_prefix_space") for n in metaspace)
        prepend |= any(n["type"] == "Prepend" for n in norm)
        self.prefix_bytes = b" " if (self.family == "wordpiece" or (
            self.family in ("byte_fallback", "metaspace") and prepend)) else b""
        lossy_norm = [n["type"] for n in norm if n["type"] not in ("Prepend", "Replace")]
        # A Metaspace pre-tokenizer does not prepend "▁" to text that already starts with a
        # space, so decode(encode(" x")) == "x": such tokenizers are not lossless.
        lossy_pre = any(n["type"] == "Metaspace" for n in pre) and prepend
        self.lossless = self.family != "wordpiece" and not lossy_norm and not lossy_pre
        self._continuation = model.get("continuing_subword_prefix") or "##"
        if self.family == "wordpiece":
            # The WordPiece decoder's "cleanup" rewrites " ," to "," and " do not" to " don't":
            # decode would then disagree with the tokens. Our copy decodes without it.
            from tokenizers import decoders

            backend.decoder = decoders.WordPiece(prefix=self._continuation, cleanup=False)
        if verify:
            anchor = backend.token_to_id("a") if self.family == "wordpiece" else None
            check_byte_view(self, samples=("Hello world", " x = 1\n\tfoo()", "naïve café"), anchor=anchor)

    # -- construction -----------------------------------------------------
    @classmethod
    def from_transformers(cls, tok: Any, **kw: Any) -> HFTokenizer:
        """Wrap a transformers fast tokenizer (``TokenizersBackend``/``PreTrainedTokenizerFast``)."""
        backend = getattr(tok, "backend_tokenizer", None) or getattr(tok, "_tokenizer", None)
        if backend is None:
            raise ByteViewError(f"{type(tok).__name__} has no fast (tokenizers) backend",
                                component="tokenizer adapter", hint="load it with use_fast=True")
        for attr in ("bos_token", "eos_token", "pad_token", "unk_token"):
            kw.setdefault(attr, getattr(tok, attr, None))
        return cls(backend, **kw)

    @classmethod
    def from_file(cls, path: str | Path, **kw: Any) -> HFTokenizer:
        import tokenizers

        meta_path = Path(path).with_name("tokenizer_meta.json")
        if meta_path.exists():
            for key, value in json.loads(meta_path.read_text()).items():
                kw.setdefault(key, value)
        return cls(tokenizers.Tokenizer.from_file(str(path)), **kw)

    def save(self, path: str | Path) -> None:
        from tokensmith.adapters.artifacts import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self._backend.to_str())
        meta = {"bos_token": self._tok(self.bos_id), "eos_token": self._tok(self.eos_id),
                "pad_token": self._tok(self.pad_id), "unk_token": self._tok(self.unk_id)}
        atomic_write_text(path.with_name("tokenizer_meta.json"), json.dumps(meta))

    def _tok(self, i: int | None) -> str | None:
        return None if i is None else self._backend.id_to_token(i)

    @property
    def backend(self) -> Any:
        return self._backend

    # -- interface --------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def special_tokens(self) -> dict[int, str]:
        return dict(self._special_tokens)

    @property
    def special_ids(self) -> frozenset[int]:
        return self._special

    def token_bytes(self, token_id: int) -> bytes | None:
        if token_id in self._special:
            return None
        if token_id in self._added_plain:
            return self._added_plain[token_id].encode("utf-8")
        token = self._backend.id_to_token(token_id)
        if token is None:
            return None
        if self.family == "byte_level":
            table = byte_level_decoder()
            try:
                return bytes(table[c] for c in token)
            except KeyError:
                raise ByteViewError(f"token {token_id} {token!r} has characters outside the "
                                    "byte-level alphabet", component=f"tokenizer '{self.name}'") from None
        if self.family == "wordpiece":
            if token.startswith(self._continuation):
                return token[len(self._continuation):].encode("utf-8")
            return b" " + token.encode("utf-8")
        m = _BYTE_TOKEN.match(token)
        if m and self.family == "byte_fallback":
            return bytes([int(m.group(1), 16)])
        return token.replace("▁", " ").encode("utf-8")

    def encode(self, text: str, *, add_special_tokens: bool = False) -> Encoding:
        require_text(text, f"tokenizer '{self.name}'")
        enc = self._backend.encode(text, add_special_tokens=add_special_tokens)
        self._check(text, enc)
        return Encoding(enc.ids, enc.offsets)

    def encode_batch(self, texts: Sequence[str], *, add_special_tokens: bool = False) -> list[Encoding]:
        for t in texts:
            require_text(t, f"tokenizer '{self.name}'")
        encs = self._backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        for t, e in zip(texts, encs):
            self._check(t, e)
        return [Encoding(e.ids, e.offsets) for e in encs]

    def _check(self, text: str, enc: Any) -> None:
        if not self.strict:
            return
        # special_tokens_mask marks what the post-processor added (BOS/CLS...), not text
        ids = [i for i, added in zip(enc.ids, enc.special_tokens_mask) if not added] \
            if any(enc.special_tokens_mask) else enc.ids
        if self.lossless:
            self.check_representable(text, ids)
        elif self.unk_id is not None and self.unk_id in ids:
            raise UnrepresentableTextError(
                "text contains characters the vocabulary maps to the unknown token "
                f"{self._tok(self.unk_id)!r}",
                component=f"tokenizer '{self.name}'", hint="pass strict=False to accept unknown tokens")

    def decode(self, ids: Sequence[int]) -> str:
        return self._backend.decode(list(ids), skip_special_tokens=True)

    def pretokenize(self, text: str) -> list[PreToken]:
        require_text(text, f"tokenizer '{self.name}'")
        normalized = self._backend.normalizer.normalize_str(text) if self._backend.normalizer else text
        pre = self._backend.pre_tokenizer
        if pre is None:
            return [PreToken(normalized, (0, len(normalized)))] if normalized else []
        return [PreToken(normalized[s:e], (s, e)) for _, (s, e) in pre.pre_tokenize_str(normalized)]
