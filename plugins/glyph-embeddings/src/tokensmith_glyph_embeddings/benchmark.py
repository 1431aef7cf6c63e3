"""The ``glyph-embeddings`` benchmark (``tokensmith bench glyph-embeddings``): the comparison of
Bochkov (TMLR 2025, arXiv 2507.04886) at toy scale. Two tiny Llamas over the same
``unicode-ngrams`` vocabulary (learned on the Lee background news corpus of tokensmith-datasets)
are trained from scratch through the core recipe runner with the same windows in the same
order, the same seed and budget: one with the frozen glyph embeddings (the ``glyph-embeddings``
recipe; output head trainable), one with ordinary trainable embeddings (random init).

Reported: the training and held-out loss curves, held-out bits per byte, that the frozen table
is bit-identical after training, and the glyph table's nearest neighbours (O~0, l~1, ...) with
the cosine of visually similar pairs against random pairs.
"""

from __future__ import annotations

import tempfile
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
    bits_per_byte,
    non_negative_int,
    positive_int,
    ratio,
)

_OPTIONAL_POSITIVE = attrs.validators.optional(positive_int)

MODELS = ("frozen-glyph", "trainable")
FULL = {"steps": 400, "batch": 16, "context": 128, "eval_windows": 48, "eval_every": 50, "width": 64,
        "documents": None}
QUICK = {"steps": 20, "batch": 4, "context": 64, "eval_windows": 8, "eval_every": 10, "width": 64,
         "documents": 30}
OPTIMISATION = {"lr": 3e-3, "schedule": "cosine", "weight_decay": 0.01, "grad_clip": 1.0}
PAIRS = (("O", "0"), ("l", "1"), ("I", "l"), ("o", "0"), ("S", "5"), ("B", "8"))
PROBES = ("O", "0", "l", "1", "I", "e", "th", "the")
CORPUS = {"type": "lee-corpus", "part": "background", "eval_fraction": 0.1, "seed": 0}


def read_documents(registry: Any, split: str, limit: int | None = None) -> list[str]:
    """The Lee background documents of ``split`` (300 news texts, ~360 kB in all; the first
    ``limit`` of the split)."""
    texts = [e["text"] for e in registry.build("dataset", {**CORPUS, "limit": limit}).examples(split)]
    if not texts:
        raise DataUnavailableError(f"benchmark 'glyph-embeddings': the lee-corpus {split} split is empty",
                                   component="benchmark 'glyph-embeddings'")
    return texts


def token_stream(tokenizer: Any, texts: list[str]) -> list[int]:
    """Every document's ids followed by the end-of-text token."""
    out: list[int] = []
    for text in texts:
        out.extend(tokenizer.encode(text).ids)
        out.append(tokenizer.eos_id)
    return out


def windows(stream: list[int], n: int, context: int, seed: int) -> list[list[int]]:
    """``n`` seeded windows of ``context`` ids of ``stream``."""
    import torch

    if len(stream) <= context:
        raise DataUnavailableError(f"benchmark 'glyph-embeddings': {len(stream)} tokens, fewer than one "
                                   f"window of {context}", component="benchmark 'glyph-embeddings'")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - context, (n,), generator=g).tolist()
    return [stream[s:s + context] for s in starts]


def chunks(stream: list[int], n: int, context: int) -> list[list[int]]:
    """The first ``n`` consecutive, non-overlapping windows of ``stream`` (the held-out text)."""
    rows = [stream[s:s + context] for s in range(0, len(stream) - context + 1, context)][:n]
    if not rows:
        raise DataUnavailableError("benchmark 'glyph-embeddings': the held-out text is shorter than a window",
                                   component="benchmark 'glyph-embeddings'")
    return rows


def build_model(vocab: int, width: int, context: int, seed: int) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=width * 8 // 3,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=context, tie_word_embeddings=False, bos_token_id=None,
                         eos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def held_out(model: Any, rows: list[list[int]], byte_lengths: list[int]) -> tuple[float, float]:
    """``(bits per byte, nats per token)`` of ``model`` on ``rows``: the summed next-token loss
    over the bytes of the predicted tokens."""
    import torch

    model.eval()
    ids = torch.tensor(rows)
    nll, n_tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), 16):
            batch = ids[start:start + 16]
            logits = model(input_ids=batch).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="sum")
            nll += float(loss)
            n_tokens += batch[:, 1:].numel()
    n_bytes = sum(byte_lengths[i] for row in rows for i in row[1:])
    return bits_per_byte(nll, n_bytes), nll / n_tokens


def train(kind: str, *, tokenizer: Any, setup: dict[str, Any], seed: int, train_rows: list[list[int]],
          eval_rows: list[list[int]], byte_lengths: list[int], output_dir: Path, registry: Any,
          glyph_table: Any, table_path: Path) -> dict[str, Any]:
    """One model through ``tokensmith.run_recipe`` (for the frozen one, the ``glyph-embeddings``
    recipe installing the saved table ``table_path``), then its held-out loss and, for the frozen
    one, whether the table stayed bit-identical to ``glyph_table``."""
    import torch

    from tokensmith import run_recipe

    from .embedding import GlyphEmbeddingsRecipe

    model = build_model(tokenizer.vocab_size, setup["width"], setup["context"], seed)
    recipe = GlyphEmbeddingsRecipe(path=table_path) if kind == "frozen-glyph" else None
    arguments = {**OPTIMISATION, "steps": setup["steps"], "batch_size": setup["batch"],
                 "warmup": max(1, setup["steps"] // 20), "shuffle": False, "seed": seed, "progress": "off",
                 "save_final": False, "eval_every": setup["eval_every"]}
    result = run_recipe(model=model, tokenizer=tokenizer, train_data=[{"input_ids": r} for r in train_rows],
                        eval_data=[{"input_ids": r} for r in eval_rows],
                        data={"max_length": setup["context"]},
                        arguments=arguments, recipe=recipe, output_dir=output_dir, registry=registry,
                        runtime=Runtime(device="cpu", dtype="float32", seed=seed))
    bpb, nats = held_out(result.model, eval_rows, byte_lengths)
    weight = result.model.get_input_embeddings().weight.detach()
    out = {"model": kind, "seed": seed, "train_loss": list(result.losses),
           "eval_loss": [(p.step, p.loss) for p in result.evaluations if p.loss is not None],
           "bits_per_byte": bpb, "nats_per_token": nats, "seconds": result.seconds,
           "trainable_parameters": result.report.metrics["trainable_parameters"],
           "parameters": result.report.metrics["parameters"]}
    if recipe is not None:
        out["table_unchanged"] = bool(torch.equal(weight, glyph_table))
        out["table_max_change"] = float((weight - glyph_table).abs().max())
    return out


def similarity(glyphs: Any, seed: int = 0, n_random: int = 20_000) -> dict[str, Any]:
    """Cosines of the visually similar pairs, of ``n_random`` random pairs of distinct-text tokens
    (mean, 95th percentile), each pair's percentile among the random ones, and the neighbours
    of the probes."""
    import torch

    table, texts = glyphs.table, glyphs.texts
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, len(texts), (n_random,), generator=g)
    j = torch.randint(0, len(texts), (n_random,), generator=g)
    keep = torch.tensor([texts[a] != texts[b] for a, b in zip(i.tolist(), j.tolist(), strict=True)])
    random_cos = (table[i[keep]] * table[j[keep]]).sum(1)
    pairs = []
    for a, b in PAIRS:
        if a in texts and b in texts:
            c = glyphs.cosine(a, b)
            pairs.append((a, b, c, float((random_cos < c).double().mean())))
    neighbours = [(p, glyphs.nearest(p, 5)) for p in PROBES if p in texts]
    return {"pairs": pairs, "random_mean": float(random_cos.mean()),
            "random_p95": float(random_cos.quantile(0.95)), "neighbours": neighbours}


def measure(*, quick: bool, steps: int | None = None, seed: int = 0, threads: int = 1,
            registry: Any = None) -> dict[str, Any]:
    """Both runs of the benchmark (see :func:`to_report`)."""
    import torch

    from tokensmith import Registry

    from .table import token_texts

    torch.set_num_threads(threads)
    registry = registry if registry is not None else Registry.from_environment()
    setup = dict(QUICK if quick else FULL)
    if steps is not None:
        setup["steps"] = steps
    limit = setup["documents"]
    train_docs = read_documents(registry, "train", limit)
    eval_docs = read_documents(registry, "eval", None if limit is None else max(1, limit // 3))
    trainer = registry.build("tokenizer_trainer", {"type": "unicode-ngrams"})
    tokenizer = trainer.train(train_docs, progress=False)
    byte_lengths = [len(b or b"") for b in tokenizer.byte_table]
    train_stream, eval_stream = token_stream(tokenizer, train_docs), token_stream(tokenizer, eval_docs)
    train_rows = windows(train_stream, setup["steps"] * setup["batch"], setup["context"], seed=1000 + seed)
    eval_rows = chunks(eval_stream, setup["eval_windows"], setup["context"])
    from .embedding import GlyphEmbeddings
    from .table import save_table

    glyphs = GlyphEmbeddings().table_for(tokenizer, setup["width"], registry)
    runs = []
    with tempfile.TemporaryDirectory(prefix="tokensmith-bench-glyph-") as out:
        table_path = save_table(Path(out) / "glyphs.safetensors", glyphs)
        for kind in MODELS:
            runs.append(train(kind, tokenizer=tokenizer, setup=setup, seed=seed, train_rows=train_rows,
                              eval_rows=eval_rows, byte_lengths=byte_lengths, output_dir=Path(out) / kind,
                              registry=registry, glyph_table=glyphs.table, table_path=table_path))
    monograms = sum(1 for t in token_texts(tokenizer) if len(t) == 1)
    return {"setup": setup, "seed": seed, "quick": quick, "threads": threads, "runs": runs,
            "eval_windows": len(eval_rows),
            "vocab_size": tokenizer.vocab_size, "monograms": monograms,
            "train_chars": sum(map(len, train_docs)), "eval_chars": sum(map(len, eval_docs)),
            "train_tokens": len(train_stream), "explained": sum(glyphs.explained),
            "similarity": similarity(glyphs, seed), "fingerprint": tokenizer.fingerprint()}


def to_report(results: dict[str, Any], provenance: Provenance | None = None) -> Report:
    """Loss curves, held-out bits per byte of both models, the frozen check and the glyph
    neighbours."""
    runs = {r["model"]: r for r in results["runs"]}
    setup, sim = results["setup"], results["similarity"]
    metrics: dict[str, float] = {
        "steps": setup["steps"], "context": setup["context"], "width": setup["width"],
        "vocab_size": results["vocab_size"], "pca_explained_variance": results["explained"],
        "random_pair_cosine_mean": sim["random_mean"], "random_pair_cosine_p95": sim["random_p95"]}
    rows = []
    for kind in MODELS:
        r = runs[kind]
        metrics[f"bits_per_byte[{kind}]"] = r["bits_per_byte"]
        metrics[f"nats_per_token[{kind}]"] = r["nats_per_token"]
        metrics[f"final_train_loss[{kind}]"] = r["train_loss"][-1][1]
        metrics[f"trainable_parameters[{kind}]"] = r["trainable_parameters"]
        metrics[f"train_seconds[{kind}]"] = r["seconds"]
        rows.append((kind, r["bits_per_byte"], r["nats_per_token"], r["train_loss"][-1][1],
                     r["trainable_parameters"], r["parameters"]))
    frozen = runs["frozen-glyph"]
    metrics["frozen_table_unchanged"] = 1.0 if frozen["table_unchanged"] else 0.0
    metrics["frozen_table_max_change"] = frozen["table_max_change"]
    metrics["ratio_bits_per_byte_frozen_to_trainable"] = ratio(frozen["bits_per_byte"],
                                                               runs["trainable"]["bits_per_byte"])
    metrics["train_time_ratio_frozen_to_trainable"] = ratio(frozen["seconds"], runs["trainable"]["seconds"])
    for a, b, c, pct in sim["pairs"]:
        metrics[f"cosine[{a},{b}]"] = c
        metrics[f"random_percentile[{a},{b}]"] = pct
    summary = Table("held-out loss after training (same windows, seed and budget)",
                    ("model", "bits/byte", "nats/token", "final train loss", "trainable params", "params"),
                    tuple(rows))
    pairs = Table("glyph-table cosine of visually similar pairs (percentile among random pairs)",
                  ("a", "b", "cosine", "percentile"), tuple((a, b, c, p) for a, b, c, p in sim["pairs"]))
    neighbours = Table("nearest tokens in the frozen glyph table (cosine)",
                       ("token", *(f"#{k + 1}" for k in range(5))),
                       tuple((p, *(f"{t!r} {c:.2f}" for t, c in near)) for p, near in sim["neighbours"]))
    series = []
    for kind in MODELS:
        curve, evals = runs[kind]["train_loss"], runs[kind]["eval_loss"]
        series.append(Series(f"train: {kind}", tuple(s for s, _ in curve), tuple(v for _, v in curve), "step",
                             "loss (nats/token)", group="loss"))
        if evals:
            series.append(Series(f"held out: {kind}", tuple(s for s, _ in evals), tuple(v for _, v in evals),
                                 "step", "loss (nats/token)", group="loss"))
    notes = (f"Llama, 2 layers, width {setup['width']}, untied head, from scratch through the core recipe "
             f"runner: {setup['steps']} steps of {setup['batch']} windows of {setup['context']} tokens, seed "
             f"{results['seed']}, AdamW lr {OPTIMISATION['lr']:g} cosine; the same windows in the same order",
             f"tokenizer: unicode-ngrams on the Lee background train split ({results['train_chars']:,} "
             f"chars): {results['vocab_size']} ids ({results['monograms']} one-character tokens, 256 "
             f"byte-fallback, EOS, bigrams/trigrams); held out: {results['eval_windows']} windows of the "
             f"eval split ({results['eval_chars']:,} chars)",
             f"frozen glyph table: PCA keeps {results['explained']:.1%} of the bit variance; bit-identical "
             f"after training: {frozen['table_unchanged']}",
             "paper (arXiv 2507.04886): frozen-glyph models converge and beat trainable twins on MMLU "
             "(best_bvv_ru 22.29% vs 11.37%; ARC-e 23.0% vs 20.6%), all at or below the 25% chance level, "
             "so weak evidence; MMLU is out of reach at this scale and not measured")
    provenance = provenance or Provenance()
    return Report(name="glyph-embeddings", metrics=metrics, tables=(summary, pairs, neighbours),
                  series=tuple(series), notes=notes, provenance=attrs.evolve(provenance, extra={
                      **provenance.extra, "quick": results["quick"], "threads": results["threads"],
                      "seed": results["seed"], "setup": dict(setup),
                      "tokenizer_fingerprint": results["fingerprint"]}))


@attrs.define
class GlyphBenchmark(Benchmark):
    """A frozen-glyph and a trainable-embedding tiny LM trained the same way, in one run."""

    name = "glyph-embeddings"

    steps: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": f"optimizer steps per model (default {FULL['steps']}; quick {QUICK['steps']})"})
    seed: int = attrs.field(default=0, validator=non_negative_int,
                            metadata={"doc": "seed of the initial weights, the windows and the run"})
    threads: int = attrs.field(default=1, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        registry = self.registry()
        results = measure(quick=quick, steps=self.steps, seed=self.seed, threads=self.threads,
                          registry=registry)
        runtime = Runtime(device="cpu", dtype="float32", seed=self.seed, threads=self.threads)
        provenance = Provenance.collect(registry, runtime, "tiny Llama (from scratch)", self.seed)
        return to_report(results, provenance)

