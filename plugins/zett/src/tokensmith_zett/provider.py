"""The ``zett`` embedding component: a trained hypernetwork predicts a model's embeddings for a
new tokenizer (zero-shot tokenizer transfer).

Minixhofer, Ponti & Vulić, "Zero-Shot Tokenizer Transfer" (arXiv 2405.07883), Section 3: every
token of the new vocabulary is decomposed by the original tokenizer (:func:`.hypernet.decompose`),
the hypernetwork maps the decomposition to its input (and output) embedding, and the rows are
installed with :func:`tokensmith.install_embeddings`. Special tokens the original vocabulary has
(same literal) are copied, as the paper does.

``embed_tokens(model, tokenizer, pieces, output=)`` is the embedding-initializer interface of
tokensmith-dynamic-tokenization: it embeds new tokens given as their pieces directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    BuildContext,
    EmbeddingProvider,
    IncompatibleComponentsError,
    InputError,
    ModelReport,
    Tokenizer,
    install_embeddings,
    non_negative_int,
    positive_int,
)

COMPONENT = "zett"


def _path(value: Any) -> Path:
    if not isinstance(value, (str, Path)) or not str(value):
        raise InputError(f"hypernetwork must be a path to a ZeTT artifact, got {value!r}",
                         component=COMPONENT)
    return Path(value)


@attrs.define
class ZeTT(EmbeddingProvider):
    """ZeTT transfer: a hypernetwork trained for the model's own tokenizer predicts every row
    of the new tokenizer's input table (and untied head); specials the model knows are copied."""

    name = "zett"

    hypernetwork: Path = attrs.field(converter=_path, metadata={
        "doc": "the trained hypernetwork (a safetensors artifact from the zett recipe, e.g. "
               "runs/zett/hypernetwork.safetensors), made for the model's own tokenizer"})
    copy_shared: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "copy the rows of every token the old vocabulary shares (False: the hypernetwork predicts "
               "them, as the paper's zero-shot transfer; special tokens are always copied)"})
    batch: int = attrs.field(default=4096, validator=positive_int, metadata={
        "doc": "tokens per hypernetwork forward (memory only)"})
    pad_to_multiple_of: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        positive_int), metadata={"doc": "round the rows up to a multiple; None keeps the model's padding"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "seed handed to install_embeddings (no random rows are drawn: every row is predicted)"})
    undecomposable: str = attrs.field(default="mean", validator=attrs.validators.in_(("mean", "error")),
                                      metadata={
        "doc": "a new token with a byte the original tokenizer has no token for (SmolLM2 lacks 21 of the "
               "256 bytes, a byte-level BPE has them all) has no surface form for the hypernetwork: 'mean' "
               "gives it the mean original row and lists it in the report's notes; 'error' refuses"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)
    _loaded: Any = attrs.field(default=None, init=False, repr=False, eq=False)
    fallback: tuple[int, ...] = attrs.field(default=(), init=False, repr=False, eq=False)

    def build(self, model: Any, tokenizer: Tokenizer) -> Any:
        return model.get_input_embeddings()

    def apply(self, model: Any, tokenizer: Tokenizer) -> ModelReport:
        old = self.ctx.model_tokenizer if self.ctx is not None else None
        if old is None:
            raise IncompatibleComponentsError("no model tokenizer to transfer from", component=COMPONENT,
                                              hint="build it in a pipeline, or call transfer(...)")
        return self.transfer(model, old, tokenizer)

    def hypernet(self, model: Any, old: Tokenizer) -> Any:
        """The artifact rebuilt over ``model``'s current embeddings (loaded once per model)."""
        from .hypernet import load_hypernetwork

        if self._loaded is None or self._loaded[0] is not model or self._loaded[1] != old.fingerprint():
            self._loaded = (model, old.fingerprint(), load_hypernetwork(self.hypernetwork, model, old))
        return self._loaded[2]

    def predict(self, model: Any, old: Tokenizer, new: Tokenizer) -> tuple[Any, Any]:
        """``(input table, head table or None)`` for ``new``, one row per new id."""
        import torch

        from .hypernet import byte_index, decompose

        hn = self.hypernet(model, old)
        by_bytes = byte_index(old)
        old_specials = {text: i for i, text in old.special_tokens.items()}
        new_specials = new.special_tokens
        emb = model.get_input_embeddings().weight.detach()
        head = model.get_output_embeddings()
        head_w = None if head is None or head.weight is model.get_input_embeddings().weight \
            else head.weight.detach()
        pieces, copied, fallback = [], {}, []
        for i, b in enumerate(new.byte_table):
            if i in new_specials:
                if new_specials[i] not in old_specials:
                    raise IncompatibleComponentsError(
                        f"special token {new_specials[i]!r} of tokenizer {new.name!r} is not in "
                        f"{old.name!r}: "
                        "it has no surface form for the hypernetwork", component=COMPONENT,
                        hint="use a tokenizer whose special tokens the model knows")
                copied[i] = old_specials[new_specials[i]]
                pieces.append((copied[i],))
                continue
            if not b:
                raise IncompatibleComponentsError(f"token {i} of {new.name!r} has no bytes",
                                                  component=COMPONENT)
            if self.copy_shared and b in by_bytes:
                copied[i] = by_bytes[b]
            missing = set(b) & old.unrepresentable_bytes
            if missing:
                if self.undecomposable == "error":
                    raise IncompatibleComponentsError(
                        f"token {i} ({b!r}) of {new.name!r} has byte(s) {sorted(missing)} that "
                        f"{old.name!r} has no token for: no surface form to give the hypernetwork",
                        component=COMPONENT, hint="undecomposable = 'mean' gives such tokens the mean row")
                fallback.append(i)
                pieces.append((0,))  # a placeholder row, replaced by the mean below
                continue
            pieces.append(decompose(b, old, by_bytes, hn.surface_maxlen))
        table, head_table = hn.predict(pieces, batch=self.batch)
        table = table.to(emb.dtype)
        if head_w is not None:
            head_table = head_table.to(head_w.dtype)
        if fallback:
            rows = torch.tensor(fallback, device=table.device)
            table[rows] = emb[: old.vocab_size].mean(0)
            if head_w is not None:
                head_table[rows] = head_w[: old.vocab_size].mean(0)
        self.fallback = tuple(fallback)
        if copied:
            new_ids = torch.tensor(list(copied), device=table.device)
            old_ids = torch.tensor(list(copied.values()), device=table.device)
            table[new_ids] = emb[old_ids]
            if head_w is not None:
                head_table[new_ids] = head_w[old_ids]
        return table, (head_table if head_w is not None else None)

    def transfer(self, model: Any, old: Tokenizer, new: Tokenizer) -> ModelReport:
        """Move ``model`` from ``old`` onto ``new`` in place with the hypernetwork's rows."""
        table, head_table = self.predict(model, old, new)
        report = install_embeddings(model, new, old_tokenizer=old, table=table, head_table=head_table,
                                    seed=self.seed, pad_to_multiple_of=self.pad_to_multiple_of)
        if self.fallback:
            shown = ", ".join(map(str, self.fallback[:20])) + (" ..." if len(self.fallback) > 20 else "")
            report = attrs.evolve(report, notes=(*report.notes, (
                f"zett: {len(self.fallback)} token(s) of {new.name!r} have a byte {old.name!r} has no token "
                f"for and got the mean original row (undecomposable = 'mean'): ids {shown}")))
        return report

    def embed_tokens(self, model: Any, tokenizer: Tokenizer, pieces: Sequence[tuple[int, ...]], *,
                     output: bool = False) -> Any:
        """tokensmith-dynamic-tokenization's initializer interface: rows for new tokens given as
        their pieces in ``tokenizer`` (the model's own), as the input module would output them,
        or with ``output=True`` their head rows (the input prediction for a tied model)."""
        hn = self.hypernet(model, tokenizer)
        checked = []
        for k, p in enumerate(pieces):
            ids = tuple(p) if not isinstance(p, (str, bytes)) else ()
            if not ids or any(type(i) is not int or not 0 <= i < tokenizer.vocab_size for i in ids):
                raise InputError(f"pieces[{k}] is not a non-empty tuple of ids of {tokenizer.name!r}: "
                                 f"{p!r:.60}",
                                 component=COMPONENT)
            checked.append(ids)
        e_in, e_out = hn.predict(checked, batch=self.batch)
        dtype = model.get_input_embeddings().weight.dtype
        return (e_out if output and e_out is not None else e_in).to(dtype)
