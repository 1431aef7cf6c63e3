"""The ``transplant`` benchmark (``tokensmith bench transplant``): SmolLM2 moved onto a
byte-level BPE trained on licence texts, one initialiser after another, in bits per byte.

TokenAdapt: Sharthak, Pahalwan, Kamath & Shirawalmath, arXiv 2505.09738.

Per initialiser (random = N(mean, std) of the old rows, mean, FVT = mean of sub-tokens,
TokenAdapt local / global / hybrid, and ZeTT when a plugin registers the embedding ``zett``):
the held-out licence text's bits per byte relative to the original model on its own tokenizer
(bits per byte is the unit comparable across tokenizers; per-token perplexity is not), before
and after the same short fine-tune of the embedding table alone through the core recipe runner,
and the token-count change; with ``eval_at``, also the held-out bits per byte during the
fine-tune (a learning curve, scored by a callback of the runner). The original model is
measured in the same run, and (``reference``)
after the same fine-tune on its own tokenizer: the fair comparison for what the tokenizer
change cost, since a fine-tune on licence text also adapts the model to the domain.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    ConfigError,
    DataUnavailableError,
    HFCausalLM,
    InputError,
    Provenance,
    Report,
    Series,
    Table,
    TokensmithError,
    non_negative,
    non_negative_int,
    positive,
    positive_int,
    progress,
    score_texts,
    text_pieces,
)

from .finetune import fine_tune_embeddings, new_rows
from .heuristics import CachedEmbedder, make_embedder, plan_transplant
from .provider import TokenAdapt, transplant

COMPONENT = "benchmark 'transplant'"
INITS = ("random", "mean", "fvt", "tokenadapt-local", "tokenadapt-global", "tokenadapt-hybrid", "zett",
         "zett-copy-shared")
# the two ZeTT rows, labelled in the table: the paper's transfer predicts every row (the reference
# implementation's transfer script copies only the special tokens; the auxiliary loss pulls the
# predictions of shared tokens towards their rows in training instead), the second copies them
LABELS = {"zett": "zett (paper's setting: every row predicted)",
          "zett-copy-shared": "zett + copied shared rows",
          "original": "original fine-tuned (reference)"}
FULL = {"held_out_bytes": 60_000, "steps": 48, "train_texts": 400}
QUICK = {"held_out_bytes": 12_000, "steps": 12, "train_texts": 100}
TRAIN_ROWS = ("new", "all")
CHUNK_BYTES = 1_500


def unscorable(text: str, tokenizer: Any) -> bool:
    """Whether ``tokenizer`` (SmolLM2's) lacks a token for some byte of ``text`` (a control
    character): the original model cannot score it, so no ratio is defined for it."""
    return bool(tokenizer.unrepresentable_bytes & set(text.encode("utf-8")))


def held_out_texts(licenses: Any, old: Any, held_out_bytes: int,
                   chunk_bytes: int = CHUNK_BYTES) -> tuple[list[str], int]:
    """The held-out text every transplant is scored on (also bench/tokensurgeon's): the
    licences' eval split in order, whole licences until ``held_out_bytes`` bytes, cut by
    :func:`tokensmith.text_pieces` into pieces of at most ``chunk_bytes``; licences ``old`` cannot encode are
    left out and counted (the second value)."""
    texts, total, left_out = [], 0, 0
    for example in licenses.examples("eval"):
        if total >= held_out_bytes:
            break
        if unscorable(example["text"], old):
            left_out += 1  # reported in the notes: SmolLM2 has no token for some byte of it
        elif example["text"].strip():
            texts.extend(text_pieces(example["text"], chunk_bytes))
            total += len(example["text"].encode("utf-8"))
    return texts, left_out


@attrs.define
class TransplantBenchmark(Benchmark):
    """Bits per byte of SmolLM2 on a licence-text BPE per initialiser, before and after an
    equal-budget fine-tune of the embeddings, against the original model in the same run."""

    name = "transplant"

    vocab_size: int = attrs.field(default=8000, validator=positive_int, metadata={
        "doc": "the new byte-level BPE's vocabulary (trained on the licences' train split)"})
    held_out_bytes: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                             metadata={"doc": "held-out licence bytes scored (None: 60,000; "
                                                              "quick 12,000)"})
    steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(non_negative_int),
                                    metadata={"doc": "fine-tune steps per initialiser (None: 48; quick 12; "
                                                     "0: no fine-tune)"})
    batch_size: int = attrs.field(default=4, validator=positive_int, metadata={"doc": "sequences per step"})
    max_length: int = attrs.field(default=128, validator=positive_int, metadata={
        "doc": "tokens per fine-tune sequence (packed, EOS between licences)"})
    lr: float = attrs.field(default=3e-4, validator=positive, metadata={
        "doc": "AdamW peak learning rate (Adam moves every row of a tied table ~lr per coordinate per "
               "step, used or not: keep it small for a warm start)"})
    warmup: int = attrs.field(default=4, validator=non_negative_int, metadata={
        "doc": "linear warm-up steps before the peak learning rate"})
    schedule: str = attrs.field(default="cosine", validator=attrs.validators.in_(
        ("cosine", "linear", "constant", "constant_with_warmup")), metadata={
        "doc": "transformers' lr_scheduler_type after the warm-up"})
    weight_decay: float = attrs.field(default=0.0, validator=non_negative, metadata={
        "doc": "AdamW's decoupled weight decay (0: it would shrink the rows that do not train too)"})
    train_rows: str = attrs.field(default="all", validator=attrs.validators.in_(TRAIN_ROWS), metadata={
        "doc": "'all': the whole table trains (on SmolLM2 better than 'new': README); 'new': only the rows "
               "of tokens the old vocabulary lacks (the same rows for every initialiser; shared rows stay "
               "bit-identical)"})
    lazy: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "True: in each step only the rows of the tokens in the batch train (LazyAdam-style); "
               "False: plain AdamW, which also moves every row the batch never uses (the softmax's "
               "push, rescaled to ~lr per coordinate)"})
    reference: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "also fine-tune the original model on its own tokenizer with the same budget (every row "
               "trains: none is new there), the 'original fine-tuned' row"})
    train_texts: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                          metadata={"doc": "licence texts in the fine-tune data (None: 400; "
                                                           "quick 100)"})
    eval_at: tuple[int, ...] = attrs.field(default=(), converter=tuple, metadata={
        "doc": "fine-tune steps after which the held-out bits/byte is also measured (a learning curve for "
               "every fine-tuned row and the reference, with the steps 0 and the last; each below `steps`); "
               "(): before and after only"})
    inits: tuple[str, ...] = attrs.field(default=INITS, converter=tuple, metadata={
        "doc": f"initialisers to compare, of {', '.join(INITS)}"})
    embedder: str = attrs.field(default="minilm", validator=attrs.validators.in_(("minilm", "char-ngrams")),
                                metadata={"doc": "TokenAdapt's auxiliary embedder"})
    zett_hypernetwork: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str)), metadata={
            "doc": "a ZeTT hypernetwork artifact for SmolLM2 (tokensmith-zett's recipe output, e.g. "
                   "/work/artifacts/zett-smollm2/hypernetwork.safetensors): the 'zett' and "
                   "'zett-copy-shared' rows; None: no zett row"})
    new_tokenizer: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str)), metadata={
            "doc": "a saved tokenizer.json (or its folder) to move SmolLM2 onto instead of training the "
                   "licence BPE here (the same file for the tokensurgeon peer); None: train it"})
    phi_cache: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(str)), metadata={
            "doc": "a folder keeping the auxiliary embedder's φ of each vocabulary as safetensors "
                   "(computed once per vocabulary); None: computed every run"})
    chunk_bytes: int = attrs.field(default=CHUNK_BYTES, validator=positive_int, metadata={
        "doc": "held-out pieces of at most this many bytes, each scored from the start (within the "
               "model's context)"})
    model: str = attrs.field(default="smollm2", validator=attrs.validators.instance_of(str), metadata={
        "doc": "the model source moved onto the new tokenizer (SmolLM2; 'tiny-llama' for a smoke run)"})
    threads: int = attrs.field(default=2, validator=positive_int, metadata={"doc": "CPU threads"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={"doc": "seed of every run"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    @eval_at.validator
    def _steps(self, attribute: Any, value: tuple[int, ...]) -> None:
        if any(type(v) is not int or v < 1 for v in value) or list(value) != sorted(set(value)):
            raise ConfigError(f"eval_at must be increasing positive step counts, got {list(value)}",
                              component="benchmark 'transplant'", hint="e.g. eval_at = [12, 24]")

    @inits.validator
    def _known(self, attribute: Any, value: tuple[str, ...]) -> None:
        bad = [v for v in value if v not in INITS]
        if bad or not value:
            raise ConfigError(f"inits must be a non-empty subset of {', '.join(INITS)}, got {bad or value}",
                              component="benchmark 'transplant'")

    def run(self, *, quick: bool = False) -> Report:
        sizes = QUICK if quick else FULL
        held_out = self.held_out_bytes or sizes["held_out_bytes"]
        steps = sizes["steps"] if self.steps is None else self.steps
        n_train = self.train_texts or sizes["train_texts"]
        if steps and self.warmup > steps:  # the runner would refuse it after minutes of work
            raise ConfigError(f"warmup ({self.warmup}) is longer than the fine-tune ({steps} steps)",
                              component=COMPONENT, hint="lower -p warmup or raise -p steps")
        if self.eval_at and self.eval_at[-1] >= steps:
            raise ConfigError(f"eval_at {list(self.eval_at)} must lie inside the fine-tune (0 < step < "
                              f"{steps}): steps 0 and {steps} are always measured", component=COMPONENT,
                              hint="raise -p steps or drop the last eval_at entries")
        if {"zett", "zett-copy-shared"} & set(self.inits) and self.zett_hypernetwork is not None \
                and not Path(self.zett_hypernetwork).is_file():  # before minutes of work, not after
            raise DataUnavailableError(f"zett_hypernetwork {self.zett_hypernetwork!r} is not a file",
                                       component=COMPONENT,
                                       hint="train one with tokensmith-zett's recipe, or leave it out")
        registry = self.registry()
        licenses = registry.build("dataset", {"type": "licenses"})
        if self.new_tokenizer is not None:
            from tokensmith import HFTokenizer

            new = HFTokenizer.from_file(self.new_tokenizer)
        else:
            trainer = registry.build("tokenizer_trainer",
                                     {"type": "byte-level-bpe", "vocab_size": self.vocab_size})
            new = trainer.train(e["text"] for e in licenses.examples("train") if e["text"].strip())
        pipeline = self.cpu_pipeline(self.model, threads=self.threads, seed=self.seed)
        base, old, runtime = pipeline.model, pipeline.tokenizer, pipeline.runtime
        texts, left_out = held_out_texts(licenses, old, held_out, self.chunk_bytes)
        if not texts:
            raise InputError("the licences' eval split is empty", component=COMPONENT)
        train_data = []
        for example in licenses.examples("train"):
            if len(train_data) >= n_train:
                break
            if example["text"].strip():
                train_data.append({"text": example["text"]})

        original = score_texts(pipeline.lm, progress(texts, total=len(texts), desc="original", unit="text"))
        rows_to_train = new_rows(old, new) if self.train_rows == "new" else None

        def fine_tune(model: Any, tokenizer: Any, rows: list[int] | None) -> list[tuple[int, float]]:
            """Fine-tune in place; the held-out bits/byte after each ``eval_at`` step."""
            points: list[tuple[int, float]] = []
            callbacks = [] if not self.eval_at else [
                curve_callback(self.eval_at, lambda: score_texts(HFCausalLM(model, tokenizer, runtime),
                                                                 texts).bits_per_byte, points)]
            fine_tune_embeddings(model, tokenizer, train_data, steps=steps, batch_size=self.batch_size,
                                 max_length=self.max_length, lr=self.lr, warmup=self.warmup,
                                 schedule=self.schedule, weight_decay=self.weight_decay, rows=rows,
                                 lazy=self.lazy, seed=self.seed, runtime=runtime, registry=registry,
                                 callbacks=callbacks)
            return points
        plan = None
        if any(i.startswith("tokenadapt") for i in self.inits):
            embedder = make_embedder(self.embedder)
            if self.phi_cache is not None:
                embedder = CachedEmbedder(embedder, self.phi_cache)
            plan = plan_transplant(old, new, embedder)
        rows, notes, metrics = [], [], {"original_bits_per_byte": original.bits_per_byte,
                                        "original_tokens": original.tokens, "new_vocab_size": new.vocab_size,
                                        "held_out_bytes": original.bytes, "fine_tune_steps": steps}
        if plan is not None:
            counts = plan.counts("hybrid", 0.3)
            metrics.update({f"tokenadapt_{k}": v for k, v in counts.items()})
        curves: dict[str, list[tuple[int, float]]] = {}
        for init in self.inits:
            model = copy.deepcopy(base)
            if init.startswith("zett"):
                missing = None
                if self.zett_hypernetwork is None:
                    missing = "zett: no zett_hypernetwork given (a trained ZeTT hypernetwork for SmolLM2); " \
                              "not measured"
                elif "zett" not in {c.name for c in registry.components("embedding")}:
                    missing = "zett: no plugin registers the embedding 'zett' here (tokensmith-zett not " \
                              "installed); not measured"
                if missing is not None:
                    if missing not in notes:  # once for both zett rows
                        notes.append(missing)
                    continue
                context = BuildContext(runtime=runtime, model=model, tokenizer=new, model_tokenizer=old,
                                       registry=registry)
                try:
                    registry.build("embedding", {"type": "zett", "hypernetwork": self.zett_hypernetwork,
                                                 "copy_shared": init == "zett-copy-shared"},
                                   context).apply(model, new)
                except TokensmithError as err:  # a bad artifact costs its row, not the whole run
                    notes.append(f"zett: not measured, the hypernetwork was refused: {err}")
                    continue
                if not any(n.startswith("zett: hypernetwork") for n in notes):
                    notes.append(f"zett: hypernetwork {self.zett_hypernetwork}; '{LABELS['zett']}' is the "
                                 "paper's zero-shot transfer (only special tokens copied), "
                                 f"'{LABELS['zett-copy-shared']}' copies the rows of every token SmolLM2 has "
                                 "(copy_shared = true), as the other initialisers do")
            elif init in ("random", "mean"):
                from tokensmith import install_embeddings

                install_embeddings(model, new, old_tokenizer=old,
                                   init="normal" if init == "random" else "mean", seed=self.seed)
            else:
                mode = {"fvt": "fvt", "tokenadapt-local": "local", "tokenadapt-global": "global",
                        "tokenadapt-hybrid": "hybrid"}[init]
                transplant(model, old, new, TokenAdapt(mode=mode, embedder=self.embedder, seed=self.seed),
                           plan=plan)
            before = score_texts(HFCausalLM(model, new, runtime), texts)
            after = None
            if steps:
                points = fine_tune(model, new, rows_to_train)
                after = score_texts(HFCausalLM(model, new, runtime), texts)
                curves[init] = [(0, before.bits_per_byte), *points, (steps, after.bits_per_byte)]
            ratio_before = before.bits_per_byte / original.bits_per_byte
            ratio_after = None if after is None else after.bits_per_byte / original.bits_per_byte
            rows.append((LABELS.get(init, init), before.bits_per_byte, ratio_before,
                         None if after is None else after.bits_per_byte, ratio_after,
                         before.tokens / original.tokens))
            metrics[f"{init}_bits_per_byte"] = before.bits_per_byte
            metrics[f"{init}_ratio"] = ratio_before
            if after is not None:
                metrics[f"{init}_bits_per_byte_after"] = after.bits_per_byte
                metrics[f"{init}_ratio_after"] = ratio_after
            del model
        if steps and self.reference:
            # every row trains here: on its own tokenizer no token is new
            model = copy.deepcopy(base)
            points = fine_tune(model, old, None)
            tuned = score_texts(HFCausalLM(model, old, runtime), texts)
            del model
            curves["original"] = [(0, original.bits_per_byte), *points, (steps, tuned.bits_per_byte)]
            rows.append(("original fine-tuned", original.bits_per_byte, 1.0, tuned.bits_per_byte,
                         tuned.bits_per_byte / original.bits_per_byte, 1.0))
            metrics["original_bits_per_byte_after"] = tuned.bits_per_byte
            metrics["original_ratio_after"] = tuned.bits_per_byte / original.bits_per_byte
        measured = [r[0] for r in rows]
        series = [Series("before fine-tune", measured, [r[1] for r in rows], plot="bar",
                         group="bits per byte",
                         y_label=f"bits/byte (original: {original.bits_per_byte:.3f})")]
        if steps:
            series.append(Series(f"after {steps} steps", measured, [r[3] for r in rows], plot="bar",
                                 group="bits per byte"))
        tables = [Table("bits per byte by initialiser",
                        ("init", "bpb before", "ratio before", "bpb after", "ratio after", "tokens"),
                        tuple(rows))]
        if self.eval_at and curves:
            for init, curve in curves.items():
                series.append(Series(LABELS.get(init, init), [s for s, _ in curve], [b for _, b in curve],
                                     x_label="fine-tune steps", y_label="held-out bits/byte",
                                     group="learning curve"))
                for step, bpb in curve:
                    metrics[f"{init}_bits_per_byte_at_{step}"] = bpb
            series.append(Series("within 10% of the original", [0, steps], [1.1 * original.bits_per_byte] * 2,
                                 x_label="fine-tune steps", group="learning curve"))
            tables.append(Table("learning curve: held-out bits per byte after n fine-tune steps",
                                ("init", *(f"{s} steps" for s, _ in next(iter(curves.values())))),
                                tuple((LABELS.get(i, i), *(b for _, b in c)) for i, c in curves.items())))
        notes += [
            f"{left_out} eval-split licence(s) left out of the held-out text: SmolLM2's tokenizer has no "
            "token for one of their bytes",
            f"new tokenizer: byte-level BPE, {new.vocab_size} ids (fingerprint {new.fingerprint()[:16]}), "
            "trained on the licences' train split"
            + (f" (loaded from {self.new_tokenizer})" if self.new_tokenizer else "") + "; "
            f"held-out: {original.bytes} bytes of the eval split in pieces of at most {self.chunk_bytes} "
            "bytes",
            f"fine-tune: the embedding table only (tied head), {steps} steps x {self.batch_size} x "
            f"{self.max_length} tokens of {len(train_data)} train-split licences (packed), AdamW lr "
            f"{self.lr} ({self.schedule}, {self.warmup} warm-up steps, weight decay {self.weight_decay}), "
            "rows: "
            + (f"the {len(rows_to_train)} new ones (shared rows frozen)" if rows_to_train is not None
               else "all") + ("; in each step only the rows of the batch's tokens" if self.lazy else "")
            + "; the same data, rows and budget for every initialiser"
            + ("; 'original fine-tuned': the original model after the same fine-tune on its own tokenizer "
               "(all rows)" if steps and self.reference else ""),
            "ratio: bits per byte over the original SmolLM2 on its own tokenizer (measured here)",
            *([f"learning curve: the held-out bits/byte measured during the same fine-tune after steps "
               f"{', '.join(map(str, self.eval_at))} (a callback of the runner); the learning rate at each "
               f"point follows the {self.schedule} schedule of the whole {steps}-step run, so a point is a "
               "separate run of that many steps only when the schedule is constant after the warm-up"]
              if self.eval_at else []),
            "tokens: held-out tokens under the new tokenizer / under SmolLM2's",
        ]
        return Report(
            name="transplant-quick" if quick else "transplant", metrics=metrics,
            tables=tuple(tables),
            series=tuple(series), notes=tuple(notes),
            provenance=Provenance.collect(registry=registry, runtime=runtime, model=self.model,
                                          seed=self.seed))


def curve_callback(at: tuple[int, ...], score: Any, points: list[tuple[int, float]]) -> Any:
    """A ``TrainerCallback`` for the core runner that appends ``(step, score())`` to ``points``
    after each optimizer step listed in ``at``: the held-out bits per byte during the fine-tune,
    scored as before and after it (the runner's own evaluation is a per-token loss, not comparable
    across tokenizers). The model is put back in training mode after scoring."""
    from transformers import TrainerCallback

    class Curve(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if state.global_step in at:
                points.append((state.global_step, score()))
                if model is not None:
                    model.train()

    return Curve()
