"""The short embedding fine-tune after a transplant, through the core recipe runner.

TokenAdapt: Sharthak, Pahalwan, Kamath & Shirawalmath, arXiv 2505.09738 (the transplant this
fine-tune follows; the paper itself reports zero-shot numbers).

Why it is shaped as it is (measured on SmolLM2, plugins/tokenadapt/README.md): AdamW normalises
every coordinate's step, so a row of the *tied* table that no token of the batch uses still moves
by about ``lr`` per coordinate: its only gradient is the softmax's push away from the hidden
states, tiny but rescaled to full size. At lr 2e-3 without warm-up that rewrote every row in a
dozen steps and a warm start got worse (hybrid 1.351 -> 1.461 bits/byte); at lr 3e-4 with warm-up
and no weight decay it no longer does (1.351 -> 1.348 over 40 steps). Two options are here to
test the other hypotheses: ``rows`` trains only some rows (the shared rows keep their copied
values bit for bit: their gradient is zeroed before AdamW sees it, so its moments stay 0 and the
update is exactly 0) and ``lazy`` trains in each step only the rows the batch looks up. On
SmolLM2 freezing the shared rows made the fine-tune worse, not better.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from tokensmith import InputError, Recipe, TrainContext, TrainResult, map_shared_tokens, run_recipe

COMPONENT = "tokenadapt fine-tune"


def new_rows(old: Any, new: Any) -> list[int]:
    """The ids of ``new`` that the old vocabulary lacks: the rows a transplant estimates."""
    shared = map_shared_tokens(old, new)
    return [i for i in range(new.vocab_size) if i not in shared]


def embedding_weights(model: Any) -> list[Any]:
    """The input table and, when it is a separate tensor (untied model), the output head's."""
    weights = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not weights[0]:
        weights.append(head.weight)
    return weights


class RowMask(Recipe):
    """A recipe for the core runner that trains only some rows of the embedding table (and of an
    untied head): a tensor hook multiplies the gradient by a 0/1 row mask before the optimizer
    sees it. ``rows``: the rows that may train (None: all). ``lazy``: in each micro-batch only
    the rows of the tokens that batch holds (as LazyAdam / ``torch.optim.SparseAdam`` update
    only the rows a batch looks up), read by a forward pre-hook on the input embedding; Adam's
    momentum from earlier steps still carries a row a few steps after its last batch. The hooks
    are removed at the end of training (and by :meth:`remove`)."""

    name = "tokenadapt-row-mask"

    def __init__(self, rows: Iterable[int] | None, lazy: bool = False):
        self.rows = None if rows is None else sorted(set(rows))
        self.lazy = lazy
        self.handles: list[Any] = []
        self.batch_ids: Any = None

    def prepare(self, model: Any, ctx: TrainContext) -> Any:
        import torch

        if self.lazy:
            def record(module: Any, args: tuple[Any, ...]) -> None:
                self.batch_ids = args[0].detach().reshape(-1).unique()

            self.handles.append(model.get_input_embeddings().register_forward_pre_hook(record))
        for weight in embedding_weights(model):
            rows = self.rows
            if rows and (rows[0] < 0 or rows[-1] >= weight.shape[0]):
                raise InputError(f"row ids must be within the table's {weight.shape[0]} rows, got "
                                 f"{rows[0]}..{rows[-1]}", component=COMPONENT)
            allowed = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
            allowed[slice(None) if rows is None else rows] = 1

            def masked(grad: Any, allowed: Any = allowed) -> Any:
                if not self.lazy:
                    return grad * allowed
                in_batch = torch.zeros_like(allowed)
                in_batch[self.batch_ids] = 1
                return grad * allowed * in_batch

            # a leaf's hook sees the summed gradient of both uses of a tied table
            self.handles.append(weight.register_hook(masked))
        return model

    def callbacks(self, ctx: TrainContext) -> list[Any]:
        from transformers import TrainerCallback

        recipe = self

        class RemoveHooks(TrainerCallback):
            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                recipe.remove()

        return [RemoveHooks()]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []


def fine_tune_embeddings(model: Any, tokenizer: Any, train_data: Sequence[dict[str, str]], *,
                         steps: int, batch_size: int, max_length: int, lr: float, warmup: int,
                         schedule: str, weight_decay: float, rows: Sequence[int] | None,
                         lazy: bool = False, seed: int, runtime: Any = None,
                         registry: Any = None, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Fine-tune the embedding table alone (tied head included) of ``model`` on ``train_data``
    (``{"text": ...}`` examples, packed into ``max_length`` blocks, EOS between texts: the way
    the held-out text is scored, each piece after the start id) through
    :func:`tokensmith.run_recipe`. ``rows``: the only rows that train (None: every row);
    ``lazy``: and of those only the rows of the tokens in each batch (:class:`RowMask`);
    ``callbacks``: more ``TrainerCallback``s for the runner (the benchmark's learning curve)."""
    names = [n for n, p in model.named_parameters()
             if any(p is w for w in embedding_weights(model))]
    recipe = None if rows is None and not lazy else RowMask(rows, lazy=lazy)
    try:
        with tempfile.TemporaryDirectory() as out:
            return run_recipe(model=model, tokenizer=tokenizer, train_data=list(train_data),
                              data={"max_length": max_length, "packing": True},
                              arguments={"steps": steps, "batch_size": batch_size, "lr": lr,
                                         "warmup": warmup, "schedule": schedule,
                                         "weight_decay": weight_decay, "trainable": names,
                                         "progress": "off", "save_final": False, "seed": seed,
                                         "report_files": "none"},  # a scratch folder: nothing to draw
                              recipe=recipe, callbacks=tuple(callbacks), runtime=runtime, output_dir=out,
                              registry=registry)
    finally:
        if recipe is not None:
            recipe.remove()
