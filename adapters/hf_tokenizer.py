"""Tokenizer adapter over Hugging Face ``tokenizers`` / ``transformers`` tokenizers.

The byte view is derived from the tokenizer's own definition:

* byte-level BPE (GPT-2 style): each token character maps back to one byte
  through the GPT-2 byte-to-unicode table;
* byte fallback (SentencePiece style): ``<0xAB>`` tokens are single bytes and
  ``▁`` is a space, with the prefix space the Metaspace pre-tokenizer adds;
* WordPiece: ``##`` marks a continuation, other tokens start a new word
  (``b" " + word``); WordPiece normalizes text, so it is not lossless.

The view is then checked against ``decode`` for every token at load time.

The public surface of :class:`~tokensmith.core.tokenizer.Tokenizer` (model type,
vocabulary, merges, the model stage alone, normalizer, pre-tokenizer boundaries, the
pipeline description, ``to_json``/``save``/``fingerprint``) is read from the
``tokenizer.json`` document as loaded, so techniques never reach into the backend.

Text is encoded as text: the backend copy has ``encode_special_tokens`` set, so a
special-token string in user text (``"<|im_end|>"``, ``"[SEP]"``) is split by the
model like any other characters; ``encode(..., allow_special=True)`` parses them.
``tokenizer_meta.json`` may name the bos/eos/pad/unk tokens and nothing else.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from tokensmith.core.errors import (
    ByteViewError,
    IncompatibleComponentsError,
    InputError,
    ModelLoadError,
    UnrepresentableTextError,
    UntrustedModelError,
)
from tokensmith.core.records import Encoding, PreToken
from tokensmith.core.tokenizer import (
    Tokenizer,
    check_byte_view,
    require_flag,
    require_ids,
    require_text,
    require_texts,
    tokenizer_file,
)

_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
#: what ``tokenizer_meta.json`` may say: which tokens play which part, never how to check
META_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")
#: constructor arguments that switch checks off: a metadata file setting one is untrusted
CHECK_KEYS = ("strict", "verify")
#: texts every tokenizer's byte view is checked on at load (those its vocabulary can represent)
VERIFY_SAMPLES = ("Hello world", " x = 1\n\tfoo()", "naïve café")
#: tokenizer.json model types -> Tokenizer.model_type (BPE under a ByteLevel stage: "byte-level-bpe")
MODEL_TYPES = {"BPE": "bpe", "Unigram": "unigram", "WordPiece": "wordpiece", "WordLevel": "wordlevel"}
#: the pipeline stages of tokenizer.json around the model
STAGES = ("normalizer", "pre_tokenizer", "post_processor", "decoder")


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


def _read_meta(path: Path) -> dict[str, str | None]:
    """The token names of a ``tokenizer_meta.json``; typed errors for anything else in it."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ModelLoadError(f"cannot read {path}: {err}", component="tokenizer",
                             hint="delete the file or make it a JSON object of token names") from err
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{path} is not a JSON object", component="tokenizer",
                             hint=f"it may only name tokens: {', '.join(META_KEYS)}")
    controls = sorted(k for k in meta if k in CHECK_KEYS)
    if controls:
        raise UntrustedModelError(
            f"{path} sets {', '.join(controls)}: a model directory may name its tokens, never "
            "switch tokensmith's checks off", component="tokenizer",
            hint="remove those keys; to relax a check, pass strict=/verify= in your own code")
    unknown = sorted(k for k in meta if k not in META_KEYS)
    if unknown:
        raise ModelLoadError(f"{path} has unknown keys {', '.join(map(repr, unknown))}",
                             component="tokenizer", hint=f"it may only name tokens: {', '.join(META_KEYS)}")
    bad = sorted(k for k, v in meta.items() if v is not None and not isinstance(v, str))
    if bad:
        raise ModelLoadError(f"{path}: {', '.join(bad)} must be token strings or null",
                             component="tokenizer")
    return meta


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
    them; WordPiece's normalizer deletes control characters) or produce the
    unknown token. Whatever ``strict`` says, plain text never encodes to a special
    id other than the unknown token. ``samples`` are texts to check the byte view on at
    load besides :data:`VERIFY_SAMPLES` (a trainer passes some of its corpus).
    """

    def __init__(self, backend: Any, *, name: str = "hf", bos_token: str | None = None,
                 eos_token: str | None = None, pad_token: str | None = None,
                 unk_token: str | None = None, strict: bool = True, verify: bool = True,
                 samples: Iterable[str] = ()) -> None:
        import tokenizers

        backend = tokenizers.Tokenizer.from_str(backend.to_str())  # own copy
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        self.name = name
        self.strict = strict
        # the document as loaded, before the decoding tweaks below: what to_json writes
        self._json = backend.to_str(pretty=True)
        spec = json.loads(self._json)
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
        # the model's own unknown token counts as loss whatever unk_token names
        self._unk_ids = frozenset(i for i in (self.unk_id, tid(model.get("unk_token"))) if i is not None)
        pre = _types(spec.get("pre_tokenizer"))
        dec = _types(spec.get("decoder"))
        norm = _types(spec.get("normalizer"))
        kinds = {n["type"] for n in pre + dec}
        # a normalizer that spells spaces "▁" (SentencePiece style without a Metaspace stage)
        spaces_as_meta = any(n["type"] == "Replace" and n.get("pattern") == {"String": " "}
                             and n.get("content") == "▁" for n in norm)
        if "ByteLevel" in kinds:
            self.family = "byte_level"
        elif model.get("byte_fallback") or "ByteFallback" in kinds:
            self.family = "byte_fallback"
        elif self._model_type == "WordPiece":
            self.family = "wordpiece"
        elif "Metaspace" in kinds or spaces_as_meta:
            self.family = "metaspace"
        else:
            raise ByteViewError(
                f"cannot derive a byte view for a {self._model_type} tokenizer with "
                f"pre-tokenizer/decoder {sorted(kinds) or 'none'}", component=f"tokenizer '{name}'",
                hint="supported: byte-level BPE, byte-fallback/Metaspace, WordPiece")
        self.model_type = ("byte-level-bpe" if self.family == "byte_level" and self._model_type == "BPE"
                           else MODEL_TYPES.get(self._model_type, self._model_type.lower()))
        metaspace = [n for n in pre + dec if n["type"] == "Metaspace"]
        meta_prepend = any(n.get("prepend_scheme", "always") in ("always", "first")
                           or n.get("add_prefix_space") for n in metaspace)
        prepend = meta_prepend or any(n["type"] == "Prepend" for n in norm)
        self.prefix_bytes = b" " if (self.family == "wordpiece" or (
            self.family in ("byte_fallback", "metaspace") and prepend)) else b""
        lossy_norm = [n["type"] for n in norm if n["type"] not in ("Prepend", "Replace")]
        # A Metaspace pre-tokenizer does not prepend "▁" to text that already starts with a
        # space, so decode(encode(" x")) == "x": such tokenizers are not lossless (a Prepend
        # normalizer prepends always, and is).
        lossy_pre = any(n["type"] == "Metaspace" for n in pre) and meta_prepend
        self.lossless = self.family != "wordpiece" and not lossy_norm and not lossy_pre
        self._continuation = model.get("continuing_subword_prefix") or "##"
        if self.family == "wordpiece":
            # The WordPiece decoder's "cleanup" rewrites " ," to "," and " do not" to " don't":
            # decode would then disagree with the tokens. Our copy decodes without it.
            from tokenizers import decoders

            backend.decoder = decoders.WordPiece(prefix=self._continuation, cleanup=False)
        backend.encode_special_tokens = True
        self._normalized: dict[str, str] = {}
        if verify:
            anchor = self._word_anchor() if self.family == "wordpiece" else None
            check_byte_view(self, samples=[t for t in (*VERIFY_SAMPLES, *samples) if self._encodes(t)],
                            anchor=anchor, decode=self._backend_decode)

    def _word_anchor(self) -> int | None:
        """A word-initial WordPiece token ("a" where there is one): a lone "##ing" decodes as
        "##ing", so continuation tokens are checked after it."""
        first = self._backend.token_to_id("a")
        if first is None:
            words = [i for t, i in self._backend.get_vocab().items()
                     if not t.startswith(self._continuation) and i not in self._special]
            first = min(words, default=None)
        return first

    def _encodes(self, text: str) -> bool:
        """Whether ``text`` encodes (a vocabulary trained on a small corpus may lack characters)."""
        try:
            self.encode(require_text(text, f"tokenizer '{self.name}'"))
        except UnrepresentableTextError:
            return False
        return True

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
        """Load ``tokenizer.json`` (``path``, or the one in the directory ``path``), with the
        token names of a ``tokenizer_meta.json`` beside it.

        The metadata describes; it cannot configure. A key that would switch a check off
        (``strict``, ``verify``) is refused with :class:`UntrustedModelError`, any other key
        outside :data:`META_KEYS` or a name that is not a special token of the file with
        :class:`ModelLoadError`. Arguments given here take precedence over the file.
        """
        import tokenizers

        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        meta_path = path.with_name("tokenizer_meta.json")
        meta = _read_meta(meta_path) if meta_path.exists() else {}
        try:
            backend = tokenizers.Tokenizer.from_file(str(path))
        except Exception as err:  # noqa: BLE001 - the library raises plain Exception on bad JSON
            raise ModelLoadError(f"cannot read the tokenizer {path}: {err}", component="tokenizer",
                                 hint="the file is missing or not a tokenizers JSON file") from err
        if meta:
            spec = json.loads(backend.to_str())
            specials = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
            specials.add(spec["model"].get("unk_token"))
            unknown = {k: v for k, v in meta.items() if v is not None and v not in specials}
            if unknown:
                raise ModelLoadError(f"{meta_path} names tokens that are not special tokens of {path}: "
                                     + ", ".join(f"{k}={v!r}" for k, v in unknown.items()),
                                     component="tokenizer",
                                     hint="bos/eos/pad/unk must be control tokens of the tokenizer")
        for key, value in meta.items():
            kw.setdefault(key, value)
        return cls(backend, **kw)

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (``path`` if it names a ``.json`` file, else into the
        directory ``path``) and, beside it, ``tokenizer_meta.json`` naming the bos/eos/pad/unk
        tokens; both atomically. Returns the ``tokenizer.json`` written; :meth:`from_file`
        reads both back."""
        from tokensmith.adapters.artifacts import atomic_write_text

        target = tokenizer_file(path)
        atomic_write_text(target, self._json)
        meta = {"bos_token": self._tok(self.bos_id), "eos_token": self._tok(self.eos_id),
                "pad_token": self._tok(self.pad_id), "unk_token": self._tok(self.unk_id)}
        atomic_write_text(target.with_name("tokenizer_meta.json"), json.dumps(meta))
        return target

    def to_json(self) -> str:
        return self._json

    def fingerprint(self) -> str:
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        return super().fingerprint()

    def _tok(self, i: int | None) -> str | None:
        return None if i is None else self._backend.id_to_token(i)

    @property
    def backend(self) -> Any:
        """The ``tokenizers.Tokenizer`` (adapter code and tests only: techniques use the
        public surface — :meth:`vocab`, :meth:`merges`, :meth:`model_tokenize`, :meth:`describe`)."""
        return self._backend

    # -- what the tokenizer is made of -------------------------------------
    @cached_property
    def _vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @cached_property
    def _model_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=False)

    def vocab(self, *, added_tokens: bool = True) -> dict[str, int]:
        return dict(self._vocab if require_flag(added_tokens, "added_tokens", f"tokenizer '{self.name}'")
                    else self._model_vocab)

    def token_to_id(self, token: str) -> int | None:
        if not isinstance(token, str):
            raise InputError(f"expected a vocabulary string, got {type(token).__name__}",
                             component=f"tokenizer '{self.name}'", hint="token ids: use id_to_token")
        return self._backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        (token_id,) = require_ids([token_id], self._vocab_size, f"tokenizer '{self.name}'")
        return self._backend.id_to_token(token_id)

    @cached_property
    def _merges(self) -> tuple[tuple[str, str], ...]:
        # tokenizers writes merges as ["a", "b"] pairs; files from before 0.20 as "a b" strings
        return tuple(tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1])
                     for m in self._spec["model"].get("merges", ()))

    def merges(self) -> tuple[tuple[str, str], ...]:
        if self._model_type != "BPE":
            raise IncompatibleComponentsError(
                f"tokenizer '{self.name}' is a {self.model_type} tokenizer: it has no BPE merges",
                component=f"tokenizer '{self.name}'",
                hint="techniques that need merges work with BPE tokenizers (model_type 'bpe' or "
                     "'byte-level-bpe')")
        return self._merges

    @cached_property
    def _model(self) -> Any:
        return self._backend.model

    def model_tokenize(self, piece: str) -> list[int]:
        """The model stage alone on ``piece`` (spelled as :meth:`vocab` spells tokens: for a
        byte-level BPE, characters of :func:`byte_level_decoder`). A piece the model cannot
        cover without dropping characters or the unknown token is an
        :class:`UnrepresentableTextError`, never a silently shorter result."""
        component = f"tokenizer '{self.name}'"
        require_text(piece, component)
        tokens = self._model.tokenize(piece)
        ids = [t.id for t in tokens]
        covered = sum(end - start for start, end in (t.offsets for t in tokens))  # UTF-8 byte offsets
        if covered != len(piece.encode("utf-8")) or self._unk_ids.intersection(ids):
            raise UnrepresentableTextError(
                f"the {self.model_type} model cannot tokenize {piece!r} without loss (unknown "
                "or dropped symbols)", component=component,
                hint="spell the piece in the vocabulary's alphabet (as vocab() spells tokens)")
        return ids

    def describe(self) -> dict[str, Any]:
        return copy.deepcopy(self._description)

    @cached_property
    def _description(self) -> dict[str, Any]:
        out: dict[str, Any] = {stage: self._spec.get(stage) for stage in STAGES}
        out["model"] = {k: v for k, v in self._spec["model"].items() if k not in ("vocab", "merges")}
        return out

    def normalize(self, text: str) -> str:
        require_text(text, f"tokenizer '{self.name}'")
        norm = self._backend.normalizer
        return norm.normalize_str(text) if norm is not None else text

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
        if type(token_id) is not int or not 0 <= token_id < self._vocab_size:
            (token_id,) = require_ids([token_id], self._vocab_size, f"tokenizer '{self.name}'")
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

    def encode(self, text: str, *, add_special_tokens: bool = False,
               allow_special: bool = False) -> Encoding:
        component = f"tokenizer '{self.name}'"
        require_text(text, component)
        backend = self._backend_for(add_special_tokens, allow_special)
        enc = backend.encode(text, add_special_tokens=add_special_tokens)
        self._check(text, enc, allow_special)
        return Encoding(enc.ids, enc.offsets)

    def encode_batch(self, texts: Sequence[str], *, add_special_tokens: bool = False,
                     allow_special: bool = False) -> list[Encoding]:
        texts = require_texts(texts, f"tokenizer '{self.name}'")
        backend = self._backend_for(add_special_tokens, allow_special)
        encs = backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        for t, e in zip(texts, encs):
            self._check(t, e, allow_special)
        return [Encoding(e.ids, e.offsets) for e in encs]

    def _backend_for(self, add_special_tokens: bool, allow_special: bool) -> Any:
        component = f"tokenizer '{self.name}'"
        require_flag(add_special_tokens, "add_special_tokens", component)
        return self._parsing_backend if require_flag(allow_special, "allow_special", component) \
            else self._backend

    @cached_property
    def _parsing_backend(self) -> Any:
        """A copy that maps special-token strings to their ids, for ``allow_special=True``
        (a copy rather than toggling the flag, so concurrent plain encodes stay plain)."""
        import tokenizers

        backend = tokenizers.Tokenizer.from_str(self._backend.to_str())
        backend.encode_special_tokens = False
        return backend

    def _check(self, text: str, enc: Any, allow_special: bool) -> None:
        # special_tokens_mask marks what the post-processor added (BOS/CLS...), not text
        mask = enc.special_tokens_mask
        pairs = [(i, span) for i, span, added in zip(enc.ids, enc.offsets, mask) if not added]
        ids = [i for i, _ in pairs]
        if not allow_special:
            control = [(i, span) for i, span in pairs if i in self._special and i not in self._unk_ids]
            if control:  # a vocabulary whose merges can spell a control token
                i, (start, end) = control[0]
                raise UnrepresentableTextError(
                    f"text {text[start:end]!r} at index {start} encodes to the control token "
                    f"{self._special_tokens[i]!r} (id {i})", component=f"tokenizer '{self.name}'",
                    hint="plain text cannot contain control tokens; pass allow_special=True for trusted text")
        if not self.strict:
            return
        if self.lossless:
            self.check_representable(text, ids)
            return
        if self._unk_ids.intersection(ids):
            raise UnrepresentableTextError(
                "text contains characters the vocabulary maps to the unknown token "
                f"{self._tok(min(self._unk_ids & set(ids)))!r}",
                component=f"tokenizer '{self.name}'", hint="pass strict=False to accept unknown tokens")
        self._check_coverage(text, [span for _, span in pairs])

    def _check_coverage(self, text: str, spans: list[tuple[int, int]]) -> None:
        """A lossy tokenizer may fold characters (WordPiece lower-cases and strips accents), but
        must not drop any: a character its normalizer deletes (controls, U+FFFD, zero-width
        and other format characters; combining marks count as stripped accents) or that no
        token's span covers without being whitespace (a vocabulary without it) is lost."""
        chars = set(text)
        # stripped accents and separators the normalizer keeps are folding, not loss
        folded = {ch for ch in chars
                  if unicodedata.category(ch) == "Mn" or ch.isspace() and self._normalize(ch)}
        deleted = [ch for ch in chars - folded if not self._normalize(ch)]
        pos = min(text.index(ch) for ch in deleted) if deleted else -1
        if pos < 0:
            covered = bytearray(len(text) + 1)
            for start, end in spans:
                covered[start:end] = b"\x01" * (end - start)
            pos = covered.find(0)
            while 0 <= pos < len(text) and text[pos] in folded:
                pos = covered.find(0, pos + 1)
        if 0 <= pos < len(text):
            ch = text[pos]
            raise UnrepresentableTextError(
                f"the tokenizer drops {ch!r} (U+{ord(ch):04X}) at index {pos}: no token represents it",
                missing=ch.encode("utf-8"), component=f"tokenizer '{self.name}'",
                hint="remove that character, or pass strict=False to accept the loss")

    def _normalize(self, ch: str) -> str:
        cache = self._normalized
        if ch not in cache:
            if len(cache) > 65536:  # arbitrary text must not grow it without bound
                cache.clear()
            norm = self._backend.normalizer
            cache[ch] = norm.normalize_str(ch) if norm is not None else ch
        return cache[ch]

    def decode(self, ids: Sequence[int]) -> str:
        ids = require_ids(ids, self._vocab_size, f"tokenizer '{self.name}'")
        if self.family == "byte_fallback":
            # the ByteFallback decoder replaces *every* byte of a run of byte tokens with U+FFFD
            # when the run is not valid UTF-8 (<0xE9><0x3C> gives "\ufffd\ufffd", not "\ufffd<"),
            # so text is decoded from the byte view, which check_byte_view verified against it
            return self.decode_bytes(ids).decode("utf-8", errors="replace")
        return self._backend.decode(ids, skip_special_tokens=True)

    def _backend_decode(self, ids: list[int]) -> str:
        return self._backend.decode(ids, skip_special_tokens=True)

    def pretokenize(self, text: str) -> list[PreToken]:
        """What the backend does before its model: plain added tokens are cut out (each is a
        pre-token of its own), the rest is normalized and pre-tokenized piece by piece; spans
        are mapped back through the normalizer to ``text`` (NFKC's "ﬁ" -> "fi" keeps its one
        character), so they are in the coordinates of :attr:`Encoding.offsets`."""
        require_text(text, f"tokenizer '{self.name}'")
        cuts: list[tuple[int, int]] = []
        if self._added_plain and text:  # the backend's own added-token matching
            enc = self._backend.encode(text, add_special_tokens=False)
            cuts = [span for i, span in zip(enc.ids, enc.offsets) if i in self._added_plain]
        out: list[PreToken] = []
        pos = 0
        for start, end in [*cuts, (len(text), len(text))]:
            out += self._pretokenize_piece(text, pos, start)
            if end > start:
                out.append(PreToken(text[start:end], (start, end)))
            pos = end
        return out

    def _pretokenize_piece(self, text: str, start: int, end: int) -> list[PreToken]:
        import tokenizers

        if start >= end:
            return []
        pretokenized = tokenizers.PreTokenizedString(text[start:end])
        norm, pre = self._backend.normalizer, self._backend.pre_tokenizer
        if norm is not None:
            pretokenized.normalize(norm.normalize)
        if pre is not None:
            pre.pre_tokenize(pretokenized)
        spans: list[list[int]] = []
        for _, (s, e), _ in pretokenized.get_splits(offset_referential="original", offset_type="char"):
            s, e = start + s, start + e
            if e <= s:  # what the normalizer added ("▁" before the text): no character of its own
                continue
            if spans and s < spans[-1][1]:  # one character split in two ("¼" -> "1", "⁄4"): one unit
                spans[-1][1] = max(spans[-1][1], e)
            else:
                spans.append([s, e])
        return [PreToken(text[s:e], (s, e)) for s, e in spans]
