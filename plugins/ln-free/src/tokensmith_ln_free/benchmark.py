"""The ``ln-free`` benchmark (``tokensmith bench ln-free``): LN-free fine-tuning of SmolLM2-135M
at CPU scale against a vanilla fine-tune of the same parameters on the same data, both through
the core recipe runner (transformers' Trainer) in one run.

Baroni et al. (2025), arXiv 2507.02559; Heimersheim (2024). The final norm and both norms of
the top ``K`` blocks are replaced by fake norms and frozen on the paper's schedule while
fine-tuning (the ``ln-free`` recipe); the vanilla fine-tune is the same runner without the
recipe. Reported: the evaluation loss just before and after each removal event, both loss
curves, the loss of freezing the same norms with no fine-tuning, and direct logit
attribution errors of the LN-free model with its norms frozen (exact: frozen norms are linear;
they are not exported, since position 0 keeps its own σ̄) against the vanilla model with its
live final norm.

Small-scale changes (CPU, < 10 minutes): only the top ``K`` blocks and the final norm train
(embeddings and lower blocks frozen), so the frozen prefix's output is computed once per
sequence (:class:`FrozenPrefix` stands in for the embedding of the model cut to its top
blocks); short sequences and a small batch; lr 1e-4 -> 5e-5 instead of 6e-4 -> 3e-4 (tiny
batches on a pretrained model); events every few steps instead of every 2 x 0.5M tokens. The
last event of the paper's schedule (position-0 treatment off) is left out: position 0's
residual entering the trained blocks comes from the frozen prefix and cannot shrink (σ = 854
against a median of 21, see the README), so position 0 keeps its own frozen σ̄, and the cost of
turning it off anyway is measured. The recipe gets no tokenizer, so it has no special ids and
the EOT treatment is off from the start. Text: docstrings of the Python standard library
(English prose, offline), one document per sequence after BOS: chunks cut inside a text make
SmolLM2 use position 1 as a second attention sink, which the position-0 treatment does not
cover and which wrecked the first runs.
"""

from __future__ import annotations

import ast
import copy
import math
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import torch

from tokensmith import (
    Benchmark,
    BuildContext,
    ConfigError,
    InputError,
    ModelSource,
    Provenance,
    Report,
    Runtime,
    Series,
    Table,
    positive_int,
    ratio,
)

FULL = {"top_blocks": 4, "batch": 4, "seq": 64, "steps": 120, "train_batches": 30, "eval_batches": 2,
        "start": 15, "gap": 6, "eval_every": 10}
QUICK = {"top_blocks": 1, "batch": 2, "seq": 32, "steps": 30, "train_batches": 8, "eval_batches": 2,
         "start": 5, "gap": 3, "eval_every": 10}
#: the optimisation of both fine-tunes ([train] keys; the paper's is finetune.PAPER)
OPTIMISATION = {"lr": 1e-4, "min_lr": 5e-5, "schedule": "cosine_with_min_lr", "warmup": 10,
                "weight_decay": 0.01, "grad_clip": 1.0}
TRAINABLE = ("model.layers.*", "model.norm.*")
PAPER = (("gpt2-small", 0.067), ("gpt2-medium", 0.025), ("gpt2-large", 0.014), ("gpt2-xl", 0.025))
PAPER_SOURCE = ("arXiv 2507.02559 README table: CE increase on OpenWebText val, LN-free vs vanilla "
                "fine-tune; Heimersheim 2024: +0.05 CE after 500M tokens")


def docstrings() -> Iterator[tuple[int, str]]:
    """``(split, text)`` for the long docstrings (modules, classes, functions; > 400 characters)
    of the standard library outside its tests, in file order; the files alternate between
    split 0 (train) and 1 (eval), so that no file feeds both."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    skip = ("test", "idlelib", "site-packages")
    files = [p for p in sorted(lib.rglob("*.py"))
             if not any(q.startswith(skip) for q in p.relative_to(lib).parts)]
    for index, path in enumerate(files):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 400:
                    yield index % 2, doc


def documents(tok: Any, counts: tuple[int, int], seq: int) -> tuple[list[list[int]], list[list[int]]]:
    """``counts`` sequences per split, each ``[BOS] + the first seq - 1 tokens`` of one
    docstring long enough (as the paper's EOT-separated data: the attention sink is position
    0, never a token inside a chunk)."""
    rows: tuple[list[list[int]], list[list[int]]] = ([], [])
    for split, text in docstrings():
        if len(rows[split]) < counts[split]:
            ids = list(tok.encode(text).ids)
            if len(ids) >= seq - 1:
                rows[split].append([tok.bos_id] + ids[:seq - 1])
        if all(len(r) == n for r, n in zip(rows, counts, strict=True)):
            return rows
    raise InputError(f"only {len(rows[0])}/{len(rows[1])} docstrings of {seq - 1}+ tokens in the standard "
                     f"library, {counts[0]}/{counts[1]} needed", component="benchmark 'ln-free'",
                     hint="use --quick, or a Python installation with its full standard library")


class FrozenPrefix(torch.nn.Module):
    """Stands in for the input embedding of a model cut to its top blocks: the hidden states
    that the embedding and the frozen bottom blocks give each sequence, computed once
    (:meth:`compute`) and looked up by its token ids. The bottom blocks never train, so their
    output is a fixed function of the tokens."""

    def __init__(self, num_embeddings: int) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.table: dict[tuple[int, ...], torch.Tensor] = {}

    def compute(self, model: Any, rows: list[list[int]], keep: int, batch: int) -> None:
        """The hidden states entering the top ``keep`` blocks of ``model`` for ``rows``."""
        inner = model.model
        layers = inner.layers
        captured: list[torch.Tensor] = []
        inner.layers = torch.nn.ModuleList(layers[:len(layers) - keep])
        handle = inner.norm.register_forward_pre_hook(lambda m, a: captured.append(a[0]))
        try:
            with torch.no_grad():
                for start in range(0, len(rows), batch):
                    inner(input_ids=torch.tensor(rows[start:start + batch]))
        finally:
            handle.remove()
            inner.layers = layers
        self.table.update({tuple(r): h for r, h in zip(rows, torch.cat(captured), strict=True)})

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        try:
            return torch.stack([self.table[tuple(row)] for row in input_ids.tolist()])
        except KeyError:
            raise InputError("a sequence the frozen prefix was not computed for",
                             component="benchmark 'ln-free'") from None


def _top_only(model: Any, top: list[Any], prefix: FrozenPrefix) -> Any:
    model.model.layers = torch.nn.ModuleList(top)
    model.model.embed_tokens = prefix
    return model


def _whole(model: Any, bottom: list[Any], embedding: Any) -> Any:
    model.model.layers = torch.nn.ModuleList(bottom + list(model.model.layers))
    model.model.embed_tokens = embedding
    return model


def _batches(rows: list[list[int]], batch: int) -> list[torch.Tensor]:
    return [torch.tensor(rows[i:i + batch]) for i in range(0, len(rows), batch)]


def measure(model: Any, tok: Any, *, quick: bool, threads: int) -> dict[str, Any]:
    """Every number of the benchmark for ``model`` (a Llama-architecture causal LM; trained in
    place), as one mapping (see :func:`to_report`)."""
    from .attribution import direct_logit_attribution
    from .finetune import LNFreeRecipe, evaluate, finetune
    from .schedule import layer_index
    from .surgery import LNFreeNormalization, calibrate, freeze

    cfg = QUICK if quick else FULL
    started = time.perf_counter()
    k, batch = cfg["top_blocks"], cfg["batch"]
    blocks = list(model.model.layers)
    if len(blocks) <= k:
        raise ConfigError(f"the model has {len(blocks)} blocks; the benchmark trains the top {k} of more",
                          component="benchmark 'ln-free'")
    train_rows, eval_rows = documents(tok, (cfg["train_batches"] * batch, cfg["eval_batches"] * batch),
                                      cfg["seq"])
    prefix = FrozenPrefix(model.get_input_embeddings().num_embeddings)
    prefix.compute(model, train_rows + eval_rows, k, batch)
    embedding = model.model.embed_tokens
    bottom, top = blocks[:-k], blocks[-k:]
    base = _top_only(model, top, prefix)
    first = len(bottom)
    selected = ["model.norm"] + [f"model.layers.{i}.*" for i in range(k)]
    train_data = [{"input_ids": r} for r in train_rows]
    eval_data = [{"input_ids": r} for r in eval_rows]
    train_batches, eval_batches = _batches(train_rows, batch), _batches(eval_rows, batch)
    prepared = time.perf_counter() - started

    zero_shot = copy.deepcopy(base)
    LNFreeNormalization(layers=selected).replace(zero_shot)
    calibrate(zero_shot, train_batches)
    freeze(zero_shot)
    zero_shot.ln_free_positions.treat_special_ids = False
    original_loss, zero_shot_loss = evaluate(base, eval_batches), evaluate(zero_shot, eval_batches)
    del zero_shot

    settings = {**OPTIMISATION, "batch_size": batch, "trainable": list(TRAINABLE),
                "eval_every": cfg["eval_every"], "eval_at": [0], "progress": "off", "save_final": False}
    runs = {}
    with tempfile.TemporaryDirectory(prefix="tokensmith-bench-ln-free-") as out:
        runtime = Runtime(device="cpu", dtype="float32", seed=0, threads=threads)
        vanilla = copy.deepcopy(base)
        common = {"steps": cfg["steps"], "eval_data": eval_data, "runtime": runtime, **settings}
        runs["vanilla"] = finetune(vanilla, train_data, output_dir=Path(out) / "vanilla", **common)
        recipe = LNFreeRecipe(layers=selected, start=cfg["start"], gap=cfg["gap"],
                              remove_first_position=False)
        ln_free = base
        runs["ln-free"] = finetune(ln_free, train_data, recipe=recipe, output_dir=Path(out) / "ln-free",
                                   **common)
    positions = ln_free.ln_free_positions
    positions.treat_first = False
    first_position_off_loss = evaluate(ln_free, eval_batches)
    positions.treat_first = True

    full_ln_free = _whole(ln_free, bottom, embedding)
    full_vanilla = _whole(vanilla, bottom, embedding)
    LNFreeNormalization(layers=["model.norm"]).replace(full_vanilla)
    dla: dict[str, list[tuple[float, float]]] = {"ln-free (frozen)": [], "vanilla (live final norm)": []}
    for ids in eval_batches:
        for name, net in (("ln-free (frozen)", full_ln_free), ("vanilla (live final norm)", full_vanilla)):
            for row in range(ids.shape[0]):
                result = direct_logit_attribution(net, ids[row:row + 1])
                dla[name].append((result.sum_error, result.ablation_error))

    by_label = {e.label: e.loss for e in runs["ln-free"].evaluations}
    events = [{"step": e.step, "target": e.target, "role": e.role,
               "original_block": None if layer_index(e.target) is None else first + layer_index(e.target),
               "loss_before": by_label[f"before {e.target}"], "loss_after": by_label[f"after {e.target}"]}
              for e in recipe.applied]
    return {
        "model_blocks": len(blocks), "quick": quick, "threads": threads, "config": cfg,
        "trained_blocks": list(range(first, first + k)), "norms_removed": sum(e["role"] != "special"
                                                                              for e in events),
        "norms": len(blocks) * 2 + 1, "prepare_seconds": prepared,
        "loss": {"original": original_loss, "zero_shot_removed": zero_shot_loss,
                 "vanilla_finetune": runs["vanilla"].final_eval_loss,
                 "ln_free_finetune": runs["ln-free"].final_eval_loss,
                 "ln_free_then_first_position_off": first_position_off_loss},
        "events": events,
        "curves": {name: {"eval": [(e.step, e.loss, e.label) for e in run.evaluations], "train": run.losses}
                   for name, run in runs.items()},
        "dla": {name: {"max_sum_error": max(s for s, _ in v), "max_ablation_error": max(a for _, a in v),
                       "sequences": len(v)} for name, v in dla.items()},
        "seconds": {name: run.seconds for name, run in runs.items()},
        "total_seconds": time.perf_counter() - started,
    }


def to_report(results: dict[str, Any], provenance: Provenance | None = None,
              model: str = "SmolLM2") -> Report:
    """The report of :func:`measure`'s results."""
    loss, seconds, cfg = results["loss"], results["seconds"], results["config"]
    gap = loss["ln_free_finetune"] - loss["vanilla_finetune"]
    metrics: dict[str, float] = {
        "original_loss": loss["original"], "zero_shot_removed_loss": loss["zero_shot_removed"],
        "vanilla_finetune_loss": loss["vanilla_finetune"], "ln_free_finetune_loss": loss["ln_free_finetune"],
        "gap_ln_free_vs_vanilla": gap,
        "gap_zero_shot_vs_original": loss["zero_shot_removed"] - loss["original"],
        "norms_removed": results["norms_removed"], "steps": cfg["steps"],
        "vanilla_seconds": seconds["vanilla"], "ln_free_seconds": seconds["ln-free"],
        "ln_free_time_vs_vanilla": ratio(seconds["ln-free"], seconds["vanilla"])}
    notes = []
    off = loss["ln_free_then_first_position_off"]
    if math.isfinite(off):
        metrics["ln_free_then_first_position_off_loss"] = off
    else:
        notes.append("turning the position-0 treatment off after fine-tuning gives a non-finite loss")
    if results["events"]:
        metrics["largest_event_spike"] = max(e["loss_after"] - e["loss_before"] for e in results["events"])
    for name, d in results["dla"].items():
        key = "ln_free" if name.startswith("ln-free") else "vanilla"
        metrics[f"{key}_dla_sum_error"] = d["max_sum_error"]
        metrics[f"{key}_dla_ablation_error"] = d["max_ablation_error"]
    events = Table("removal events (eval loss just before and after)",
                   ("step", "target", "role", "original block", "loss before", "loss after", "spike"),
                   tuple((e["step"], e["target"], e["role"], e["original_block"], e["loss_before"],
                          e["loss_after"], e["loss_after"] - e["loss_before"]) for e in results["events"]))
    dla = Table("direct logit attribution error (max over sequences, logits)",
                ("model", "sequences", "|Σ contributions − logits|", "|contribution − direct effect|"),
                tuple((n, d["sequences"], d["max_sum_error"], d["max_ablation_error"])
                      for n, d in results["dla"].items()))
    paper = Table("eval CE, LN-free − vanilla fine-tune: paper vs here",
                  ("model", "gap (nats)"),
                  (*PAPER, (f"{model}, top {cfg['top_blocks']} blocks (this run)", gap)))
    series = []
    for name, curve in results["curves"].items():
        points = [(s, v) for s, v, label in curve["eval"] if label in ("start", "step", "end")
                  or label.startswith("after")]
        series.append(Series(f"{name}: eval loss", [s for s, _ in points], [v for _, v in points], "step",
                             "eval cross-entropy (nats)", group="eval loss"))
        series.append(Series(f"{name}: train loss", [s for s, _ in curve["train"]],
                             [v for _, v in curve["train"]], "step", "train cross-entropy (nats)",
                             group="train loss"))
    if results["events"]:
        series.append(Series("removal events (loss after)", [e["step"] for e in results["events"]],
                             [e["loss_after"] for e in results["events"]], "step",
                             "eval cross-entropy (nats)", plot="scatter", group="eval loss"))
    series.append(Series("same norms frozen, no fine-tuning", [0, cfg["steps"]],
                         [loss["zero_shot_removed"]] * 2, "step", "eval cross-entropy (nats)",
                         group="eval loss"))
    for column, label in ((2, "|Σ contributions − logits|"), (3, "|contribution − direct effect|")):
        series.append(Series(label, [r[0] for r in dla.rows], [max(r[column], 1e-12) for r in dla.rows],
                             y_label="max error (logits)", plot="bar", group="direct logit attribution",
                             log_y=True))
    notes.append(f"{model} ({results['model_blocks']} blocks), fp32, CPU, {results['threads']} thread(s); "
                 f"the final norm and the norms of blocks {results['trained_blocks']} removed on the paper's "
                 f"schedule (from step {cfg['start']}, every {cfg['gap']}) while those blocks and the final "
                 f"norm fine-tune; {cfg['steps']} steps of {cfg['batch']} x {cfg['seq']} tokens, lr "
                 f"{OPTIMISATION['lr']:g} -> {OPTIMISATION['min_lr']:g}; both runs through the core recipe "
                 "runner")
    notes.append("the position-0 treatment stays on (its residual comes from the frozen prefix); the "
                 "recipe has no tokenizer, so the EOT treatment is off from the start")
    notes.append(PAPER_SOURCE)
    provenance = provenance or Provenance()
    return Report(name="ln-free", metrics=metrics, tables=(paper, events, dla), series=tuple(series),
                  notes=tuple(notes),
                  provenance=attrs.evolve(provenance, extra={**provenance.extra, "quick": results["quick"],
                                                             "threads": results["threads"], "config": cfg}))


@attrs.define
class LNFreeBenchmark(Benchmark):
    """LN-free vs vanilla fine-tuning of a Llama-architecture model's top blocks, one run."""

    name = "ln-free"

    model: str = attrs.field(default="smollm2", metadata={"doc": "the model source measured (a Llama model)"})
    threads: int = attrs.field(default=1, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        registry = self.registry()
        runtime = Runtime(device="cpu", dtype="float32", seed=0, threads=self.threads)
        runtime.apply()
        source = ModelSource.from_config({"source": self.model, "progress": False} if self.model == "smollm2"
                                         else self.model)
        model, tok = registry.load_model(source, runtime)
        name = "SmolLM2-135M-Instruct" if self.model == "smollm2" else self.model
        results = measure(model, tok, quick=quick, threads=self.threads)
        return to_report(results, Provenance.collect(registry, runtime, source, 0), model=name)
