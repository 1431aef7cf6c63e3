"""Constraints backed by llguidance (optional): Lark grammars, full JSON Schema, regex.

For AWRS (Lipkin et al., arXiv 2504.05410) and masking: a constraint is a
predicate on byte prefixes. llguidance (https://github.com/guidance-ai/llguidance,
MIT) compiles a Lark grammar, a JSON Schema (all of it, through its own
compiler) or a regex into an Earley parser with a lexer over bytes, and checks
token sequences against it in Rust.

Two matchers serve one constraint:

* a **byte matcher** over a 256-token "tokenizer" (one token per byte value), for
  ``allows``/``accepts`` of any byte string: the matcher follows the last prefix
  asked about (consuming the difference, rolling back what differs), and a check
  of ``prefix + piece`` consumes the piece's bytes and rolls them back;
* a **token mask** over a language model's own vocabulary (:meth:`token_masker`):
  for a token LM the sampler asks llguidance once per step for the set of allowed
  next tokens (a bitmask, computed in Rust in tens of microseconds for SmolLM2's
  49,152 tokens), after which each check AWRS makes is a lookup. Masks and checks
  are counted apart (``token_masks`` in the decoders' counters).

Without llguidance installed these constraints are a ``ConfigError`` naming the
extra to install; the plugin's own ``regex``/``json-schema``/``python``
constraints and any :class:`tokensmith.FunctionConstraint` need nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from tokensmith import BuildContext, ConfigError, Constraint

#: the byte matcher's vocabulary: byte values 0..255, then its end-of-string token
_BYTE_EOS = 256
_INSTALL = "pip install 'tokensmith-awrs[llguidance]' (llguidance 1.9)"


def _llguidance(component: str) -> Any:
    try:
        import llguidance
    except ImportError as err:
        raise ConfigError(f"llguidance is not installed ({err})", component=component,
                          hint=_INSTALL) from None
    return llguidance


class _ByteVocabulary:
    """What ``llguidance.TokenizerWrapper`` reads: one token per byte value plus an end token."""

    tokens = [bytes([b]) for b in range(256)] + [b"<eos>"]
    eos_token_id = _BYTE_EOS
    bos_token_id = None
    special_token_ids = [_BYTE_EOS]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


class _TokenVocabulary:
    """A tokensmith tokenizer's byte view for ``llguidance.TokenizerWrapper``: special tokens and
    output rows with no bytes become special entries llguidance never allows inside text."""

    def __init__(self, tokenizer: Any, n_vocab: int) -> None:
        pieces = tokenizer.byte_table
        special = set(tokenizer.special_ids)
        self.tokens, self.special_token_ids = [], []
        for i in range(n_vocab):
            piece = pieces[i] if i < len(pieces) else None
            if i in special or not piece:
                self.special_token_ids.append(i)
                self.tokens.append(f"<|special-{i}|>".encode())
            else:
                self.tokens.append(piece)
        self.eos_token_id = tokenizer.eos_id if tokenizer.eos_id is not None else self.special_token_ids[0]
        self.bos_token_id = None
        self._tokenizer = tokenizer

    def __call__(self, text: str) -> list[int]:
        if not isinstance(text, str):  # TokenizerWrapper probes with bytes, then uses str
            raise TypeError("str only")
        return list(self._tokenizer.encode(text).ids)


_BYTE_TOKENIZER: list[Any] = []


def _byte_tokenizer(llg: Any) -> Any:
    if not _BYTE_TOKENIZER:
        _BYTE_TOKENIZER.append(llg.LLTokenizer(llg.TokenizerWrapper(_ByteVocabulary()), slices=[]))
    return _BYTE_TOKENIZER[0]


class TokenMasker:
    """Allowed next tokens of one vocabulary after a generated token sequence (a token
    matcher that follows the particle asked about, as the byte matcher follows prefixes)."""

    def __init__(self, constraint: LLGuidanceConstraint, tokenizer: Any, n_vocab: int) -> None:
        import torch

        llg = _llguidance(constraint.component)
        self.n_vocab = n_vocab
        self._tokenizer = llg.LLTokenizer(llg.TokenizerWrapper(_TokenVocabulary(tokenizer, n_vocab)),
                                          n_vocab=n_vocab)
        self._matcher = llg.LLMatcher(self._tokenizer, constraint.compiled(), log_level=0)
        self._ids: list[int] = []
        self._bits = torch.arange(8, dtype=torch.uint8)

    def _follow(self, ids: list[int]) -> bool:
        """Bring the matcher to ``ids``; False when they leave the grammar."""
        common = 0
        for a, b in zip(self._ids, ids):
            if a != b:
                break
            common += 1
        if len(self._ids) > common:
            self._matcher.rollback(len(self._ids) - common)
            self._ids = self._ids[:common]
        rest = ids[common:]
        if rest:
            done = self._matcher.try_consume_tokens(rest)
            self._ids += rest[:done]
            if done < len(rest):
                return False
        return not self._matcher.is_error()

    def mask(self, ids: list[int]) -> Any:
        """Bool tensor over the vocabulary: which tokens may follow ``ids`` inside the text
        (special tokens are never set: whether the text may end is ``accepts``)."""
        import torch

        if not self._follow(list(ids)):
            return torch.zeros(self.n_vocab, dtype=torch.bool)
        packed = torch.frombuffer(bytearray(self._matcher.compute_bitmask()), dtype=torch.uint8)
        bits = ((packed.unsqueeze(1) >> self._bits) & 1).flatten()[: self.n_vocab].bool()
        for special in self._tokenizer.eos_tokens:
            if special < self.n_vocab:
                bits[special] = False
        return bits


@attrs.define
class LLGuidanceConstraint(Constraint):
    """Base of the llguidance-backed constraints: subclasses give :meth:`compiled` (an
    llguidance grammar string). ``allows``/``accepts`` are exact for the grammar as
    llguidance reads it (its lexer works on bytes, so a prefix cut inside a UTF-8
    character is allowed exactly when it can complete)."""

    name = "llguidance"
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)
    _matcher: Any = attrs.field(default=None, init=False, repr=False, eq=False)
    _consumed: bytes = attrs.field(default=b"", init=False, repr=False, eq=False)
    _dead: bool = attrs.field(default=False, init=False, repr=False, eq=False)
    _maskers: dict[int, TokenMasker] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    @property
    def component(self) -> str:
        return f"constraint '{self.name}'"

    def compiled(self) -> str:
        """The llguidance grammar string."""
        raise NotImplementedError

    def __attrs_post_init__(self) -> None:
        llg = _llguidance(self.component)
        grammar = self.compiled()
        error = llg.LLMatcher.validate_grammar(grammar)
        if error:
            raise ConfigError(f"llguidance refused the grammar: {error.strip()}", component=self.component,
                              hint="see https://github.com/guidance-ai/llguidance/blob/main/docs/syntax.md")
        self._matcher = llg.LLMatcher(_byte_tokenizer(llg), grammar, log_level=0)
        if self._matcher.is_error():
            raise ConfigError(f"llguidance refused the grammar: {self._matcher.get_error()}",
                              component=self.component)

    # -- the byte matcher ---------------------------------------------------------
    def _at(self, prefix: bytes) -> bool:
        """Move the byte matcher to ``prefix``; False when the prefix left the grammar."""
        consumed = self._consumed
        common = 0
        limit = min(len(consumed), len(prefix))
        while common < limit and consumed[common] == prefix[common]:
            common += 1
        if self._dead or len(consumed) > common:
            if self._dead:
                self._matcher.reset()
                common = 0
            else:
                self._matcher.rollback(len(consumed) - common)
            self._consumed, self._dead = prefix[:common], False
        rest = prefix[common:]
        if rest:
            done = self._matcher.try_consume_tokens(list(rest))
            self._consumed = prefix[:common + done]
            if done < len(rest):
                return False
        return not self._matcher.is_error()

    def _allows(self, prefix: bytes) -> bool:
        return self._at(prefix)

    def _accepts(self, text: bytes) -> bool:
        return self._at(text) and bool(self._matcher.is_accepting())

    def allows_after(self, prefix: bytes, piece: bytes) -> bool:
        """``allows(prefix + piece)``: the piece consumed from the matcher at ``prefix`` and
        rolled back (one counted check)."""
        self.checks += 1
        if not self._at(prefix):
            return False
        done = self._matcher.try_consume_tokens(list(piece))
        if done:
            self._matcher.rollback(done)
        return done == len(piece)

    # -- token masks ----------------------------------------------------------------
    def token_masker(self, tokenizer: Any, n_vocab: int) -> TokenMasker:
        """The mask builder over ``tokenizer``'s vocabulary (``n_vocab`` output rows), made
        once per tokenizer (building llguidance's token trie takes a fraction of a second)."""
        key = id(tokenizer)
        masker = self._maskers.get(key)
        if masker is None or masker.n_vocab != n_vocab:
            masker = self._maskers[key] = TokenMasker(self, tokenizer, n_vocab)
        return masker


def _text(instance: Any, attribute: Any, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{attribute.name} must be a non-empty string, got {value!r}",
                          component=f"constraint '{type(instance).name if instance else '?'}'")


@attrs.define
class LarkConstraint(LLGuidanceConstraint):
    """Text derived from a Lark grammar's ``start`` rule (llguidance's Lark dialect: rules,
    ``/regex/`` and ``"literal"`` terminals, ``%ignore``, ``%json`` sub-schemas)."""

    name = "lark"
    grammar: str = attrs.field(kw_only=True, validator=_text, metadata={
        "doc": "a Lark grammar (llguidance's dialect) whose start rule the whole text must match"})

    def compiled(self) -> str:
        return _llguidance(self.component).LLMatcher.grammar_from_lark(self.grammar)


def _schema(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as err:
            raise ConfigError(f"schema is not JSON: {err}",
                              component="constraint 'llg-json-schema'") from None
    if not isinstance(value, Mapping | bool):
        raise ConfigError("schema must be a JSON Schema (a table or its JSON text), got "
                          f"{type(value).__name__}",
                          component="constraint 'llg-json-schema'")


@attrs.define
class LLGJSONSchemaConstraint(LLGuidanceConstraint):
    """A JSON document valid under a JSON Schema, through llguidance's JSON compiler (the
    keywords it supports: ``$ref``, ``anyOf``/``oneOf``/``allOf``, numeric bounds, string
    lengths and patterns, ``minItems``... far beyond this plugin's hand-written subset)."""

    name = "llg-json-schema"
    schema: Any = attrs.field(kw_only=True, validator=_schema, metadata={
        "doc": "the JSON Schema (a table, or its JSON text)"})
    whitespace_flexible: bool = attrs.field(default=False, kw_only=True,
                                            validator=attrs.validators.instance_of(bool), metadata={
        "doc": "allow any JSON whitespace between tokens (default: llguidance's compact form)"})

    def compiled(self) -> str:
        schema = json.loads(self.schema) if isinstance(self.schema, str) else self.schema
        options = {"whitespace_flexible": self.whitespace_flexible}
        try:
            return _llguidance(self.component).LLMatcher.grammar_from_json_schema(
                schema if isinstance(schema, bool) else dict(schema), overrides=options)
        except ValueError as err:
            raise ConfigError(f"llguidance refused the schema: {err}", component=self.component) from None


@attrs.define
class LLGRegexConstraint(LLGuidanceConstraint):
    """Text that fully matches a regular expression, in llguidance's (Rust ``regex``) syntax."""

    name = "llg-regex"
    pattern: str = attrs.field(kw_only=True, validator=_text, metadata={
        "doc": "a regular expression (Rust regex syntax) the whole text must match"})

    def compiled(self) -> str:
        return _llguidance(self.component).LLMatcher.grammar_from_regex(self.pattern)


def available() -> bool:
    """Is llguidance importable here?"""
    try:
        import llguidance  # noqa: F401
    except ImportError:
        return False
    return True


