"""The ``dynamic-tokenization`` evaluation: sequence-length reduction against the loss, over the
number of batch-level merges.

Feher, Vulić & Minixhofer (arXiv 2411.18553), sections 4-5: the paper reports task scores
against the reduction in sequence length that a number of merges per batch gives (its
merges -> sequence-length curve picks the merges for a target reduction). A model's loss under
two segmentations of a text is only comparable per byte of the text, so this reports bits per
byte of the same held-out passages (the core's :func:`tokensmith.bits_per_byte`), with zero
merges being exactly the model's own tokenization:

- ``dynamic``: every token of a passage dynamically tokenized, predicted over the model's
  vocabulary plus the batch's new tokens (:meth:`DynamicLM.score`);
- ``prefill``: the first part of each passage dynamically tokenized as the context, the rest
  scored in the model's own tokens (:meth:`DynamicLM.score_prefill`) — the paper's decoder use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import attrs

from tokensmith import (
    BuildContext,
    Evaluation,
    InputError,
    Report,
    Series,
    Table,
    bits_per_byte,
    non_negative_int,
    positive_int,
    progress,
)

from .dynamic_bpe import BOUNDARIES, BatchMerger, Boundary, MergeCurve
from .initializers import resolve_initializer
from .model import DynamicLM

NAME = "dynamic-tokenization"
COMPONENT = f"evaluation '{NAME}'"


def _merge_grid(instance: Any, attribute: Any, value: tuple[int, ...]) -> None:
    if not value or any(type(m) is not int or m < 0 for m in value) or list(value) != sorted(set(value)):
        raise ValueError(f"{attribute.name} must be increasing merge counts >= 0, got {value!r}")


def _fractions(instance: Any, attribute: Any, value: tuple[float, ...]) -> None:
    if any(not 0 < t < 1 for t in value):
        raise ValueError(f"{attribute.name} must be fractions in (0, 1), got {value!r}")


@attrs.define
class DynamicTokenizationEval(Evaluation):
    """Bits per byte of held-out passages against the sequence-length reduction, over the
    number of dynamic-BPE merges per batch (``dynamic`` and ``prefill`` scoring)."""

    name = NAME
    dataset: str | dict[str, Any] = attrs.field(
        default="licenses", metadata={"doc": "a registered dataset (name, or table with type and options)"}
    )
    field: str = attrs.field(default="text", metadata={"doc": "the dataset field holding the text"})
    split: Literal["train", "eval", "all"] = attrs.field(
        default="eval",
        validator=attrs.validators.in_(("train", "eval", "all")),
        metadata={"doc": "the dataset split read (held out: eval)"},
    )
    sample: int | None = attrs.field(
        default=16,
        validator=attrs.validators.optional(positive_int),
        metadata={"doc": "passages scored (documents are read in order until this many; None: all)"},
    )
    passage_chars: int = attrs.field(
        default=400,
        validator=positive_int,
        metadata={
            "doc": "a document is cut at pre-token boundaries into passages of about this many characters"
        },
    )
    passages_per_document: int | None = attrs.field(
        default=2,
        validator=attrs.validators.optional(positive_int),
        metadata={"doc": "passages taken from each document, its first ones (None: all)"},
    )
    batch_size: int = attrs.field(
        default=16, validator=positive_int, metadata={"doc": "passages per batch: the merges are the batch's"}
    )
    merges: tuple[int, ...] = attrs.field(
        default=(0, 32, 128, 512),
        validator=_merge_grid,
        metadata={
            "doc": "the merge counts per batch measured (increasing; 0 is the model's own tokenization)"
        },
    )
    boundary: Boundary = attrs.field(
        default="pretokens",
        validator=attrs.validators.in_(BOUNDARIES),
        metadata={"doc": "merge boundary: " + ", ".join(BOUNDARIES)},
    )
    initializer: str | dict[str, Any] = attrs.field(
        default="subtoken-mean",
        metadata={"doc": "the embedding component that embeds new tokens (embed_tokens)"},
    )
    prefill: bool = attrs.field(
        default=True, metadata={"doc": "also score continuations after a dynamic context"}
    )
    context_fraction: float = attrs.field(
        default=0.5,
        validator=[attrs.validators.gt(0), attrs.validators.lt(1)],
        metadata={
            "doc": "prefill: the share of a passage's characters (to a pre-token boundary) in the context"
        },
    )
    target_reductions: tuple[float, ...] = attrs.field(
        default=(0.05, 0.1, 0.17, 0.25),
        validator=_fractions,
        metadata={"doc": "sequence-length reductions whose merge counts the curve reports"},
    )
    micro_batch: int = attrs.field(
        default=4,
        validator=positive_int,
        metadata={"doc": "rows per forward pass (memory; results do not depend on it)"},
    )
    cache_size: int = attrs.field(
        default=4096,
        validator=non_negative_int,
        metadata={"doc": "new-token embeddings kept in the LRU cache"},
    )
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def _registry(self) -> Any:
        if self.ctx is not None and self.ctx.registry is not None:
            return self.ctx.registry
        from tokensmith import default_registry

        return default_registry()

    # -- the corpus, streamed ------------------------------------------------------------

    def passages(
        self, tokenizer: Any, *, sample: int | None, counts: dict[str, int]
    ) -> Iterator[tuple[str, int]]:
        """``(passage, cut)`` pairs, read lazily: each document cut at pre-token boundaries into
        passages of about ``passage_chars`` characters (a last short piece joins the one before,
        so every character of a passage taken is scored); ``cut`` is the pre-token boundary
        nearest ``context_fraction`` of the passage (0 when it has a single pre-token)."""
        dataset = self._registry().build("dataset", self.dataset)
        given = 0
        for example in dataset.examples(self.split):
            counts["documents"] += 1
            if self.field not in example:
                raise InputError(
                    f"dataset {self.dataset!r} has no field {self.field!r}",
                    component=COMPONENT,
                    hint="its fields: " + ", ".join(sorted(example)),
                )
            text = example[self.field]
            if not isinstance(text, str):
                raise InputError(
                    f"field {self.field!r} of dataset {self.dataset!r} is a {type(text).__name__}, not text",
                    component=COMPONENT,
                )
            if not text:
                counts["empty_documents"] += 1
                continue
            for k, passage in enumerate(self._cut(tokenizer, text)):
                if self.passages_per_document is not None and k >= self.passages_per_document:
                    break
                yield passage, self._context_cut(tokenizer, passage)
                given += 1
                if sample is not None and given >= sample:
                    return

    def _cut(self, tokenizer: Any, text: str) -> list[str]:
        pieces, start = [], 0
        for p in tokenizer.pretokenize(text):
            if p.span[0] - start >= self.passage_chars:
                pieces.append(text[start : p.span[0]])
                start = p.span[0]
        tail = text[start:]
        if pieces and len(tail) < self.passage_chars // 4:
            pieces[-1] += tail
        elif tail:
            pieces.append(tail)
        return pieces  # "".join(pieces) == text: every character of a document is in one passage

    def _context_cut(self, tokenizer: Any, passage: str) -> int:
        starts = [p.span[0] for p in tokenizer.pretokenize(passage) if p.span[0] > 0]
        if not starts:
            return 0
        goal = self.context_fraction * len(passage)
        return min(starts, key=lambda s: (abs(s - goal), s))

    # -- the measurement -----------------------------------------------------------------

    def run(self, target: Any, *, quick: bool = False) -> Report:
        tokenizer = self.tokenizer_of(target)
        initializer = resolve_initializer(self.initializer, self._registry(), COMPONENT)
        lm = DynamicLM.from_pipeline(
            target, initializer, micro_batch=self.micro_batch, cache_size=self.cache_size
        )
        sample = min(self.sample or 8, 8) if quick else self.sample
        grid = self.merges[:3] if quick else self.merges
        batch_size = min(self.batch_size, 8) if quick else self.batch_size
        counts = {"documents": 0, "empty_documents": 0}
        points = {m: {"nll": 0.0, "tokens": 0, "new": 0, "p_nll": 0.0, "p_ctx": 0} for m in grid}
        totals = {"bytes": 0, "base_tokens": 0, "p_bytes": 0, "p_base_ctx": 0, "passages": 0, "no_cut": 0}
        curves, texts_per_batch, reached = [], [], {m: 0 for m in grid}
        batches = _batched(self.passages(tokenizer, sample=sample, counts=counts), batch_size)
        # one step = one batch scored at one merge count (twice with prefill)
        steps = None if sample is None else -(-sample // batch_size) * len(grid) * (2 if self.prefill else 1)
        with progress(total=steps, desc=NAME, unit="score") as bar:
            for batch in batches:
                texts = [p for p, _ in batch]
                totals["passages"] += len(texts)
                totals["bytes"] += sum(len(t.encode("utf-8")) for t in texts)
                merger = BatchMerger(tokenizer, texts, boundary=self.boundary, component=COMPONENT)
                totals["base_tokens"] += merger.total_length
                for m in grid:
                    merger.run(m - len(merger.merges))
                    reached[m] += len(merger.merges) == m
                    dynamic = merger.batch()
                    point = points[m]
                    point["nll"] += sum(lm.score(dynamic))
                    point["tokens"] += dynamic.total_length
                    point["new"] += len(dynamic.new_tokens)
                    bar.update(1)
                merger.run(None, target_reduction=max(self.target_reductions, default=0.0))
                curves.append(merger.lengths)
                texts_per_batch.append(len(texts))
                if self.prefill:
                    self._prefill(tokenizer, lm, batch, grid, points, totals, bar)
        if not totals["passages"]:
            raise InputError(
                f"dataset {self.dataset!r} (split {self.split!r}) gave no text to score",
                component=COMPONENT,
                hint="pick another dataset or split",
            )
        return self._report(
            grid,
            points,
            totals,
            counts,
            MergeCurve.average(curves, texts_per_batch),
            reached,
            quick=quick,
            batch_size=batch_size,
            cache_hits=lm.cache_hits,
        )

    def _prefill(
        self,
        tokenizer: Any,
        lm: DynamicLM,
        batch: list,
        grid: tuple[int, ...],
        points: dict,
        totals: dict,
        bar: Any,
    ) -> None:
        cut = [(p[:c], p[c:]) for p, c in batch if c > 0]
        totals["no_cut"] += len(batch) - len(cut)
        if not cut:
            bar.update(len(grid))
            return
        tails = [list(tokenizer.encode(rest).ids) for _, rest in cut]
        totals["p_bytes"] += sum(len(rest.encode("utf-8")) for _, rest in cut)
        context = BatchMerger(tokenizer, [c for c, _ in cut], boundary=self.boundary, component=COMPONENT)
        totals["p_base_ctx"] += context.total_length
        for m in grid:
            context.run(m - len(context.merges))
            contexts = context.batch()
            points[m]["p_nll"] += sum(lm.score_prefill(contexts, tails))
            points[m]["p_ctx"] += contexts.total_length
            bar.update(1)

    def _report(
        self,
        grid: tuple[int, ...],
        points: dict,
        totals: dict,
        counts: dict,
        curve: MergeCurve,
        reached: dict,
        *,
        quick: bool,
        batch_size: int,
        cache_hits: int,
    ) -> Report:
        base = points[grid[0]]
        base_bpb = bits_per_byte(base["nll"], totals["bytes"])
        rows, bpb, reductions, p_bpb, p_red = [], [], [], [], []
        for m in grid:
            p = points[m]
            red = 1.0 - p["tokens"] / totals["base_tokens"]
            value = bits_per_byte(p["nll"], totals["bytes"])
            bpb.append(value)
            reductions.append(red)
            row: list[Any] = [
                m,
                p["tokens"],
                round(red, 4),
                round(value, 4),
                round(value - base_bpb, 4),
                p["new"],
            ]
            if self.prefill and totals["p_bytes"]:
                pv = bits_per_byte(p["p_nll"], totals["p_bytes"])
                pr = 1.0 - p["p_ctx"] / totals["p_base_ctx"]
                p_bpb.append(pv)
                p_red.append(pr)
                row += [round(pr, 4), round(pv, 4)]
            rows.append(tuple(row))
        columns = ["merges per batch", "tokens", "length reduction", "bits/byte", "Δ bits/byte", "new tokens"]
        if p_bpb:
            columns += ["prefill: context reduction", "prefill: continuation bits/byte"]
        metrics: dict[str, float | int] = {
            "passages": totals["passages"],
            "bytes": totals["bytes"],
            "base_tokens": totals["base_tokens"],
            "base_bits_per_byte": base_bpb,
            "max_merges": grid[-1],
            "reduction_at_max_merges": reductions[-1],
            "bits_per_byte_at_max_merges": bpb[-1],
            "bits_per_byte_change_at_max_merges": bpb[-1] - base_bpb,
        }
        if p_bpb:
            metrics |= {
                "prefill_base_bits_per_byte": p_bpb[0],
                "prefill_bits_per_byte_at_max_merges": p_bpb[-1],
                "prefill_context_reduction_at_max_merges": p_red[-1],
            }
        target_rows = []
        for t in self.target_reductions:
            needed = curve.merges_for(t)
            target_rows.append((f"{t:.0%}", needed))
            if needed is not None:
                metrics[f"merges_for_{round(t * 100)}pct_reduction"] = needed
        series = [
            Series(
                "bits/byte (dynamic)",
                list(grid),
                bpb,
                x_label="merges per batch",
                y_label="bits per byte",
                group="loss",
            ),
            Series(
                "length reduction",
                list(grid),
                reductions,
                x_label="merges per batch",
                y_label="reduction of sequence length",
                group="length",
            ),
            Series(
                "Δ bits/byte vs reduction",
                reductions,
                [v - base_bpb for v in bpb],
                x_label="sequence-length reduction",
                y_label="Δ bits per byte",
                group="trade-off",
            ),
        ]
        if p_bpb:
            series.insert(
                1,
                Series(
                    "bits/byte (prefill continuation)",
                    list(grid),
                    p_bpb,
                    x_label="merges per batch",
                    y_label="bits per byte",
                    group="loss",
                ),
            )
            series.append(
                Series(
                    "prefill: Δ bits/byte vs context reduction",
                    p_red,
                    [v - p_bpb[0] for v in p_bpb],
                    x_label="sequence-length reduction",
                    y_label="Δ bits per byte",
                    group="trade-off",
                )
            )
        notes = [
            f"dataset {self.dataset!r}, split {self.split!r}, field {self.field!r}: "
            f"{totals['passages']} passages of about {self.passage_chars} characters "
            f"({self.passages_per_document or 'all'} per document) from {counts['documents']} documents "
            f"read; batches of {batch_size} passages; boundary {self.boundary!r}; new-token embeddings "
            f"from {self.initializer!r} ({cache_hits} LRU cache hits)",
            "bits/byte (dynamic): every token predicted over the model's vocabulary plus the batch's new "
            "tokens, whose input and output rows come from the initializer; 0 merges is the model's own "
            "tokenization",
        ]
        if p_bpb:
            notes.append(
                f"prefill: the first {self.context_fraction:.0%} of each passage (to a pre-token boundary) "
                "dynamically tokenized as the context; the rest scored in the model's own tokens "
                f"({totals['p_bytes']} bytes)"
            )
        if totals["no_cut"]:
            notes.append(
                f"{totals['no_cut']} passages of a single pre-token have no context/continuation cut: "
                "they are in the dynamic scoring only"
            )
        if counts["empty_documents"]:
            notes.append(
                f"{counts['empty_documents']} documents had an empty {self.field!r}: nothing to score"
            )
        incomplete = [m for m in grid if reached[m] < _batches(totals["passages"], batch_size)]
        if incomplete:
            notes.append(
                f"some batches ran out of pairs before {incomplete[0]} merges (the paper's early exit): "
                "they keep their last tokenization"
            )
        if quick:
            notes.append("quick run: at most 8 passages and the first 3 merge counts")
        return Report(
            name=NAME,
            metrics=metrics,
            tables=(
                Table("curve over merges", tuple(columns), tuple(rows)),
                Table(
                    "merges per batch for a target reduction (the paper's merges -> length curve)",
                    ("target reduction", "merges"),
                    tuple(target_rows),
                ),
            ),
            series=tuple(series),
            notes=tuple(notes),
        )


def _batches(passages: int, batch_size: int) -> int:
    return -(-passages // batch_size)


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
