"""The ``powernorm`` benchmark (``tokensmith bench powernorm``): LayerNorm vs masked BatchNorm vs
PowerNorm (Shen et al., 2020, arXiv 2003.07845) in a tiny GPT-2 byte-level language model
trained from scratch on Python standard-library source, every run through the core recipe
runner (transformers' Trainer).

Same initial weights (apart from the norm layers), same batches in the same order, same
optimizer and budget per seed; windows have random lengths and are right-padded in each
batch, so the masked statistics matter. Validation is in eval mode (running statistics for
BN and PN), in bits per byte over the real tokens of fixed held-out windows (one batch, so
the mean is over tokens).
"""

from __future__ import annotations

import math
import statistics
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    ConfigError,
    Provenance,
    Report,
    Runtime,
    Series,
    Table,
    positive_int,
    ratio,
)

#: a positive int, or None (the default)
_OPTIONAL_POSITIVE = attrs.validators.optional(positive_int)

PAD = 256
NORMS = ("layernorm", "batchnorm", "powernorm")
TRAIN_FILES = ("argparse", "typing", "inspect", "dataclasses", "pathlib", "functools", "enum",
               "collections/__init__", "subprocess", "tarfile", "zipfile", "logging/__init__",
               "email/message", "json/decoder", "unittest/case", "asyncio/tasks", "string",
               "textwrap", "difflib", "pprint", "heapq", "bisect", "shutil", "tempfile")
VALID_FILES = ("calendar", "fractions", "statistics", "csv", "configparser")
FULL = {"steps": 300, "batch": 16, "context": 128, "eval_every": 50, "seeds": (0, 1)}
QUICK = {"steps": 60, "batch": 16, "context": 96, "eval_every": 20, "seeds": (0,)}
#: the optimizer of every run ([train] keys): AdamW 3e-3, cosine after a warm-up of 5% of the steps
OPTIMISATION = {"lr": 3e-3, "schedule": "cosine", "weight_decay": 0.01, "grad_clip": 1.0}
VALID_WINDOWS = 128


def corpus(names: tuple[str, ...]) -> bytes:
    root = Path(sysconfig.get_paths()["stdlib"])
    return b"\n".join((root / f"{name}.py").read_bytes() for name in names)


def windows(data: bytes, n: int, context: int, seed: int) -> list[dict[str, list[int]]]:
    """``n`` windows of ``data`` of random length in [context/4, context] (byte ids), drawn with
    a seeded generator: examples for the runner, which right-pads each batch (``attention_mask``
    0 and labels ignored on the padding)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(context // 4, context + 1, (n,), generator=g).tolist()
    starts = torch.randint(0, len(data) - context - 1, (n,), generator=g).tolist()
    return [{"input_ids": list(data[s:s + length])} for s, length in zip(starts, lengths, strict=True)]


def build_model(norm: str, seed: int, context: int, warmup_iters: int) -> tuple[Any, Any]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from .surgery import BatchNormProvider, PowerNormProvider

    config = GPT2Config(vocab_size=PAD + 1, n_embd=64, n_layer=3, n_head=4, n_positions=context,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, pad_token_id=PAD,
                        bos_token_id=PAD, eos_token_id=PAD)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    report = None
    if norm == "batchnorm":
        model, report = BatchNormProvider().replace(model)
    elif norm == "powernorm":
        model, report = PowerNormProvider(warmup_iters=warmup_iters).replace(model)
    return model.train(), report


def _callbacks() -> tuple[Any, Any]:
    from transformers import TrainerCallback

    class UniformWeightDecay(TrainerCallback):
        """Weight decay on every parameter, as ``torch.optim.AdamW(model.parameters())``: the
        Trainer exempts biases and modules it recognises as norms (``nn.LayerNorm``), which
        would decay PowerNorm's and BatchNorm's γ but not LayerNorm's."""

        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            for group in optimizer.param_groups:
                group["weight_decay"] = args.weight_decay

    class GradNorms(TrainerCallback):
        """The gradient norm (before clipping) the Trainer logs at every step."""

        def __init__(self) -> None:
            self.values: list[float] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "grad_norm" in logs:
                self.values.append(float(logs["grad_norm"]))

    return UniformWeightDecay(), GradNorms()


def train(norm: str, seed: int, *, steps: int, batch: int, context: int, eval_every: int, train_data: bytes,
          valid: list[dict[str, list[int]]], output_dir: Path) -> dict[str, Any]:
    """One run through ``tokensmith.run_recipe``: the same windows in the same order for every
    norm (seed ``1000 + seed``), evaluation every ``eval_every`` steps and at the end. The
    record's ``model`` is the trained model (not part of the report)."""
    from tokensmith import run_recipe

    warmup_iters = max(1, steps // 10)
    model, report = build_model(norm, seed, context, warmup_iters)
    decay, grads = _callbacks()
    arguments = {**OPTIMISATION, "steps": steps, "batch_size": batch, "eval_batch_size": len(valid),
                 "warmup": max(1, steps // 20), "shuffle": False, "seed": seed, "eval_every": eval_every,
                 "progress": "off", "save_final": False}
    result = run_recipe(model=model, train_data=windows(train_data, steps * batch, context, 1000 + seed),
                        eval_data=valid, data={"max_length": context},
                        arguments=arguments, callbacks=[decay, grads], output_dir=output_dir,
                        runtime=Runtime(device="cpu", dtype="float32", seed=seed))
    bits = 1 / math.log(2)
    return {"norm": norm, "seed": seed, "train_bits_per_byte": [(s, v * bits) for s, v in result.losses],
            "valid": [(e.step, e.loss * bits) for e in result.evaluations],
            "final_valid_bits_per_byte": result.final_eval_loss * bits,
            "grad_norm_median": statistics.median(grads.values), "seconds": result.seconds,
            "replaced_layers": len(report) if report else 0, "warmup_iters": warmup_iters,
            "model": result.model}


def measure(*, quick: bool, steps: int | None = None, seeds: tuple[int, ...] | None = None,
            threads: int = 1) -> dict[str, Any]:
    """Every run of the benchmark, as one mapping (see :func:`to_report`)."""
    import torch

    torch.set_num_threads(threads)
    setup = dict(QUICK if quick else FULL)
    if steps is not None:
        setup["steps"] = steps
    if seeds is not None:
        setup["seeds"] = tuple(seeds)
    setup["eval_every"] = min(setup["eval_every"], setup["steps"])
    train_data, valid_data = corpus(TRAIN_FILES), corpus(VALID_FILES)
    valid = windows(valid_data, VALID_WINDOWS, setup["context"], seed=7)
    runs = []
    with tempfile.TemporaryDirectory(prefix="tokensmith-bench-powernorm-") as out:
        for seed in setup["seeds"]:
            for norm in NORMS:
                runs.append(train(norm, seed, steps=setup["steps"], batch=setup["batch"],
                                  context=setup["context"], eval_every=setup["eval_every"],
                                  train_data=train_data, valid=valid,
                                  output_dir=Path(out) / f"{norm}-{seed}"))
    return {"setup": setup, "quick": quick, "threads": threads, "train_bytes": len(train_data),
            "valid_bytes": len(valid_data), "valid_windows": len(valid), "runs": runs}


def to_report(results: dict[str, Any], provenance: Provenance | None = None) -> Report:
    """Mean final validation bits/byte per norm, its ratio to LayerNorm, the training-time ratio
    (the same run), every run, and the training and validation curves."""
    runs, setup = results["runs"], results["setup"]
    mean = {n: statistics.mean(r["final_valid_bits_per_byte"] for r in runs if r["norm"] == n) for n in NORMS}
    seconds = {n: sum(r["seconds"] for r in runs if r["norm"] == n) for n in NORMS}
    metrics: dict[str, float] = {"steps": setup["steps"], "seeds": len(setup["seeds"])}
    for n in NORMS:
        metrics[f"valid_bits_per_byte[{n}]"] = mean[n]
        metrics[f"valid_ratio_to_layernorm[{n}]"] = ratio(mean[n], mean["layernorm"])
        metrics[f"train_time_ratio_to_layernorm[{n}]"] = ratio(seconds[n], seconds["layernorm"])
    summary = Table("validation bits/byte (mean over seeds) and training time, against LayerNorm",
                    ("norm", "bits/byte", "x LayerNorm", "training time x LayerNorm"),
                    tuple((n, mean[n], metrics[f"valid_ratio_to_layernorm[{n}]"],
                           metrics[f"train_time_ratio_to_layernorm[{n}]"]) for n in NORMS))
    every = Table("every run", ("norm", "seed", "final valid bits/byte", "median grad norm", "seconds",
                                "replaced layers"),
                  tuple((r["norm"], r["seed"], r["final_valid_bits_per_byte"], r["grad_norm_median"],
                         r["seconds"], r["replaced_layers"]) for r in runs))
    curves = Table("validation bits/byte during training", ("norm", "seed", "step", "bits/byte"),
                   tuple((r["norm"], r["seed"], s, v) for r in runs for s, v in r["valid"]))
    series = []
    for r in runs:
        label = f"{r['norm']} (seed {r['seed']})"
        steps = [s for s, _ in r["train_bits_per_byte"]]
        values = [v for _, v in r["train_bits_per_byte"]]
        window = max(1, len(values) // 25)
        smooth = [statistics.mean(values[i - window + 1:i + 1]) for i in range(window - 1, len(values))]
        series.append(Series(f"train: {label}", steps[window - 1:], smooth, "step", "bits per byte",
                             group=f"training loss (moving average of {window})"))
        series.append(Series(f"valid: {label}", [s for s, _ in r["valid"]], [v for _, v in r["valid"]],
                             "step", "bits per byte", group="validation (eval mode, running statistics)"))
    notes = (f"GPT-2, 3 layers, width 64, byte vocabulary, trained from scratch: {setup['steps']} steps of "
             f"{setup['batch']} windows of {setup['context'] // 4}-{setup['context']} bytes, seeds "
             f"{list(setup['seeds'])}; AdamW lr {OPTIMISATION['lr']:g}, weight decay "
             f"{OPTIMISATION['weight_decay']} on every parameter, warm-up {max(1, setup['steps'] // 20)} "
             f"steps then cosine, clip {OPTIMISATION['grad_clip']}; PowerNorm warmup_iters "
             f"{max(1, setup['steps'] // 10)}; every run through the core recipe runner",
             f"train: {results['train_bytes']:,} bytes of {len(TRAIN_FILES)} stdlib files; validation: "
             f"{results['valid_windows']} windows of {len(VALID_FILES)} other files "
             f"({results['valid_bytes']:,} bytes)",
             "paper (arXiv 2003.07845): PN beats LN by 0.4/0.6 BLEU (IWSLT14/WMT14) and 5.6/3.0 PPL "
             "(PTB/WikiText-103); naive BN is clearly worse than LN in transformers")
    provenance = provenance or Provenance()
    return Report(name="powernorm", metrics=metrics, tables=(summary, every, curves), series=tuple(series),
                  notes=notes, provenance=attrs.evolve(provenance, extra={
                      **provenance.extra, "quick": results["quick"], "threads": results["threads"],
                      "seeds": list(setup["seeds"]),
                      "setup": {k: v for k, v in setup.items() if k != "seeds"}}))


def _seeds(instance: Any, attribute: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not value or not all(type(v) is int and v >= 0 for v in value):
        raise ConfigError(f"seeds must be a non-empty list of ints >= 0, got {value!r}")


@attrs.define
class PowerNormBenchmark(Benchmark):
    """LayerNorm, masked BatchNorm and PowerNorm trained the same way, in one run."""

    name = "powernorm"

    steps: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": "optimizer steps per run (default 300; quick 60)"})
    seeds: tuple[int, ...] | None = attrs.field(
        default=None, converter=lambda v: tuple(v) if isinstance(v, list) else v, validator=_seeds,
        metadata={"doc": "one run per norm and seed (default [0, 1]; quick [0])"})
    threads: int = attrs.field(default=1, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        registry = self.ctx.registry if self.ctx is not None else None
        results = measure(quick=quick, steps=self.steps, seeds=self.seeds, threads=self.threads)
        runtime = Runtime(device="cpu", dtype="float32", seed=0, threads=self.threads)
        return to_report(results, Provenance.collect(registry, runtime, "tiny GPT-2 (from scratch)", 0))
