"""Embeddings for merged tokens: the pluggable initializer interface and its default.

Feher, Vulić & Minixhofer (arXiv 2411.18553), section 3.2: the embeddings of the tokens dynamic
BPE makes are predicted on the fly — in the paper by a ZeTT hypernetwork (Minixhofer et al.
2024) over each token's decomposition into the model's own tokens. Here that step is a
protocol, so any ``embedding`` plugin can supply it:

An **initializer** is a registered ``embedding`` component (an
:class:`tokensmith.EmbeddingProvider`) that also has

    embed_tokens(model, tokenizer, pieces, *, output=False) -> Tensor[len(pieces), hidden]

``pieces[k]`` is the tuple of the model's own token ids new token ``k`` was merged from
(``tokenizer`` is that model's tokenizer: ``tokenizer.token_bytes`` spells them); the result is
what the model's input-embedding module would output for the token (what ``inputs_embeds``
takes), or with ``output=True`` its row of the output head. Dynamic tokenization finds it by
name (``initializer = "zett"`` or a table with ``type``) through the registry, so a third-party
plugin supplies one by registering it; nothing here needs to change.

The default, ``subtoken-mean``, is the mean of the sub-token embeddings (the paper's heuristic
baseline for a missing hypernetwork); as an ordinary embedding provider it transplants a model
onto another tokenizer the same way, through :func:`tokensmith.install_embeddings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from tokensmith import (
    BuildContext,
    ComponentRef,
    EmbeddingProvider,
    IncompatibleComponentsError,
    InputError,
    ModelReport,
    Tokenizer,
    install_embeddings,
)

COMPONENT = "embedding 'subtoken-mean'"


@runtime_checkable
class MergedTokenInitializer(Protocol):
    """What dynamic tokenization needs of an embedding plugin (see the module docstring)."""

    def embed_tokens(
        self, model: Any, tokenizer: Tokenizer, pieces: Sequence[tuple[int, ...]], *, output: bool = False
    ) -> Any: ...


def check_pieces(pieces: Any, vocab_size: int, component: str) -> list[tuple[int, ...]]:
    """``pieces`` as a list of non-empty tuples of ids in ``[0, vocab_size)``; InputError else."""
    if isinstance(pieces, (str, bytes)) or not isinstance(pieces, Sequence):
        raise InputError(
            f"pieces must be a list of token-id tuples, got {type(pieces).__name__}", component=component
        )
    out = []
    for k, p in enumerate(pieces):
        if isinstance(p, (str, bytes)) or not isinstance(p, Sequence) or not p:
            raise InputError(
                f"pieces[{k}] must be a non-empty tuple of token ids, got {p!r:.60}", component=component
            )
        ids = tuple(p)
        bad = [i for i in ids if type(i) is not int or not 0 <= i < vocab_size]
        if bad:
            raise InputError(
                f"pieces[{k}] holds {bad[0]!r}, not a token id in [0, {vocab_size})", component=component
            )
        out.append(ids)
    return out


class SubtokenMean(EmbeddingProvider):
    """The embedding of a new token is the mean of the embeddings of the model's own tokens
    that spell it (input rows for the input side, output-head rows for the output side)."""

    name = "subtoken-mean"

    def __init__(self, ctx: BuildContext | None = None) -> None:
        self.ctx = ctx

    # -- the initializer interface (dynamic tokenization) --------------------------------

    def embed_tokens(
        self, model: Any, tokenizer: Tokenizer, pieces: Sequence[tuple[int, ...]], *, output: bool = False
    ) -> Any:
        import torch

        with torch.no_grad():
            if output:
                head = model.get_output_embeddings()
                if head is None:
                    raise IncompatibleComponentsError(
                        "the model has no output head to take rows from", component=COMPONENT
                    )
                weight = head.weight

                def lookup(ids: Any) -> Any:
                    return weight[ids]
            else:
                module = model.get_input_embeddings()
                weight = module.weight
                lookup = module  # through the module, so a scale it applies (Gemma's) applies here too
            rows = check_pieces(pieces, weight.shape[0], COMPONENT)
            vectors = [lookup(torch.tensor(p, device=weight.device)).mean(0) for p in rows]
            return torch.stack(vectors) if vectors else weight.new_empty((0, weight.shape[1]))

    # -- an ordinary embedding provider (a static new tokenizer) --------------------------

    def build(self, model: Any, tokenizer: Tokenizer) -> Any:
        return model.get_input_embeddings()

    def apply(self, model: Any, tokenizer: Tokenizer) -> ModelReport:
        """Transplant ``model`` from the tokenizer it was loaded with onto ``tokenizer``: shared
        tokens keep their rows, every other row is the mean of the rows of the old tokens that
        spell it."""
        old = self.ctx.model_tokenizer if self.ctx is not None else None
        if old is None or old is tokenizer:
            return ModelReport(COMPONENT, ())
        by_bytes = {}
        for i, b in enumerate(old.byte_table):
            if b is not None and len(b) == 1:
                by_bytes.setdefault(b, i)

        def init(new_id: int, new_bytes: bytes | None, old_table: Any) -> Any:
            if new_bytes is None:  # a control token the old vocabulary lacks: no spelling
                return old_table[: old.vocab_size].mean(0)
            return old_table[spell(old, new_bytes, by_bytes)].mean(0)

        return install_embeddings(model, tokenizer, old_tokenizer=old, init=init)


def spell(tokenizer: Tokenizer, data: bytes, single_bytes: dict[bytes, int]) -> list[int]:
    """The ids of ``tokenizer`` that spell ``data``: its encoding of the text, or byte by byte
    when ``data`` is not UTF-8 on its own (a piece of a character)."""
    try:
        ids = list(tokenizer.encode(data.decode("utf-8")).ids)
        if b"".join(tokenizer.token_bytes(i) or b"" for i in ids) == data:
            return ids
    except UnicodeDecodeError:
        pass
    missing = [b for b in data if bytes([b]) not in single_bytes]
    if missing:
        raise IncompatibleComponentsError(
            f"the bytes {data!r} cannot be spelled in tokenizer '{tokenizer.name}' (no token for byte "
            f"0x{missing[0]:02x})",
            component=COMPONENT,
            hint="transplant from a byte-level tokenizer, or give the new token an embedding another way",
        )
    return [single_bytes[bytes([b])] for b in data]


def resolve_initializer(ref: Any, registry: Any, component: str) -> MergedTokenInitializer:
    """An initializer from an object that has ``embed_tokens``, or an ``embedding`` component's
    name or table (built through ``registry``); an embedding without ``embed_tokens`` is an
    IncompatibleComponentsError naming it."""
    if isinstance(ref, MergedTokenInitializer):
        return ref
    if not isinstance(ref, (str, dict, ComponentRef)):
        raise InputError(
            f"initializer must be an embedding component's name or table, or an object with "
            f"embed_tokens, got {type(ref).__name__}",
            component=component,
        )
    built = registry.build("embedding", ref)
    if not isinstance(built, MergedTokenInitializer):
        name = getattr(built, "name", ref)
        raise IncompatibleComponentsError(
            f"embedding '{name}' cannot embed merged tokens: it has no embed_tokens(model, tokenizer, "
            "pieces, *, output=False)",
            component=component,
            hint="use initializer = 'subtoken-mean', or an embedding plugin that implements embed_tokens",
        )
    return built
