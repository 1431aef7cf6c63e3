"""The ``text2token`` benchmark (``tokensmith bench text2token``): SmolLM2 trained by Text2Token
(An et al., 2025, arXiv 2510.10224) through the core recipe runner with the two-stage
``text2token`` recipe, against the untrained model in the same run.

Training text (unlabelled): Lee background news documents (``lee-corpus``, part
``background``) and SQuAD-shifts New-Wikipedia paragraphs (``squad-shifts``, domain
``new_wiki``), both from tokensmith-datasets. Evaluation, on other texts:

- **STS**: the 50 Lee documents, cosine of their embeddings against the mean human similarity
  of the 1,225 pairs (``lee-similarity``): Spearman's ρ;
- **retrieval**: SQuAD v1.1 dev questions against their gold paragraphs (``squad-shifts``,
  ``squaddev``, one question per distinct paragraph): recall@1 and MRR by cosine;
- **token alignment** (the brief's invariant 3): the share of the top-10 tokens of W_U e(x)
  that are content tokens of x itself, before and after training.

Methods: the untrained model with mean pooling (the baseline, and also the pooling Text2Token
trains here) and with last-token pooling; a TF-IDF bag of tokens (cosine of the data-driven
target vectors π_data, the lexical signal stage 1 distils); the Text2Token-trained model with
mean pooling.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    DataUnavailableError,
    ModelSource,
    Provenance,
    Report,
    Runtime,
    Series,
    Table,
    non_negative_int,
    positive,
    positive_int,
    spearman,
)

from .targets import alignment, term_counts, top_tokens

_OPTIONAL_POSITIVE = attrs.validators.optional(positive_int)
NAME = "text2token"
FULL = {"steps": 16, "batch": 8, "max_length": 64, "train_texts": 128, "squad_pairs": 80, "lee_docs": 30}
QUICK = {"steps": 4, "batch": 4, "max_length": 32, "train_texts": 16, "squad_pairs": 12, "lee_docs": 8}
OPTIMISATION = {"schedule": "cosine", "weight_decay": 0.0, "grad_clip": 1.0}
EVAL_MAX_LENGTH = 2048
ALIGN_K = 10
METHODS = ("untrained mean", "untrained last", "tf-idf", "text2token mean")


# -- data ----------------------------------------------------------------------------

def _need(found: int, wanted: int, what: str) -> None:
    if found < wanted:
        raise DataUnavailableError(f"benchmark '{NAME}': only {found} {what}, {wanted} needed",
                                   hint="lower the corresponding sample parameter")


def training_texts(registry: Any, n: int) -> list[str]:
    """``n`` unlabelled texts, half Lee background documents and half New-Wikipedia paragraphs
    (alternating, so every batch sees both)."""
    half = n - n // 2
    lee = [e["text"] for e in itertools.islice(
        registry.build("dataset", {"type": "lee-corpus", "part": "background"}).examples("all"), half)]
    wiki: list[str] = []
    for example in registry.build("dataset", {"type": "squad-shifts", "domain": "new_wiki"}).examples("all"):
        if example["context"] not in wiki:
            wiki.append(example["context"])
        if len(wiki) >= n // 2:
            break
    _need(len(lee), half, "Lee background documents")
    _need(len(wiki), n // 2, "New-Wikipedia paragraphs")
    out = [t for pair in itertools.zip_longest(lee, wiki) for t in pair if t is not None]
    return out


def lee_pairs(registry: Any, docs: int) -> tuple[list[str], list[tuple[int, int, float]]]:
    """The first ``docs`` Lee documents and every pair of them with its human similarity."""
    texts: dict[int, str] = {}
    pairs = []
    for example in registry.build("dataset", {"type": "lee-similarity"}).examples("all"):
        a, b = int(example["a"]), int(example["b"])
        if a < docs and b < docs:
            texts[a], texts[b] = example["text_a"], example["text_b"]
            pairs.append((a, b, float(example["similarity"])))
    _need(len(texts), docs, "Lee documents")
    return [texts[i] for i in range(docs)], pairs


def squad_pairs(registry: Any, n: int) -> tuple[list[str], list[str]]:
    """``n`` (question, paragraph) pairs of SQuAD dev: the first question of each of the first
    ``n`` distinct paragraphs."""
    questions, paragraphs, seen = [], [], set()
    for example in registry.build("dataset", {"type": "squad-shifts"}).examples("all"):
        if example["context"] in seen:
            continue
        seen.add(example["context"])
        questions.append(example["question"])
        paragraphs.append(example["context"])
        if len(paragraphs) >= n:
            break
    _need(len(paragraphs), n, "SQuAD paragraphs")
    return questions, paragraphs


# -- metrics -------------------------------------------------------------------------

def cosine_matrix(a: Any, b: Any) -> Any:
    import torch

    a = torch.nn.functional.normalize(a.double(), dim=-1)
    b = torch.nn.functional.normalize(b.double(), dim=-1)
    return a @ b.T


def retrieval(queries: Any, documents: Any) -> tuple[float, float]:
    """(recall@1, MRR) of query i retrieving document i among all documents by cosine; a tie
    with the gold document counts against it (no credit for a constant embedding)."""
    scores = cosine_matrix(queries, documents)
    gold = scores.diagonal().unsqueeze(1)
    rank = (scores >= gold).sum(dim=1).double()  # 1 + documents scoring at least as high
    return float((rank == 1).double().mean()), float((1.0 / rank).mean())


def sts(embeddings: Any, pairs: Sequence[tuple[int, int, float]]) -> float:
    scores = cosine_matrix(embeddings, embeddings)
    rho = spearman([float(scores[a, b]) for a, b, _ in pairs], [s for _, _, s in pairs])
    return 0.0 if rho is None else rho  # undefined (constant scores): no correlation


# -- the run -------------------------------------------------------------------------

def evaluate(model: Any, tokenizer: Any, data: dict[str, Any], *, poolings: Sequence[str],
             allowed: Any, label: str) -> dict[str, dict[str, float]]:
    """STS, retrieval and token alignment of ``model`` for each pooling."""
    from .embed import embed, encode_texts

    lee = embed(model, tokenizer, data["lee_docs"], poolings=poolings, batch_size=4,
                max_length=EVAL_MAX_LENGTH, desc=f"{label}: Lee")
    questions = embed(model, tokenizer, data["questions"], poolings=poolings, batch_size=8,
                      max_length=EVAL_MAX_LENGTH, desc=f"{label}: questions")
    paragraphs = embed(model, tokenizer, data["paragraphs"], poolings=poolings, batch_size=4,
                       max_length=EVAL_MAX_LENGTH, desc=f"{label}: paragraphs")
    texts = data["lee_docs"] + data["paragraphs"]
    content = [{t for t in ids if bool(allowed[t])}
               for ids in encode_texts(tokenizer, texts, max_length=EVAL_MAX_LENGTH)]
    out = {}
    for pooling in poolings:
        r1, mrr = retrieval(questions[pooling][0], paragraphs[pooling][0])
        import torch

        projected = torch.cat([lee[pooling][1], paragraphs[pooling][1]])
        out[pooling] = {"spearman": sts(lee[pooling][0], data["lee_pairs"]), "recall@1": r1, "mrr": mrr,
                        "alignment": alignment(top_tokens(projected, ALIGN_K), content)}
    return out


def tfidf(loss: Any, tokenizer: Any, data: dict[str, Any]) -> dict[str, float]:
    """The lexical baseline: cosine of the data-driven target vectors π_data (TF-IDF, filtered)."""
    from .embed import encode_texts, pad

    weights = loss.target_weights()

    def vectors(texts: Sequence[str]) -> Any:
        # the unnormalised tf-idf scores (cosine ignores the scale); a text with no content
        # token is a zero vector here (cosine 0 to everything), not an error: a baseline scores it
        ids, mask = pad(encode_texts(tokenizer, texts, max_length=EVAL_MAX_LENGTH), 0)
        return term_counts(ids, mask, weights.shape[0]) * weights

    r1, mrr = retrieval(vectors(data["questions"]), vectors(data["paragraphs"]))
    return {"spearman": sts(vectors(data["lee_docs"]), data["lee_pairs"]), "recall@1": r1, "mrr": mrr}


def trainable_globs(model: Any, layers: int) -> list[str]:
    """The last ``layers`` decoder layers and the final norm of a Llama-style model (the LM head and
    the tied input table stay frozen: training them would move 28M of SmolLM2's 135M parameters)."""
    total = int(model.config.num_hidden_layers)
    return [f"model.layers.{i}.*" for i in range(max(0, total - layers), total)] + ["model.norm.*"]


def measure(*, quick: bool, steps: int | None = None, lr: float = 1e-4, seed: int = 0, threads: int = 2,
            train_layers: int = 4, model_source: str = "smollm2", registry: Any = None) -> dict[str, Any]:
    """Everything the report shows, as one mapping (see :func:`to_report`)."""
    import torch

    from tokensmith import Registry, run_recipe

    from .objectives import Text2Token, Text2TokenRecipe

    torch.set_num_threads(threads)
    registry = registry if registry is not None else Registry.from_environment()
    setup = dict(QUICK if quick else FULL)
    if steps is not None:
        setup["steps"] = steps
    runtime = Runtime(device="cpu", dtype="float32", seed=seed, threads=threads)
    source = ModelSource(model_source, {"progress": False} if model_source == "smollm2" else {})
    model, tokenizer = registry.load_model(source, runtime)
    lee_docs, pairs = lee_pairs(registry, setup["lee_docs"])
    questions, paragraphs = squad_pairs(registry, setup["squad_pairs"])
    data = {"lee_docs": lee_docs, "lee_pairs": pairs, "questions": questions, "paragraphs": paragraphs}
    train_texts = training_texts(registry, setup["train_texts"])
    train_rows = [list(tokenizer.encode(t).ids) for t in train_texts]
    truncated = sum(len(r) > setup["max_length"] for r in train_rows)
    loss = Text2Token().fit([r[:setup["max_length"]] for r in train_rows], tokenizer)
    allowed = loss.allowed()

    started = time.perf_counter()
    before = evaluate(model, tokenizer, data, poolings=("mean", "last"), allowed=allowed, label="untrained")
    eval_seconds = time.perf_counter() - started
    lexical = tfidf(loss, tokenizer, data)
    arguments = {**OPTIMISATION, "lr": lr, "steps": setup["steps"], "batch_size": setup["batch"],
                 "warmup": max(1, setup["steps"] // 10), "seed": seed, "progress": "plain",
                 "save_final": False, "trainable": trainable_globs(model, train_layers)}
    with tempfile.TemporaryDirectory(prefix="tokensmith-bench-text2token-") as out:
        result = run_recipe(model=model, tokenizer=tokenizer, train_data=[{"text": t} for t in train_texts],
                            objectives=[loss], recipe=Text2TokenRecipe(),
                            data={"max_length": setup["max_length"], "truncate": True, "bos": False,
                                  "eos": False},
                            arguments=arguments, output_dir=Path(out), runtime=runtime, registry=registry)
    after = evaluate(result.model, tokenizer, data, poolings=("mean",), allowed=allowed, label="text2token")
    return {"setup": setup, "seed": seed, "lr": lr, "quick": quick, "threads": threads, "model": model_source,
            "before": before, "after": after, "tfidf": lexical, "losses": result.losses,
            "train_seconds": result.seconds, "eval_seconds": eval_seconds, "truncated": truncated,
            "train_layers": train_layers,
            "train_texts": len(train_texts), "lee_pairs": len(pairs), "stage1_steps": setup["steps"] // 2,
            "trainable_parameters": result.report.metrics.get("trainable_parameters"),
            "documents_fitted": loss.n_documents}


def _scores(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {"untrained mean": results["before"]["mean"], "untrained last": results["before"]["last"],
            "tf-idf": results["tfidf"], "text2token mean": results["after"]["mean"]}


def to_report(results: dict[str, Any], provenance: Provenance | None = None) -> Report:
    """Per method: Spearman on Lee, recall@1 and MRR on SQuAD, token alignment; the training curve."""
    scores = _scores(results)
    setup = results["setup"]
    metrics: dict[str, float] = {"steps": setup["steps"], "stage1_steps": results["stage1_steps"],
                                 "train_texts": results["train_texts"],
                                 "truncated_train_texts": results["truncated"],
                                 "squad_pairs": setup["squad_pairs"], "lee_pairs": results["lee_pairs"]}
    for method in METHODS:
        for key, value in scores[method].items():
            metrics[f"{key}[{method}]"] = value
    for key in ("spearman", "recall@1", "mrr"):
        metrics[f"gain_{key}[text2token vs untrained mean]"] = (
            scores["text2token mean"][key] - scores["untrained mean"][key])
    metrics["train_seconds"] = results["train_seconds"]
    rows = tuple((m, scores[m]["spearman"], scores[m]["recall@1"], scores[m]["mrr"],
                  scores[m].get("alignment")) for m in METHODS)
    table = Table("Lee STS (Spearman), SQuAD question->paragraph retrieval (recall@1, MRR), token alignment "
                  f"(share of the top-{ALIGN_K} tokens of W_U e(x) that are the text's own content tokens)",
                  ("method", "Lee Spearman", "SQuAD R@1", "SQuAD MRR", "alignment"), rows)
    series = [Series(key, METHODS, tuple(scores[m][key] for m in METHODS), "method", key, plot="bar",
                     group="scores by method") for key in ("spearman", "recall@1", "mrr")]
    curve = results["losses"]
    series.append(Series("train KL", tuple(s for s, _ in curve), tuple(v for _, v in curve), "step",
                         "KL(pi || q) (nats)", group="training loss"))
    notes = (f"{results['model']}: {setup['steps']} optimizer steps through the core recipe runner with the "
             f"text2token recipe (stage 1, data-driven targets: steps 1-{results['stage1_steps']}; stage 2, "
             "0.5 data-driven + 0.5 the frozen stage-1 model's top-32: the rest), batch "
             f"{setup['batch']}, lr {results['lr']:g} cosine; trained: the last {results['train_layers']} "
             f"decoder layers and the final norm ({results['trainable_parameters']} parameters; the tied "
             "embedding / LM head W_U frozen)",
             f"training texts: {results['train_texts']} (Lee background documents and SQuAD-shifts "
             f"New-Wikipedia paragraphs), each its first {setup['max_length']} tokens "
             f"({results['truncated']} were longer and cut by the runner's truncate option); the targets' "
             f"document frequencies fitted on those {results['documents_fitted']} sequences",
             f"evaluation texts are not training texts: {setup['lee_docs']} Lee documents "
             f"({results['lee_pairs']} human-rated pairs), {setup['squad_pairs']} SQuAD v1.1 dev questions "
             "with one gold paragraph each, retrieved among all of them; embeddings are pooled over the "
             "text's tokens without BOS/EOS or a prompt",
             "'untrained mean' is also the untrained model with the pooling Text2Token trains (mean); "
             "'tf-idf' is the cosine of the data-driven targets pi_data (filtered TF-IDF bags of tokens)",
             "paper (arXiv 2510.10224): on MTEB v2 Text2Token is competitive with LLM2Vec (unsupervised "
             "contrastive) with 7B-class backbones and full training; here: a 135M model and minutes of CPU")
    provenance = provenance or Provenance()
    return Report(name=NAME, metrics=metrics, tables=(table,), series=tuple(series), notes=notes,
                  provenance=attrs.evolve(provenance, extra={
                      **provenance.extra, "quick": results["quick"], "threads": results["threads"],
                      "seed": results["seed"], "lr": results["lr"], "setup": dict(setup)}))


@attrs.define
class Text2TokenBenchmark(Benchmark):
    """SmolLM2 before and after a short two-stage Text2Token run, on STS and retrieval."""

    name = NAME

    steps: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": f"optimizer steps, both stages together (default {FULL['steps']}; quick {QUICK['steps']})"})
    lr: float = attrs.field(default=1e-4, validator=positive, metadata={"doc": "AdamW learning rate"})
    train_layers: int = attrs.field(default=4, validator=positive_int, metadata={
        "doc": "the last N decoder layers (and the final norm) train; the rest, W_U included, are frozen"})
    model: str = attrs.field(default="smollm2", validator=attrs.validators.instance_of(str), metadata={
        "doc": "the model source trained and measured"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={"doc": "seed of the run"})
    threads: int = attrs.field(default=2, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        registry = self.registry()
        results = measure(quick=quick, steps=self.steps, lr=self.lr, seed=self.seed, threads=self.threads,
                          train_layers=self.train_layers, model_source=self.model, registry=registry)
        runtime = Runtime(device="cpu", dtype="float32", seed=self.seed, threads=self.threads)
        return to_report(results, Provenance.collect(registry, runtime, self.model, self.seed))
