"""The ``dupmae-retrieval`` benchmark (``tokensmith bench dupmae-retrieval``): all-MiniLM-L6-v2
pre-trained further with DupMAE (Xiao & Liu, 2022, arXiv 2211.08769) through the core recipe
runner, against the same MiniLM untouched, on question → paragraph retrieval.

- **Held-out pairs**: ``squad-shifts`` (SQuAD v1.1 dev) articles are split by title (a seeded
  hash, :func:`tokensmith.split_of`); from the held-out articles, the first question of each
  paragraph and that paragraph make one pair (up to ``pairs``). The passage pool is those
  paragraphs; each question's gold is its own.
- **Training text** (no held-out article in it): paragraphs of the other squad-shifts articles,
  the Lee background corpus (``lee-corpus``) and inputs of ``natural-instructions``, read from
  tokensmith-datasets.
- **Scores**: recall@1, recall@5 and MRR of cosine similarity for vanilla MiniLM's [CLS] and
  mean pooling (its own pooling), and for the DupMAE model's [CLS], mean, sparse OT vector and
  the aggregated CLS ⊕ OT representation (:func:`tokensmith_dupmae.model.aggregate`).
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    DataUnavailableError,
    Provenance,
    Report,
    Runtime,
    Series,
    Table,
    non_negative,
    non_negative_int,
    positive,
    positive_int,
    probability,
    progress,
    ratio,
    split_of,
)

_OPTIONAL_POSITIVE = attrs.validators.optional(positive_int)
COMPONENT = "benchmark 'dupmae-retrieval'"
FULL = {"pairs": 200, "steps": 20, "squad_passages": 160, "lee_documents": 40, "instructions": 40}
QUICK = {"pairs": 16, "steps": 2, "squad_passages": 12, "lee_documents": 4, "instructions": 4}
METHODS = ("minilm cls", "minilm mean", "dupmae cls", "dupmae mean", "dupmae ot", "dupmae cls+ot")


def retrieval_pairs(
    registry: Any, *, pairs: int, train_passages: int, eval_fraction: float, seed: int
) -> tuple[list[str], list[str], list[str]]:
    """``(questions, passages, training paragraphs)``: one pair per paragraph of the held-out
    articles, and paragraphs of the other articles; streamed, stopping once both are full."""
    dataset = registry.build("dataset", {"type": "squad-shifts", "eval_fraction": 0.0})
    questions: list[str] = []
    passages: list[str] = []
    seen: set[str] = set()
    training: list[str] = []
    for example in dataset.examples("all"):
        context, question = example["context"], example["question"]
        if context in seen or not context or not question:
            continue
        seen.add(context)
        if split_of(example["title"], eval_fraction=eval_fraction, seed=seed) == "eval":
            if len(passages) < pairs:
                questions.append(question)
                passages.append(context)
        elif len(training) < train_passages:
            training.append(context)
        if len(passages) >= pairs and len(training) >= train_passages:
            break
    if len(passages) < pairs:
        raise DataUnavailableError(
            f"squad-shifts gave {len(passages)} held-out pairs, {pairs} were asked",
            component=COMPONENT,
            hint="ask fewer pairs or raise eval_fraction",
        )
    return questions, passages, training


def training_texts(registry: Any, squad: list[str], *, lee_documents: int, instructions: int) -> list[str]:
    """The pre-training texts: the squad paragraphs, Lee background documents and the inputs of
    natural-instructions examples (each source read only as far as needed)."""
    texts = list(squad)
    lee = registry.build(
        "dataset", {"type": "lee-corpus", "part": "background", "limit": lee_documents, "eval_fraction": 0.0}
    )
    texts.extend(e["text"] for e in lee.examples("all") if e["text"].strip())
    ni = registry.build(
        "dataset", {"type": "natural-instructions", "limit": instructions, "eval_fraction": 0.0}
    )
    texts.extend(e["input"] for e in ni.examples("all") if e["input"].strip())
    return texts


def _batches(tokenizer: Any, texts: list[str], size: int, max_tokens: int) -> Any:
    """Right-padded id batches of the texts; a text longer than ``max_tokens`` keeps its first
    ``max_tokens`` tokens (the retrieval encoders' usual cut, said in the report's notes)."""
    import torch

    from .model import encode_texts

    ids = [row[:max_tokens] for row in encode_texts(tokenizer, texts, COMPONENT)]
    for start in range(0, len(ids), size):
        rows = ids[start : start + size]
        width = max(map(len, rows))
        batch = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(batch)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        yield batch, mask


def encode(
    model: Any, tokenizer: Any, texts: list[str], *, top_k: int, max_tokens: int, desc: str, ot: bool = True
) -> dict[str, Any]:
    """Every representation of every text, L2-normalised (cosine = dot product)."""
    import torch

    model.eval()
    parts: dict[str, list[Any]] = {}
    total = (len(texts) + 15) // 16
    for ids, mask in progress(
        _batches(tokenizer, texts, 16, max_tokens), total=total, desc=desc, unit="batch"
    ):
        for key, value in model.representations(ids, mask, top_k=top_k, ot=ot).items():
            parts.setdefault(key, []).append(value)
    return {k: torch.nn.functional.normalize(torch.cat(v), dim=-1) for k, v in parts.items()}


def retrieval_scores(queries: Any, passages: Any) -> dict[str, float]:
    """recall@1, recall@5 and MRR when query i's gold passage is passage i."""
    import torch

    scores = queries @ passages.T
    gold = scores.diagonal()[:, None]
    rank = (scores > gold).sum(1) + 1  # ties count in the gold's favour
    return {
        "recall@1": float((rank <= 1).float().mean()),
        "recall@5": float((rank <= 5).float().mean()),
        "mrr": float((1.0 / rank.to(torch.float64)).mean()),
    }


@attrs.define
class DupMAERetrieval(Benchmark):
    """Vanilla MiniLM vs MiniLM pre-trained with DupMAE, on held-out question → paragraph pairs."""

    name = "dupmae-retrieval"
    pairs: int | None = attrs.field(
        default=None,
        validator=_OPTIONAL_POSITIVE,
        metadata={
            "doc": f"held-out question/paragraph pairs (default {FULL['pairs']}; quick {QUICK['pairs']})"
        },
    )
    steps: int | None = attrs.field(
        default=None,
        validator=_OPTIONAL_POSITIVE,
        metadata={"doc": f"DupMAE optimizer steps (default {FULL['steps']}; quick {QUICK['steps']})"},
    )
    batch_size: int = attrs.field(default=8, validator=positive_int, metadata={"doc": "texts per step"})
    max_length: int = attrs.field(
        default=64,
        validator=positive_int,
        metadata={"doc": "tokens per training text (longer ones are cut: [data] truncate)"},
    )
    encode_length: int = attrs.field(
        default=96,
        validator=positive_int,
        metadata={"doc": "tokens per encoded question or paragraph (longer ones are cut)"},
    )
    lr: float = attrs.field(
        default=1e-4,
        validator=positive,
        metadata={"doc": "AdamW learning rate"},
    )
    bow_weight: float = attrs.field(
        default=0.1, validator=non_negative, metadata={"doc": "λ_bow (paper code: 0.1)"}
    )
    encoder_mask_ratio: float = attrs.field(
        default=0.3, validator=probability, metadata={"doc": "encoder whole-word mask ratio (paper: 0.3)"}
    )
    decoder_mask_ratio: float = attrs.field(
        default=0.5, validator=probability, metadata={"doc": "decoder mask ratio (paper: 0.5)"}
    )
    top_k: int = attrs.field(
        default=256, validator=positive_int, metadata={"doc": "entries kept in the sparse OT vector"}
    )
    eval_fraction: float = attrs.field(
        default=0.3,
        validator=probability,
        metadata={"doc": "share of squad-shifts articles held out for the pairs"},
    )
    seed: int = attrs.field(
        default=0, validator=non_negative_int, metadata={"doc": "seed of split, head, run"}
    )
    threads: int = attrs.field(default=2, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        from .objectives import DupMAELoss
        from .recipe import DupMAERecipe

        setup = dict(QUICK if quick else FULL)
        setup["pairs"] = self.pairs or setup["pairs"]
        setup["steps"] = self.steps or setup["steps"]
        registry = self.registry()
        pipeline = self.cpu_pipeline("minilm", threads=self.threads, seed=self.seed)
        tokenizer = pipeline.tokenizer
        questions, passages, squad = retrieval_pairs(
            registry,
            pairs=setup["pairs"],
            train_passages=setup["squad_passages"],
            eval_fraction=self.eval_fraction,
            seed=self.seed,
        )
        texts = training_texts(
            registry, squad, lee_documents=setup["lee_documents"], instructions=setup["instructions"]
        )
        held_out = set(passages)
        leaked = sum(t in held_out for t in texts)
        recipe = DupMAERecipe(
            encoder_mask_ratio=self.encoder_mask_ratio,
            decoder_mask_ratio=self.decoder_mask_ratio,
            head_seed=self.seed,
        )
        vanilla = recipe.prepare(copy.deepcopy(pipeline.model), _Prepare(tokenizer))
        results: dict[str, dict[str, float]] = {}
        kw = {"top_k": self.top_k, "max_tokens": self.encode_length}
        q = encode(vanilla, tokenizer, questions, desc="vanilla: questions", ot=False, **kw)
        p = encode(vanilla, tokenizer, passages, desc="vanilla: passages", ot=False, **kw)
        for pooling in ("cls", "mean"):
            results[f"minilm {pooling}"] = retrieval_scores(q[pooling], p[pooling])
        del vanilla
        import tokensmith

        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tokensmith-bench-dupmae-") as out:
            run = tokensmith.run_recipe(
                model=pipeline.model,
                tokenizer=tokenizer,
                train_data=[{"text": t} for t in texts],
                objectives=[DupMAELoss(bow_weight=self.bow_weight)],
                recipe=recipe,
                data={"max_length": self.max_length, "truncate": True, "bos": False, "eos": False},
                arguments={
                    "steps": setup["steps"],
                    "batch_size": self.batch_size,
                    "lr": self.lr,
                    "warmup": max(1, setup["steps"] // 10),
                    "schedule": "linear",
                    "weight_decay": 0.01,
                    "seed": self.seed,
                    "save_final": False,
                    "progress": "plain",
                },
                runtime=Runtime(device="cpu", dtype="float32", seed=self.seed, threads=self.threads),
                output_dir=Path(out) / "run",
                registry=registry,
            )
        seconds = time.perf_counter() - start
        trained = run.model
        q = encode(trained, tokenizer, questions, desc="dupmae: questions", **kw)
        p = encode(trained, tokenizer, passages, desc="dupmae: passages", **kw)
        for pooling, key in (("cls", "cls"), ("mean", "mean"), ("ot", "ot"), ("cls+ot", "aggregated")):
            results[f"dupmae {pooling}"] = retrieval_scores(q[key], p[key])
        provenance = Provenance.collect(
            registry,
            Runtime(device="cpu", dtype="float32", seed=self.seed, threads=self.threads),
            "minilm",
            self.seed,
        )
        return to_report(
            results,
            run.losses,
            {
                **setup,
                "train_texts": len(texts),
                "leaked_passages": leaked,
                "train_seconds": round(seconds, 1),
                "batch_size": self.batch_size,
                "max_length": self.max_length,
                "encode_length": self.encode_length,
                "lr": self.lr,
                "bow_weight": self.bow_weight,
                "encoder_mask_ratio": self.encoder_mask_ratio,
                "decoder_mask_ratio": self.decoder_mask_ratio,
                "top_k": self.top_k,
                "quick": quick,
                "seed": self.seed,
            },
            provenance,
        )


@attrs.define
class _Prepare:
    """The part of a TrainContext the recipe's ``prepare`` reads, for the untrained model."""

    tokenizer: Any
    settings: Any = None


def to_report(
    results: dict[str, dict[str, float]],
    losses: list[tuple[int, float]],
    setup: dict[str, Any],
    provenance: Provenance | None = None,
) -> Report:
    """Scores per method, the gains over vanilla MiniLM's mean pooling and [CLS], the loss curve."""
    metrics: dict[str, float] = {"pairs": setup["pairs"], "steps": setup["steps"]}
    rows = []
    for method in METHODS:
        scores = results[method]
        rows.append((method, scores["recall@1"], scores["recall@5"], scores["mrr"]))
        for key, value in scores.items():
            metrics[f"{key}[{method}]"] = value
    for baseline in ("minilm mean", "minilm cls"):
        for method in ("dupmae cls", "dupmae cls+ot"):
            metrics[f"mrr_ratio[{method} / {baseline}]"] = ratio(
                results[method]["mrr"], results[baseline]["mrr"]
            )
    series = [
        Series(key, METHODS, tuple(results[m][key] for m in METHODS), plot="bar", group="retrieval")
        for key in ("recall@1", "recall@5", "mrr")
    ]
    if losses:
        series.append(
            Series(
                "train loss",
                tuple(s for s, _ in losses),
                tuple(v for _, v in losses),
                "step",
                "L_cls + λ L_bow + L_enc",
                group="DupMAE training loss",
            )
        )
    notes = (
        "all-MiniLM-L6-v2 (already contrastively fine-tuned by sentence-transformers), pre-trained further "
        f"with DupMAE through the core recipe runner: {setup['steps']} steps of {setup['batch_size']} texts "
        f"(at most {setup['max_length']} tokens), lr {setup['lr']:g}, λ_bow {setup['bow_weight']:g}, "
        f"encoder mask {setup['encoder_mask_ratio']:g}, decoder mask {setup['decoder_mask_ratio']:g}; "
        "no contrastive fine-tuning afterwards (the paper fine-tunes on MS MARCO with hard negatives)",
        f"{setup['train_texts']} training texts: squad-shifts paragraphs of the articles not held out, Lee "
        f"background documents, natural-instructions inputs; held-out paragraphs among them: "
        f"{setup['leaked_passages']}",
        f"{setup['pairs']} held-out squad-shifts question -> paragraph pairs (one per paragraph), cosine "
        f"similarity against all {setup['pairs']} paragraphs; texts cut to {setup['encode_length']} tokens",
        f"cls+ot: [CLS] and the ReLU'd max-pooled OT logits kept to their top {setup['top_k']} entries, each "
        "L2-normalised, concatenated (score = mean of the two cosines); the [CLS] part is not "
        "dimension-reduced (the paper's reduction is learned in the fine-tuning stage we do not run)",
        "paper (arXiv 2211.08769, BERT-base, pre-trained on Wikipedia+BookCorpus / MS MARCO, then "
        "fine-tuned): MS MARCO dev MRR@10 42.58; BEIR zero-shot gains over RetroMAE and BERT",
    )
    provenance = provenance or Provenance()
    return Report(
        name="dupmae-retrieval",
        metrics=metrics,
        tables=(
            Table(
                "retrieval on held-out squad-shifts pairs",
                ("method", "recall@1", "recall@5", "MRR"),
                tuple(rows),
            ),
        ),
        series=tuple(series),
        notes=notes,
        provenance=attrs.evolve(provenance, extra={**provenance.extra, "setup": dict(setup)}),
    )
