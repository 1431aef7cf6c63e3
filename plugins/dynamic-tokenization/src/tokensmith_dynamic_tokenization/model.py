"""Running a causal LM on dynamically tokenized text, through ``inputs_embeds``.

Feher, Vulić & Minixhofer (arXiv 2411.18553), sections 3.2-3.3 and 5 (decoders): the
embeddings of a batch's tokens — the model's own rows for tokens of its vocabulary, an
initializer's (a hypernetwork in the paper; see :mod:`.initializers`) for the new ones, kept
in an LRU cache — are fed to the unchanged model as ``inputs_embeds``. Two ways to score:

- ``score`` (the paper's dynamic-vocabulary decoder): the next token is predicted over the
  model's output vocabulary *plus* the batch's new tokens, whose output rows come from the
  initializer too (the paper predicts output embeddings for a 1M-token vocabulary and searches
  them approximately; a batch's new tokens are few enough to score exactly). Every byte of the
  text is scored, so bits per byte compare with the static tokenization.
- ``score_prefill`` (the paper's prefilling): a dynamically tokenized context, then a
  continuation in the model's own tokens scored with its own output vocabulary.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tokensmith import ContextLengthError, InputError, Tokenizer, require_ids

from .dynamic_bpe import DynamicBatch
from .initializers import MergedTokenInitializer

COMPONENT = "dynamic tokenization"


class DynamicLM:
    """A causal transformers model, its tokenizer and an initializer for new tokens.

    ``start_ids`` (BOS) are prepended to every row, as :func:`tokensmith.score_texts` does;
    rows are run ``micro_batch`` at a time (the merges are the batch's; the forward of a row
    does not depend on the others). ``cache_size`` new-token embeddings are kept (LRU, keyed
    by side and pieces); call :meth:`clear_cache` after changing the model's weights.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Tokenizer,
        initializer: MergedTokenInitializer,
        *,
        start_ids: Sequence[int] = (),
        context_length: int | None = None,
        micro_batch: int = 4,
        cache_size: int = 4096,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.initializer = initializer
        self.start_ids = tuple(require_ids(start_ids, tokenizer.vocab_size, COMPONENT))
        cfg = model.config
        self.context_length = int(context_length or getattr(cfg, "max_position_embeddings", 0) or 2048)
        self.micro_batch = micro_batch
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[bool, tuple[int, ...]], Any] = OrderedDict()
        self.cache_hits = 0

    @classmethod
    def from_pipeline(cls, pipeline: Any, initializer: MergedTokenInitializer, **kwargs: Any) -> DynamicLM:
        lm = getattr(pipeline, "lm", None)
        if lm is None or not hasattr(getattr(pipeline, "model", None), "get_input_embeddings"):
            raise InputError(
                "needs a pipeline with a causal transformers model",
                component=COMPONENT,
                hint="tokensmith eval dynamic-tokenization --model smollm2",
            )
        return cls(
            pipeline.model,
            pipeline.tokenizer,
            initializer,
            start_ids=lm.start_ids,
            context_length=lm.context_length,
            **kwargs,
        )

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- embeddings ------------------------------------------------------------------------

    def new_embeddings(self, batch: DynamicBatch, *, output: bool = False) -> Any:
        """``[len(batch.new_tokens), hidden]``: the initializer's vectors for the new tokens."""
        import torch

        keys = [(output, batch.pieces_of[t]) for t in batch.new_tokens]
        missing = [k for k in dict.fromkeys(keys) if k not in self._cache]
        if missing:
            vectors = self.initializer.embed_tokens(
                self.model, self.tokenizer, [k[1] for k in missing], output=output
            )
            width = self.model.get_input_embeddings().weight.shape[1]
            if tuple(getattr(vectors, "shape", ())) != (len(missing), width):
                raise InputError(
                    f"the initializer returned shape {tuple(getattr(vectors, 'shape', ()))} for "
                    f"{len(missing)} tokens; expected ({len(missing)}, {width})",
                    component=COMPONENT,
                    hint="embed_tokens returns one row of the model's width per token",
                )
            if not torch.isfinite(vectors).all():
                raise InputError("the initializer returned non-finite embeddings", component=COMPONENT)
            for k, v in zip(missing, vectors.detach()):
                self._cache[k] = v
        self.cache_hits += len(keys) - len(missing)
        rows = [self._cache[k] for k in keys]
        for k in keys:
            self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        weight = self.model.get_input_embeddings().weight
        return torch.stack(rows) if rows else weight.new_empty((0, weight.shape[1]))

    def _row_embeds(self, batch: DynamicBatch, r: int, new_in: Any, tail: Sequence[int] = ()) -> Any:
        import torch

        embed = self.model.get_input_embeddings()
        row = batch.rows[r]
        # vocabulary tokens (and BOS, and a continuation) go through the model's own embedding
        # module: exactly the vectors input_ids would give; new tokens are filled in after
        ids = list(self.start_ids) + [t.id if t.id is not None else 0 for t in row] + list(tail)
        if len(ids) > self.context_length:
            raise ContextLengthError(
                f"text {r} is {len(ids)} tokens long (with BOS{' and continuation' if tail else ''}), more "
                f"than the model's context of {self.context_length}",
                component=COMPONENT,
                hint="use shorter texts (the evaluation's passage_chars)",
            )
        vectors = embed(torch.tensor(ids, device=embed.weight.device))
        new_at = [(len(self.start_ids) + k, batch.new_index(t)) for k, t in enumerate(row) if t.id is None]
        if new_at:
            vectors = vectors.clone()
            positions = torch.tensor([p for p, _ in new_at], device=vectors.device)
            which = torch.tensor([n for _, n in new_at], device=vectors.device)
            vectors[positions] = new_in[which].to(vectors.dtype)
        return vectors

    # -- forward ---------------------------------------------------------------------------

    def _forward(self, embeds: list[Any], *, hidden: bool = False) -> tuple[Any, Any]:
        """Right-padded forward of rows of embeddings: logits ``[b, T, V]`` and, with ``hidden``,
        the head's input ``[b, T, d]`` (the final hidden states)."""
        import torch

        width = max(e.shape[0] for e in embeds)
        first = embeds[0]
        x = first.new_zeros((len(embeds), width, first.shape[1]))
        mask = torch.zeros((len(embeds), width), dtype=torch.long, device=first.device)
        for b, e in enumerate(embeds):
            x[b, : e.shape[0]] = e
            mask[b, : e.shape[0]] = 1
        captured: list[Any] = []
        handle = None
        if hidden:
            handle = self.model.get_output_embeddings().register_forward_pre_hook(
                lambda module, args: captured.append(args[0])
            )
        try:
            with torch.no_grad():
                logits = self.model(inputs_embeds=x, attention_mask=mask).logits
        finally:
            if handle is not None:
                handle.remove()
        return logits, (captured[0] if hidden else None)

    def _chunks(self, n: int) -> list[range]:
        return [range(i, min(i + self.micro_batch, n)) for i in range(0, n, self.micro_batch)]

    def logits(self, batch: DynamicBatch) -> list[Any]:
        """Per row, the original-vocabulary logits ``[len(start_ids) + len(row), V]`` of the model
        run on the row's embeddings (with zero merges: the model's logits on its own ids)."""
        new_in = self.new_embeddings(batch)
        out = []
        for chunk in self._chunks(len(batch.rows)):
            embeds = [self._row_embeds(batch, r, new_in) for r in chunk]
            logits, _ = self._forward(embeds)
            out += [logits[b, : e.shape[0]] for b, e in enumerate(embeds)]
        return out

    def score(self, batch: DynamicBatch) -> list[float]:
        """Per row, the negative log-likelihood (nats) of its dynamic tokens, each predicted over
        the output vocabulary plus the batch's new tokens (output rows from the initializer; a
        head bias, if any, is the mean of the pieces' biases)."""
        import torch

        if not self.start_ids:
            raise InputError(
                "scoring needs start ids (BOS) to condition the first token on", component=COMPONENT
            )
        new_in = self.new_embeddings(batch)
        new_out = self.new_embeddings(batch, output=True)
        head = self.model.get_output_embeddings()
        new_bias = None
        if getattr(head, "bias", None) is not None and batch.new_tokens:
            new_bias = torch.stack([head.bias[list(batch.pieces_of[t])].mean() for t in batch.new_tokens])
        s = len(self.start_ids)
        out = []
        for chunk in self._chunks(len(batch.rows)):
            embeds = [self._row_embeds(batch, r, new_in) for r in chunk]
            logits, hidden = self._forward(embeds, hidden=True)
            for b, r in enumerate(chunk):
                row = batch.rows[r]
                n = len(row)
                dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
                base = logits[b, s - 1 : s - 1 + n].to(dtype)
                extra = hidden[b, s - 1 : s - 1 + n].to(dtype) @ new_out.to(dtype).T
                if new_bias is not None:
                    extra = extra + new_bias.to(dtype)
                log_z = torch.logsumexp(torch.cat([base, extra], dim=1), dim=1)
                vocab = torch.tensor([t.id if t.id is not None else 0 for t in row], device=base.device)
                target = base.gather(1, vocab[:, None])[:, 0]
                news = [(k, batch.new_index(t)) for k, t in enumerate(row) if t.id is None]
                if news:
                    at = torch.tensor([k for k, _ in news], device=base.device)
                    idx = torch.tensor([i for _, i in news], device=base.device)
                    target = target.clone()
                    target[at] = extra[at, idx]
                out.append(float((log_z - target).sum()))
        return out

    def score_prefill(self, batch: DynamicBatch, continuations: Sequence[Sequence[int]]) -> list[float]:
        """Per row, the negative log-likelihood (nats) of ``continuations[r]`` (the model's own
        ids, its own output vocabulary) after the row's dynamically tokenized context."""
        import torch

        if len(continuations) != len(batch.rows):
            raise InputError(
                f"{len(continuations)} continuations for {len(batch.rows)} contexts", component=COMPONENT
            )
        tails = [require_ids(c, self.tokenizer.vocab_size, COMPONENT) for c in continuations]
        if any(not t for t in tails):
            raise InputError("a continuation is empty: there is nothing to score", component=COMPONENT)
        new_in = self.new_embeddings(batch)
        s = len(self.start_ids)
        out = []
        for chunk in self._chunks(len(batch.rows)):
            embeds = [self._row_embeds(batch, r, new_in, tails[r]) for r in chunk]
            logits, _ = self._forward(embeds)
            for b, r in enumerate(chunk):
                at = s + len(batch.rows[r]) - 1
                rows = logits[b, at : at + len(tails[r])]
                dtype = torch.float64 if rows.dtype == torch.float64 else torch.float32
                logp = torch.log_softmax(rows.to(dtype), dim=-1)
                target = torch.tensor(tails[r], device=logp.device)
                out.append(float(-logp.gather(1, target[:, None]).sum()))
        return out
