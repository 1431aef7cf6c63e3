"""Embedding transplant: give a model the embedding table of another tokenizer.

:func:`install_embeddings` is the one place where tokensmith resizes a model's
input embeddings and output head for a new vocabulary; embedding plugins
compute rows and call it, rather than resizing on their own (docs/transplant.md).
It works on the modules in place (their class, ``embed_scale`` and the like
stay), keeps a tied head tied, copies the rows of tokens the two vocabularies
share, initialises the others, keeps the model's padding rows, updates the
config, and reports every change in a :class:`~tokensmith.ModelReport`.

Tokens are shared when they are the same bytes (the byte view,
:attr:`Tokenizer.byte_table`), or, for special tokens, the same literal string
(:attr:`Tokenizer.special_tokens`): ids never decide, so two vocabularies in a
different order map correctly and a tokenizer onto itself maps every id to itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tokensmith.core.errors import (
    ByteViewError,
    ConfigError,
    IncompatibleComponentsError,
    InputError,
    SurgeryError,
)
from tokensmith.core.records import Change, ModelReport
from tokensmith.core.tokenizer import Tokenizer

COMPONENT = "embedding transplant"
#: built-in initialisations of rows that no old token provides
INITS = ("mean", "normal")
#: config attributes that hold token ids, with the tokenizer attribute each falls back to
SPECIAL_ID_FIELDS = {"pad_token_id": "pad_id", "bos_token_id": "bos_id", "eos_token_id": "eos_id"}

#: the attribute of the output head that holds the padding mask's hook handle
MASK_HANDLE = "_tokensmith_padding_mask"

Init = Callable[[int, "bytes | None", Any], Any]


def _groups(tokenizer: Tokenizer) -> dict[tuple[str, Any], list[int]]:
    """Ids by what they are: ``("special", literal)`` or ``("bytes", token bytes)``."""
    specials = tokenizer.special_tokens
    out: dict[tuple[str, Any], list[int]] = {}
    for i, piece in enumerate(tokenizer.byte_table):
        if i in specials:
            out.setdefault(("special", specials[i]), []).append(i)
        elif piece is not None:
            out.setdefault(("bytes", piece), []).append(i)
    return out


def _require_byte_view(tokenizer: Any, role: str) -> Tokenizer:
    if not isinstance(tokenizer, Tokenizer):
        raise InputError(f"{role} must be a tokensmith Tokenizer, got {type(tokenizer).__name__}",
                         component=COMPONENT, hint="wrap it: tokensmith.HFTokenizer.from_transformers(tok)")
    if not tokenizer.has_byte_view:
        raise ByteViewError(f"{role} '{tokenizer.name}' has no byte view, so its tokens cannot be "
                            "matched to another vocabulary by their bytes", component=COMPONENT,
                            hint="use a tokenizer whose token_bytes are known (byte-level or "
                                 "byte-fallback BPE)")
    return tokenizer


def map_shared_tokens(old_tokenizer: Tokenizer, new_tokenizer: Tokenizer) -> dict[int, int]:
    """``{new_id: old_id}`` for every new token the old vocabulary also has.

    A token is matched by its bytes (special tokens by their literal string, never
    with a plain token). When several ids of a vocabulary are the same bytes (a
    byte-fallback ``<0x41>`` and a merged ``A``), the k-th of them in the new
    vocabulary takes the k-th in the old (by id), and any beyond the old count take
    the old's last one — so a tokenizer onto itself maps every id to itself.
    """
    old = _groups(_require_byte_view(old_tokenizer, "old_tokenizer"))
    new = _groups(_require_byte_view(new_tokenizer, "new_tokenizer"))
    out: dict[int, int] = {}
    for key, new_ids in new.items():
        old_ids = old.get(key)
        if old_ids:
            out.update((j, old_ids[min(k, len(old_ids) - 1)]) for k, j in enumerate(new_ids))
    return dict(sorted(out.items()))


def subtoken_mean(table: Any, pieces: Any, mask: Any = None) -> Any:
    """FVT (Gee et al. 2022, "Fast Vocabulary Transfer"): row ``k`` of the result is the mean of
    the rows of ``table`` listed by ``pieces[k]`` (a new token's decomposition by the old
    tokenizer), differentiable in ``table``, so a hypernetwork can train through it.

    ``pieces`` is a sequence of non-empty id sequences, or an ``[n, width]`` integer tensor
    with ``mask`` (``[n, width]`` bool, True where a piece is real, at least one per row): the
    padded form a batched model already holds. Only real pieces are gathered (memory is the
    number of pieces times the width, whatever the longest decomposition). Ids outside the
    table, an empty decomposition or a row with no real piece are an :class:`InputError` (a
    mean of nothing is not a row).
    """
    import torch

    rows = int(table.shape[0])
    if mask is None:
        if isinstance(pieces, torch.Tensor):
            raise InputError("a tensor of pieces needs its mask (True where a piece is real)",
                             component=COMPONENT, hint="pass mask=, or the pieces as id lists")
        flat, owner = [], []
        for k, p in enumerate(pieces):
            p = list(p)
            if not p:
                raise InputError(f"piece list {k} is empty: a token needs at least one old token to average",
                                 component=COMPONENT)
            if any(type(i) is not int and not (isinstance(i, torch.Tensor) and i.ndim == 0) for i in p):
                raise InputError(f"pieces[{k}] holds something other than token ids: {p!r:.60}",
                                 component=COMPONENT)
            flat.extend(int(i) for i in p)
            owner.extend([k] * len(p))
        n = len(owner) and owner[-1] + 1
        ids = torch.tensor(flat, dtype=torch.long, device=table.device)
        owner = torch.tensor(owner, dtype=torch.long, device=table.device)
    else:
        mask = mask.to(torch.bool)
        if pieces.shape != mask.shape or pieces.ndim != 2:
            raise InputError(f"pieces {tuple(pieces.shape)} and mask {tuple(mask.shape)} must be the same "
                             "[n, width] shape", component=COMPONENT)
        if len(pieces) and not bool(mask.any(1).all()):
            raise InputError("a row of the mask has no real piece: a mean of nothing is not a row",
                             component=COMPONENT)
        n = len(pieces)
        ids = pieces[mask]
        owner = torch.arange(n, device=pieces.device).unsqueeze(1).expand_as(pieces)[mask]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= rows):
        raise InputError(f"piece ids must lie in the table's {rows} rows, got {int(ids.min())}.."
                         f"{int(ids.max())}", component=COMPONENT)
    # each real piece's row added to its token's sum (index_add keeps the gradient to table)
    sums = torch.zeros(n, table.shape[1], dtype=table.dtype, device=table.device)
    sums = sums.index_add(0, owner, table[ids])
    counts = torch.bincount(owner, minlength=n).to(table.dtype)
    return sums / counts.unsqueeze(1)


def check_vocabulary(table: Any, tokenizer: Tokenizer, *, component: str = COMPONENT,
                     what: str = "the embedding table", padded: bool = False) -> int:
    """The number of rows of ``table`` (a tensor, a module with ``.weight``, or an int),
    checked against ``tokenizer.vocab_size``: equal, or at least as many with ``padded``.

    Raises :class:`IncompatibleComponentsError` naming both sizes otherwise.
    """
    weight = getattr(table, "weight", table)
    shape = getattr(weight, "shape", None)
    rows = int(shape[0]) if shape is not None and len(shape) else table if isinstance(table, int) else None
    if rows is None:
        raise InputError(f"{what} is a {type(table).__name__}, not a tensor of rows", component=component)
    size = tokenizer.vocab_size
    if rows < size or (rows != size and not padded):
        need = f"at least {size}" if padded else f"exactly {size}"
        raise IncompatibleComponentsError(
            f"{what} has {rows} rows but tokenizer '{tokenizer.name}' has {size} ids (needs {need} rows)",
            component=component, hint="pair the table with the tokenizer it was made for")
    return rows


def _input_embeddings(model: Any) -> Any:
    getter = getattr(model, "get_input_embeddings", None)
    emb = getter() if callable(getter) else None
    if emb is None or getattr(getattr(emb, "weight", None), "ndim", 0) != 2:
        raise SurgeryError(f"model {type(model).__name__} has no input embedding table "
                           "(get_input_embeddings() with a 2-d weight)", component=COMPONENT,
                           hint="transplant works on transformers models (PreTrainedModel)")
    return emb


def _output_embeddings(model: Any, emb: Any) -> Any:
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if head is None:
        return None
    weight = getattr(head, "weight", None)
    if getattr(weight, "ndim", 0) != 2 or weight.shape != emb.weight.shape:
        raise SurgeryError(f"the output head of {type(model).__name__} is "
                           f"{tuple(getattr(weight, 'shape', ()))}, not shaped like the input embeddings "
                           f"{tuple(emb.weight.shape)}", component=COMPONENT)
    return head


def _padded_rows(vocab: int, old_padding: int, multiple: int | None) -> int:
    if multiple is None:
        return vocab + old_padding
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ConfigError(f"pad_to_multiple_of must be a positive int or None, got {multiple!r}",
                          component=COMPONENT, hint="e.g. 64; None keeps the model's padding rows")
    return -(-vocab // multiple) * multiple


def _init_rows(init: str | Init, ids: list[int], tokenizer: Tokenizer, real: Any, generator: Any) -> Any:
    """Rows for the new ids no old token provides (float32, ``[len(ids), dim]``)."""
    import torch

    dim = real.shape[1]
    if not ids:
        return real.new_zeros((0, dim))
    if init == "mean":
        return real.mean(0).expand(len(ids), dim).clone()
    if init == "normal":
        noise = torch.randn((len(ids), dim), generator=generator, dtype=real.dtype).to(real.device)
        return real.mean(0) + real.std(0, correction=0) * noise
    rows = []
    view = real.clone()  # a user function cannot change the old table through its argument
    for i in ids:
        try:
            row = torch.as_tensor(init(i, tokenizer.token_bytes(i), view), dtype=real.dtype,
                                  device=real.device)
        except Exception as exc:  # noqa: BLE001 - the user's function; named with the id it failed on
            raise ConfigError(f"init raised {type(exc).__name__} for new token {i}: {exc}",
                              component=COMPONENT) from exc
        if row.shape != (dim,) or not torch.isfinite(row).all():
            got = "a non-finite row" if row.shape == (dim,) else f"shape {tuple(row.shape)}"
            raise ConfigError(f"init returned {got} for new token {i}; it must return {dim} finite values",
                              component=COMPONENT, hint="init(new_id, new_bytes, old_table) -> row of width "
                                                        f"{dim}")
        rows.append(row)
    return torch.stack(rows)


def _new_table(old: Any, old_vocab: int, new_vocab: int, rows: int, mapping: Mapping[int, int],
               init: str | Init, tokenizer: Tokenizer, generator: Any, given: Any = None,
               ) -> tuple[Any, dict[str, int]]:
    """The new weight (``[rows, ...]``, old dtype and device) and how each part was filled."""
    import torch

    old = old.detach()
    out = old.new_zeros((rows, *old.shape[1:]))
    if given is not None:
        out[:new_vocab] = given.detach().to(old.dtype).to(old.device)
        filled = {"given": new_vocab}
    else:
        dst = torch.tensor(list(mapping), dtype=torch.long, device=old.device)
        src = torch.tensor(list(mapping.values()), dtype=torch.long, device=old.device)
        out[dst] = old[src]
        missing = [i for i in range(new_vocab) if i not in mapping]
        if missing:
            real = old[:old_vocab].float()
            made = _init_rows(init, missing, tokenizer, real if real.ndim == 2 else real[:, None], generator)
            out[torch.tensor(missing, dtype=torch.long, device=old.device)] = made.reshape(
                len(missing), *old.shape[1:]).to(old.dtype)
        filled = {"copied": len(mapping), "initialised": len(missing)}
    kept = min(old.shape[0] - old_vocab, rows - new_vocab)
    out[new_vocab:new_vocab + kept] = old[old_vocab:old_vocab + kept]
    filled.update(padding_kept=kept, padding_added=rows - new_vocab - kept)
    return out, filled


def _describe(filled: Mapping[str, int], init: str | Init) -> str:
    name = init if isinstance(init, str) else getattr(init, "__name__", "init")
    parts = [f"{filled['given']} rows given"] if "given" in filled else [
        f"{filled['copied']} rows copied by bytes", f"{filled['initialised']} initialised ({name})"]
    parts += [f"{filled['padding_kept']} padding rows kept"] if filled["padding_kept"] else []
    parts += [f"{filled['padding_added']} padding rows added (masked)"] if filled["padding_added"] else []
    return ", ".join(parts)


def _set_weight(module: Any, weight: Any, rows: int, attribute: str) -> None:
    import torch

    old = module.weight
    module.weight = torch.nn.Parameter(weight, requires_grad=old.requires_grad)
    if hasattr(module, attribute):  # nn.Embedding.num_embeddings, nn.Linear.out_features
        setattr(module, attribute, rows)


def _remap_special_ids(model: Any, new_tokenizer: Tokenizer, reverse: Mapping[int, int],
                       old_vocab: int) -> list[Change]:
    """Token ids in the config and generation config, carried to the new vocabulary."""
    changes = []
    targets = [("config", model.config)]
    if getattr(model, "generation_config", None) is not None:
        targets.append(("generation_config", model.generation_config))

    def carry(value: Any, fallback: int | None) -> Any:
        if isinstance(value, (list, tuple)):
            carried = [carry(v, fallback) for v in value]
            return type(value)(dict.fromkeys(v for v in carried if v is not None))
        if isinstance(value, int) and 0 <= value < old_vocab and value in reverse:
            return reverse[value]
        return fallback

    for where, config in targets:
        for field, tok_attr in SPECIAL_ID_FIELDS.items():
            before = getattr(config, field, None)
            if before is None:
                continue
            after = carry(before, getattr(new_tokenizer, tok_attr))
            if after != before:
                setattr(config, field, after)
                changes.append(Change(f"{where}.{field}", repr(before), repr(after),
                                      "the same token in the new vocabulary" if after is not None and
                                      before in reverse else f"not in the new vocabulary: the new "
                                      f"tokenizer's {tok_attr}"))
    return changes


def mask_padding_rows(model: Any, vocab_size: int) -> Any:
    """Give the output rows from ``vocab_size`` on a logit of ``-inf`` (a forward hook on
    the output head; returns its handle). A hook is not saved with the weights: call this
    again after loading a model whose padding rows :func:`install_embeddings` added."""
    import torch

    head = model.get_output_embeddings()

    def mask(module: Any, args: Any, logits: Any) -> Any:
        return logits.index_fill(-1, torch.arange(vocab_size, logits.shape[-1], device=logits.device),
                                 float("-inf"))

    stale = getattr(head, MASK_HANDLE, None)
    if stale is not None:
        stale.remove()
    handle = head.register_forward_hook(mask)
    setattr(head, MASK_HANDLE, handle)
    return handle


def install_embeddings(model: Any, new_tokenizer: Tokenizer, *, old_tokenizer: Tokenizer,
                       init: str | Init = "mean", seed: int = 0, pad_to_multiple_of: int | None = None,
                       table: Any = None, head_table: Any = None) -> ModelReport:
    """Install an embedding table for ``new_tokenizer`` into ``model`` (in place).

    * The input embeddings and the output head get one row per new id, plus padding rows:
      by default as many as the model had beyond ``old_tokenizer.vocab_size`` (kept as they
      were); ``pad_to_multiple_of`` rounds the row count up instead, and padding rows the
      model did not have are masked (:func:`mask_padding_rows`) so they get no probability.
    * Rows of tokens both vocabularies share (:func:`map_shared_tokens`) are copied, in the
      input table and, when untied, in the head (and a head bias); the other rows are the
      mean of the old token rows (``init="mean"``), drawn around it with their per-dimension
      spread (``"normal"``, seeded), or ``init(new_id, new_bytes, old_table) -> row``
      (called with torch seeded by ``seed``; a bias row takes the old bias mean).
    * ``table`` (and ``head_table`` for an untied head) install rows computed elsewhere,
      one per new id, instead of copying and initialising.
    * A tied head stays tied to the new input table. ``config.vocab_size`` becomes the row
      count; ``pad/bos/eos_token_id`` in the config and generation config follow their token
      into the new vocabulary, or become the new tokenizer's own when it lacks that token.

    Onto the same tokenizer, every row is copied and the logits stay bit-identical.
    """
    import torch

    new_tokenizer = _require_byte_view(new_tokenizer, "new_tokenizer")
    old_tokenizer = _require_byte_view(old_tokenizer, "old_tokenizer")
    if not (isinstance(init, str) and init in INITS) and not callable(init):
        raise ConfigError(f"init must be one of {', '.join(INITS)} or a function, got {init!r}",
                          component=COMPONENT, hint="init(new_id, new_bytes, old_table) -> row")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an int, got {seed!r}", component=COMPONENT)
    emb = _input_embeddings(model)
    head = _output_embeddings(model, emb)
    tied = head is not None and head.weight is emb.weight
    if head is None and head_table is not None:
        raise ConfigError("head_table given but the model has no output head", component=COMPONENT)
    if tied and head_table is not None:
        raise ConfigError("head_table given but the model's head is tied to its input embeddings",
                          component=COMPONENT, hint="pass only table")
    old_rows, dim = emb.weight.shape
    old_vocab, new_vocab = old_tokenizer.vocab_size, new_tokenizer.vocab_size
    check_vocabulary(emb, old_tokenizer, what="the model's input embeddings", padded=True)
    table, head_table = (None if t is None else torch.as_tensor(t) for t in (table, head_table))
    for given, what in ((table, "table"), (head_table, "head_table")):
        if given is not None:
            check_vocabulary(given, new_tokenizer, what=what)
            if tuple(given.shape[1:]) != (dim,):
                raise IncompatibleComponentsError(f"{what} rows have width {tuple(given.shape[1:])}, the "
                                                  f"model's embeddings {dim}", component=COMPONENT)
    rows = _padded_rows(new_vocab, old_rows - old_vocab, pad_to_multiple_of)
    mapping = map_shared_tokens(old_tokenizer, new_tokenizer)
    generator = torch.Generator().manual_seed(seed)
    changes = []
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        weight, filled = _new_table(emb.weight, old_vocab, new_vocab, rows, mapping, init, new_tokenizer,
                                    generator, table)
        head_weight = head_filled = bias = None
        if head is not None and not tied:
            head_weight, head_filled = _new_table(head.weight, old_vocab, new_vocab, rows, mapping, init,
                                                  new_tokenizer, generator, head_table)
        if head is not None and getattr(head, "bias", None) is not None:
            bias, _ = _new_table(head.bias, old_vocab, new_vocab, rows, mapping, "mean", new_tokenizer,
                                 generator)
    reverse = {o: n for n, o in reversed(mapping.items())}  # the first new id of each old token
    padding_idx = getattr(emb, "padding_idx", None)
    _set_weight(emb, weight, rows, "num_embeddings")
    changes.append(Change("input_embeddings", f"{old_rows}x{dim}", f"{rows}x{dim}", _describe(filled, init)))
    if padding_idx is not None:
        carried = reverse.get(padding_idx, new_tokenizer.pad_id)
        emb.padding_idx = carried
        if carried != padding_idx:
            changes.append(Change("input_embeddings.padding_idx", repr(padding_idx), repr(carried)))
    if head is not None:
        if tied:
            head.weight = emb.weight
            if hasattr(head, "out_features"):
                head.out_features = rows
            detail = "tied to the input embeddings"
        else:
            _set_weight(head, head_weight, rows, "out_features")
            detail = _describe(head_filled, init)
        if bias is not None:
            head.bias = torch.nn.Parameter(bias, requires_grad=head.bias.requires_grad)
            detail += "; bias rows follow their tokens"
        changes.append(Change("output_embeddings", f"{old_rows}x{dim}", f"{rows}x{dim}", detail))
    changes += _set_vocab_size(model, rows)
    changes += _remap_special_ids(model, new_tokenizer, reverse, old_vocab)
    notes = []
    stale = getattr(head, MASK_HANDLE, None)
    if stale is not None:  # a mask from an earlier transplant, for the old row count
        stale.remove()
        delattr(head, MASK_HANDLE)
        changes.append(Change("output_embeddings.forward", "padding rows masked", "mask removed"))
    if filled["padding_added"] and head is not None:
        mask_padding_rows(model, new_vocab + filled["padding_kept"])
        changes.append(Change("output_embeddings.forward", "logits of every row",
                              f"rows {new_vocab + filled['padding_kept']}..{rows - 1} masked to -inf",
                              "a forward hook: not saved with the weights"))
    shared = len(mapping)
    notes.append(f"{shared} of {new_vocab} new tokens shared with the old vocabulary of {old_vocab} "
                 f"({100 * shared / max(new_vocab, 1):.1f}%)")
    if shared < new_vocab and table is None:
        notes.append(f"{new_vocab - shared} new token rows were initialised, not learned: fine-tune them")
    return ModelReport(COMPONENT, tuple(changes), tuple(notes))


def _set_vocab_size(model: Any, rows: int) -> list[Change]:
    changes = []
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for where, cfg in (("config", config), ("text_config", text)):
        if where == "text_config" and cfg is config:
            continue
        before = getattr(cfg, "vocab_size", None)
        if before != rows:
            cfg.vocab_size = rows
            changes.append(Change(f"{where}.vocab_size", repr(before), repr(rows)))
    for module in {id(m): m for m in (model, getattr(model, "base_model", model))}.values():
        if isinstance(getattr(module, "vocab_size", None), int):
            module.vocab_size = rows  # transformers keeps a copy (e.g. LlamaForCausalLM.vocab_size)
    return changes
