"""Text2Token sentence embeddings (An et al., 2025, arXiv 2510.10224): e(x) is the pooled last
hidden state of the causal LM (after its final norm, the vector the LM head reads), by mean
pooling over the text's tokens (the brief's small-scale setting) or the last token.

Texts are encoded as plain text, without BOS/EOS, exactly as the `text2token` recipe trains
them (``[data] bos = false, eos = false``), so the embedding pools the tokens the targets were
built from. A text longer than ``max_length`` is a :class:`ContextLengthError`, never cut.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from tokensmith import ContextLengthError, InputError, progress

from .targets import POOLINGS, pool_hidden, pool_logits

COMPONENT = "text2token embeddings"


def encode_texts(tokenizer: Any, texts: Sequence[str], *, max_length: int,
                 component: str = COMPONENT) -> list[list[int]]:
    """The token ids of every text (no special tokens). Empty text, a non-string or a text longer
    than ``max_length`` tokens is an error naming its index."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {i} is {type(text).__name__}, not str", component=component)
        ids = list(tokenizer.encode(text).ids)
        if not ids:
            raise InputError(f"text {i} is empty (no token)", component=component,
                             hint="remove empty texts")
        if len(ids) > max_length:
            raise ContextLengthError(f"text {i} has {len(ids)} tokens, more than max_length={max_length}",
                                     component=component, hint="raise max_length (within the model's "
                                     "context) or give shorter texts; nothing is truncated")
        out.append(ids)
    return out


def pad(rows: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> tuple[Any, Any]:
    """(input_ids, attention_mask) of ``rows``, padded on ``side``."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row)
        span = slice(0, n) if side == "right" else slice(width - n, width)
        ids[i, span] = torch.tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def forward(model: Any, input_ids: Any, attention_mask: Any, *, hidden: bool = False) -> Any:
    """The model's outputs on a padded batch. Positions count the text's own tokens
    (``position_ids`` from the mask), so left padding gives a text the positions it has alone
    (needed for absolute position embeddings; rotary attention is shift-invariant anyway)."""
    import torch

    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
    names = inspect.signature(model.forward).parameters
    if "position_ids" in names:
        kwargs["position_ids"] = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
    if "use_cache" in names:
        kwargs["use_cache"] = False
    if hidden:
        kwargs["output_hidden_states"] = True
    with torch.no_grad():
        return model(**kwargs)


def pad_id(tokenizer: Any) -> int:
    for name in ("pad_id", "eos_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def embed(model: Any, tokenizer: Any, texts: Sequence[str], *, poolings: Sequence[str] = ("mean",),
          batch_size: int = 8, max_length: int = 512, padding_side: str = "right",
          desc: str = "embedding") -> dict[str, tuple[Any, Any]]:
    """pooling -> (e(x), W_U e(x)) for every text: (N, H) pooled last hidden states and (N, V) their
    vocabulary projection (the pooled logits), every pooling from the same forward. Batches are
    sorted by length (less padding); the rows are in the order of ``texts``."""
    import torch

    for pooling in poolings:
        if pooling not in POOLINGS:
            raise InputError(f"pooling {pooling!r} is not one of {POOLINGS}", component=COMPONENT)
    rows = encode_texts(tokenizer, texts, max_length=max_length)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out: dict[str, tuple[list[Any], list[Any]]] = {
        p: ([None] * len(rows), [None] * len(rows)) for p in poolings}
    model.eval()
    device = next(model.parameters()).device
    starts = range(0, len(order), batch_size)
    for start in progress(starts, total=len(starts), desc=desc, unit="batch"):
        index = order[start:start + batch_size]
        ids, mask = pad([rows[i] for i in index], pad_id(tokenizer), padding_side)
        ids, mask = ids.to(device), mask.to(device)
        result = forward(model, ids, mask, hidden=True)
        for pooling in poolings:
            e = pool_hidden(result.hidden_states[-1].float(), mask, pooling)
            z = pool_logits(result.logits.float(), mask, pooling)
            for j, i in enumerate(index):
                out[pooling][0][i], out[pooling][1][i] = e[j].cpu(), z[j].cpu()
    return {p: (torch.stack(e), torch.stack(z)) for p, (e, z) in out.items()}
