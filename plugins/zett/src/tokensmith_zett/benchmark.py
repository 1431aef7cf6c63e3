"""The ``zett-transfer`` benchmark (``tokensmith bench zett-transfer``): a trained ZeTT hypernetwork
moves SmolLM2 onto its own tokenizer (the identity case) and onto a new one, in bits per byte.

Minixhofer, Ponti & Vulić, "Zero-Shot Tokenizer Transfer" (arXiv 2405.07883), Section 4 (zero-shot
transfer, against heuristic baselines): the hypernetwork predicts every row of the target
tokenizer's embedding table from the tokens' decompositions by the original tokenizer, the rows are
installed, and the model is scored on held-out text with no further training. Measured in the same
run: the original model on its own tokenizer; the hypernetwork's reconstruction of the original
table (invariant (i): relative MSE and how often a row is nearest its own source row); and, on an
8k byte-level BPE trained on licence texts, ZeTT against the ``mean`` baseline (shared tokens copied,
others the mean row) and FVT (Gee et al. 2022: a new token's row is the mean of the rows of its
decomposition by the original tokenizer). Bits per byte is the unit comparable across tokenizers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    DataUnavailableError,
    HFCausalLM,
    InputError,
    Provenance,
    Report,
    Series,
    Table,
    install_embeddings,
    load_artifact,
    non_negative_int,
    positive_int,
    progress,
    score_texts,
    text_pieces,
)

COMPONENT = "benchmark 'zett-transfer'"
FULL_BYTES, QUICK_BYTES = 16_000, 4_000
DEFAULT_HYPERNETWORK = "/work/artifacts/zett-smollm2-v2/hypernetwork.safetensors"


def fvt_table(model: Any, old: Any, new: Any) -> Any:
    """FVT (Gee et al. 2022), the heuristic ZeTT compares with: each new token's row is the mean of
    the original rows of its full decomposition by the original tokenizer; special tokens the model
    knows are copied (the hypernetwork's input, mean-pooled instead of encoded); a token with a byte
    the original tokenizer has no token for gets the mean row, as the ``zett`` embedding's default."""
    from tokensmith import subtoken_mean

    from .hypernet import byte_index, decompose

    emb = model.get_input_embeddings().weight.detach()
    by_bytes = byte_index(old)
    specials = {text: i for i, text in old.special_tokens.items()}
    pieces, fallback = [], []
    for i, b in enumerate(new.byte_table):
        if i in new.special_tokens:
            if new.special_tokens[i] not in specials:
                raise InputError(f"special token {new.special_tokens[i]!r} of {new.name!r} is not in "
                                 f"{old.name!r}", component=COMPONENT)
            pieces.append((specials[new.special_tokens[i]],))  # copied: the mean of its one row
        elif set(b) & old.unrepresentable_bytes:
            fallback.append(i)  # no decomposition: the mean row, as zett's default
            pieces.append((0,))
        else:
            pieces.append(decompose(b, old, by_bytes, maxlen=len(b)))
    table = subtoken_mean(emb, pieces)
    table[fallback] = emb[: old.vocab_size].mean(0)
    return table


@attrs.define
class ZeTTTransferBenchmark(Benchmark):
    """Bits per byte of SmolLM2 transferred by a trained ZeTT hypernetwork onto its own tokenizer
    and onto a licence-text BPE (vs mean and FVT), against the original model in the same run."""

    name = "zett-transfer"

    hypernetwork: str = attrs.field(
        default=DEFAULT_HYPERNETWORK, validator=attrs.validators.instance_of(str), metadata={
            "doc": "the trained hypernetwork for SmolLM2 (the zett recipe's output, e.g. of "
                   "examples/zett-smollm2-cpu.toml)"})
    vocab_size: int = attrs.field(default=8000, validator=positive_int, metadata={
        "doc": "the new byte-level BPE's vocabulary (trained on the licences' train split)"})
    held_out_bytes: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                             metadata={"doc": f"held-out licence bytes scored (None: "
                                                              f"{FULL_BYTES:,}; quick {QUICK_BYTES:,})"})
    train_texts: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                          metadata={"doc": "licence texts the new BPE is trained on (None: "
                                                           "the whole train split; quick 200)"})
    piece_bytes: int = attrs.field(default=1500, validator=positive_int, metadata={
        "doc": "held-out texts are scored in pieces of at most this many bytes (within the context)"})
    threads: int = attrs.field(default=2, validator=positive_int, metadata={"doc": "CPU threads"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={"doc": "seed of the runtime"})
    model: str = attrs.field(default="smollm2", validator=attrs.validators.instance_of(str), metadata={
        "doc": "the model source the hypernetwork was trained for"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        from .hypernet import PLUGIN
        from .provider import ZeTT

        path = Path(self.hypernetwork)
        if not path.is_file():
            raise DataUnavailableError(
                f"no hypernetwork at {str(path)!r}", component=COMPONENT,
                hint="train one first: tokensmith train plugins/zett/examples/zett-smollm2-cpu.toml "
                     "--output-dir DIR, then -p hypernetwork=DIR/hypernetwork.safetensors")
        held_out = self.held_out_bytes or (QUICK_BYTES if quick else FULL_BYTES)
        n_train = self.train_texts or (200 if quick else None)
        registry = self.registry()
        licenses = registry.build("dataset", {"type": "licenses"})
        trainer = registry.build("tokenizer_trainer",
                                 {"type": "byte-level-bpe", "vocab_size": self.vocab_size})

        def train_texts():
            n = 0
            for e in licenses.examples("train"):  # streamed: the trainer reads it once
                if n_train is not None and n >= n_train:
                    return
                if e["text"].strip():
                    n += 1
                    yield e["text"]

        new = trainer.train(train_texts())
        pipeline = self.cpu_pipeline(self.model, threads=self.threads, seed=self.seed)
        base, old, runtime = pipeline.model, pipeline.tokenizer, pipeline.runtime
        texts, total, unscorable = [], 0, 0
        for example in licenses.examples("eval"):
            if total >= held_out:
                break
            if old.unrepresentable_bytes & set(example["text"].encode("utf-8")):
                unscorable += 1  # the original model has no token for a byte of it: no ratio exists
            elif example["text"].strip():
                # the held-out sample: the eval split's pieces in order, up to held_out bytes (a long
                # licence's later pieces are not part of the sample)
                for piece in text_pieces(example["text"], self.piece_bytes):
                    if total >= held_out:
                        break
                    texts.append(piece)
                    total += len(piece.encode("utf-8"))
        if not texts:
            raise InputError("the licences' eval split has no text the model can score", component=COMPONENT)

        hn = ZeTT(hypernetwork=path).hypernet(base, old)  # checks the artifact against the tokenizer first
        meta_steps = load_artifact(path, plugin=PLUGIN)[1]["config"].get("steps")
        metrics: dict[str, float | int] = {"hypernetwork_residual_mean": int(hn.residual_mean)}
        if meta_steps is not None:
            metrics["hypernetwork_steps"] = int(meta_steps)

        # invariant (i)/(ii): the original vocabulary, each token its own single piece
        import torch

        source = base.get_input_embeddings().weight.detach()
        ids = [i for i in range(old.vocab_size) if i not in old.special_tokens]
        predicted, _ = hn.predict([(i,) for i in ids])
        target = source[ids]
        metrics["identity_relative_mse"] = float(((predicted - target) ** 2).mean() / target.var())
        # (ii) nearest own row, for a seeded sample of at most 2,048 tokens against every row (all
        # 49k x 49k distances of SmolLM2 would be ~1.4 TFLOP)
        sample = torch.randperm(len(ids), generator=torch.Generator().manual_seed(self.seed))[:2048]
        nearest = torch.cdist(predicted[sample], target).argmin(1) == sample
        metrics["identity_nearest_own_row"] = float(nearest.float().mean())

        original = score_texts(pipeline.lm, progress(texts, total=len(texts), desc="original", unit="text"))
        metrics.update({"original_bits_per_byte": original.bits_per_byte, "original_tokens": original.tokens,
                        "held_out_bytes": original.bytes, "new_vocab_size": new.vocab_size})
        rows: list[tuple[Any, ...]] = [("original", old.name, original.bits_per_byte, 1.0, 1.0)]
        notes: list[str] = []
        cases = [("zett (identity)", old, "zett"), ("mean", new, "mean"), ("fvt", new, "fvt"),
                 ("zett", new, "zett"), ("zett + copied shared rows", new, "zett-copy")]
        for label, tokenizer, how in cases:
            model = copy.deepcopy(base)
            if how == "mean":
                install_embeddings(model, tokenizer, old_tokenizer=old, init="mean", seed=self.seed)
            elif how == "fvt":
                install_embeddings(model, tokenizer, old_tokenizer=old,
                                   table=fvt_table(model, old, tokenizer), seed=self.seed)
            else:
                done = ZeTT(hypernetwork=path, copy_shared=how == "zett-copy").transfer(model, old, tokenizer)
                if how == "zett":
                    notes.extend(n for n in done.notes if n.startswith("zett:"))
            score = score_texts(HFCausalLM(model, tokenizer, runtime),
                                progress(texts, total=len(texts), desc=label, unit="text"))
            key = label.split(" ")[0] if how != "zett-copy" else "zett_copy_shared"
            key = "zett_identity" if label == "zett (identity)" else key
            metrics[f"{key}_bits_per_byte"] = score.bits_per_byte
            metrics[f"{key}_ratio"] = score.bits_per_byte / original.bits_per_byte
            rows.append((label, "SmolLM2's own" if tokenizer is old else f"licence BPE {new.vocab_size}",
                         score.bits_per_byte, score.bits_per_byte / original.bits_per_byte,
                         score.tokens / original.tokens))
            del model
        notes += [
            f"hypernetwork: {path}" + (f" ({meta_steps} training steps)" if meta_steps is not None else "")
            + ("; residual_mean (a departure from the paper): its prediction is the FVT mean of a token's "
               "pieces plus its learned correction, so the fvt row is this hypernetwork before training "
               "(up to its cut at surface_maxlen pieces)"
               if hn.residual_mean else "; the paper's architecture (no residual_mean)"),
            "no fine-tuning anywhere: every row is zero-shot (zett predicts every row of the target table, "
            "specials copied; 'copied shared rows' also copies the rows of tokens SmolLM2 has)",
            "identity_relative_mse: MSE of the predicted original table / variance of the source rows; "
            "identity_nearest_own_row: share of tokens (a seeded sample of at most 2,048) whose prediction "
            "is nearest its own source row among all rows",
            f"new tokenizer: byte-level BPE, {new.vocab_size} ids, trained on "
            f"{'the whole' if n_train is None else f'{n_train} texts of the'} licences' train split; "
            f"held-out: the first {original.bytes} bytes of the eval split (licences in order, in pieces of "
            f"at most {self.piece_bytes} bytes)",
            f"{unscorable} eval-split licence(s) left out: the model's tokenizer has no token for a byte "
            "of them",
            "ratio: bits per byte over the original SmolLM2 on its own tokenizer (measured here); "
            "tokens: held-out tokens under the row's tokenizer / under SmolLM2's",
        ]
        return Report(
            name="zett-transfer-quick" if quick else "zett-transfer", metrics=metrics,
            tables=(Table("bits per byte, zero-shot",
                          ("embeddings", "tokenizer", "bits/byte", "ratio", "tokens"), tuple(rows)),),
            series=(Series("bits per byte", [r[0] for r in rows], [r[2] for r in rows], plot="bar",
                           y_label="bits per byte (held-out licences)"),),
            notes=tuple(notes),
            provenance=Provenance.collect(registry=registry, runtime=runtime, model=self.model,
                                          seed=self.seed))

