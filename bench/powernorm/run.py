"""LayerNorm vs masked BatchNorm vs PowerNorm (Shen et al., 2020, arXiv 2003.07845) in a
tiny GPT-2 byte-level language model trained from scratch on Python standard-library
source. Same initial weights (apart from the norm layers), same batches, same optimizer
and budget per seed; sequences have random lengths and are right-padded, so the masked
statistics matter. Validation is in eval mode (running statistics for BN and PN), in
bits per byte over the real tokens of fixed held-out batches.

Writes ``powernorm.json`` and ``powernorm.png``; the full run stays under 10 minutes and
``--quick`` under 2 minutes on 2 CPU threads.
"""

from __future__ import annotations

import json
import math
import sysconfig
import time
from pathlib import Path

import torch
from tokensmith_powernorm.surgery import BatchNormProvider, PowerNormProvider

from tokensmith import atomic_write_text

PAD = 256
NORMS = ("layernorm", "batchnorm", "powernorm")
TRAIN_FILES = ("argparse", "typing", "inspect", "dataclasses", "pathlib", "functools", "enum",
               "collections/__init__", "subprocess", "tarfile", "zipfile", "logging/__init__",
               "email/message", "json/decoder", "unittest/case", "asyncio/tasks", "string",
               "textwrap", "difflib", "pprint", "heapq", "bisect", "shutil", "tempfile")
VALID_FILES = ("calendar", "fractions", "statistics", "csv", "configparser")


def corpus(names: tuple[str, ...]) -> torch.Tensor:
    root = Path(sysconfig.get_paths()["stdlib"])
    data = b"\n".join((root / f"{name}.py").read_bytes() for name in names)
    return torch.tensor(list(data), dtype=torch.long)


def batches(data: torch.Tensor, n: int, batch: int, context: int, seed: int):
    """``n`` batches of windows of random length in [context/4, context], right-padded."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        lengths = torch.randint(context // 4, context + 1, (batch,), generator=g)
        starts = torch.randint(0, len(data) - context - 1, (batch,), generator=g)
        ids = torch.full((batch, context), PAD, dtype=torch.long)
        mask = torch.zeros(batch, context, dtype=torch.long)
        for i, (start, length) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
            ids[i, :length] = data[start:start + length]
            mask[i, :length] = 1
        yield ids, mask, ids.masked_fill(mask == 0, -100)


def build_model(norm: str, seed: int, context: int, warmup_iters: int):
    from transformers import GPT2Config, GPT2LMHeadModel

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


@torch.no_grad()
def bits_per_byte(model, valid) -> float:
    model.eval()
    total, count = 0.0, 0
    for ids, mask, labels in valid:
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        n = int((labels[:, 1:] != -100).sum())
        total += float(out.loss) * n
        count += n
    model.train()
    return total / count / math.log(2)


def train(norm: str, seed: int, *, steps: int, batch: int, context: int, eval_every: int,
          train_data: torch.Tensor, valid: list) -> dict:
    model, report = build_model(norm, seed, context, warmup_iters=max(1, steps // 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup)
                                                 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses, evals, grad_norms = [], [], []
    start = time.perf_counter()
    for step, (ids, mask, labels) in enumerate(batches(train_data, steps, batch, context, 1000 + seed)):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)))
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()) / math.log(2))
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            evals.append((step + 1, bits_per_byte(model, valid)))
    seconds = time.perf_counter() - start
    return {"norm": norm, "seed": seed, "train_bits_per_byte": losses, "valid": evals,
            "final_valid_bits_per_byte": evals[-1][1],
            "grad_norm_median": sorted(grad_norms)[len(grad_norms) // 2],
            "seconds": seconds, "replaced_layers": len(report) if report else 0}


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(NORMS, ("tab:blue", "tab:red", "tab:green"), strict=True))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        label = f"{run['norm']} (seed {run['seed']})"
        curve = torch.tensor(run["train_bits_per_byte"])
        window = max(1, len(curve) // 25)
        smooth = curve.unfold(0, window, 1).mean(dim=1) if len(curve) >= window else curve
        left.plot(range(window, window + len(smooth)), smooth, color=colors[run["norm"]],
                  alpha=0.8, label=label)
        steps, values = zip(*run["valid"], strict=True)
        right.plot(steps, values, marker="o", color=colors[run["norm"]], alpha=0.8, label=label)
    left.set(title="training loss (moving average)", xlabel="step", ylabel="bits per byte")
    right.set(title="validation (eval mode, running statistics)", xlabel="step", ylabel="bits per byte")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("tiny GPT-2 on Python stdlib bytes: LayerNorm vs BatchNorm vs PowerNorm")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(out_dir: Path, quick: bool) -> dict:
    torch.set_num_threads(1)
    settings = ({"steps": 60, "batch": 16, "context": 96, "eval_every": 20, "seeds": (0,)} if quick else
                {"steps": 300, "batch": 16, "context": 128, "eval_every": 50, "seeds": (0, 1)})
    seeds = settings.pop("seeds")
    train_data, valid_data = corpus(TRAIN_FILES), corpus(VALID_FILES)
    valid = list(batches(valid_data, 8, 16, settings["context"], seed=7))
    runs = [train(norm, seed, train_data=train_data, valid=valid, **settings)
            for seed in seeds for norm in NORMS]
    final = {norm: [r["final_valid_bits_per_byte"] for r in runs if r["norm"] == norm] for norm in NORMS}
    mean = {norm: sum(v) / len(v) for norm, v in final.items()}
    seconds = {norm: sum(r["seconds"] for r in runs if r["norm"] == norm) for norm in NORMS}
    summary = {
        "setup": {**settings, "seeds": list(seeds), "model": "GPT-2, 3 layers, width 64, byte vocabulary",
                  "corpus": {"train_bytes": len(train_data), "valid_bytes": len(valid_data),
                             "train_files": list(TRAIN_FILES), "valid_files": list(VALID_FILES)},
                  "powernorm": {"warmup_iters": max(1, settings["steps"] // 10), "alpha_fwd": 0.9,
                                "alpha_bkw": 0.9}, "quick": quick},
        "final_valid_bits_per_byte": final,
        "mean_final_valid_bits_per_byte": mean,
        "valid_ratio_to_layernorm": {norm: mean[norm] / mean["layernorm"] for norm in NORMS},
        "train_time_ratio_to_layernorm": {norm: seconds[norm] / seconds["layernorm"] for norm in NORMS},
        "runs": runs,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "powernorm.json", json.dumps(summary, indent=1))
    plot(runs, out_dir / "powernorm.png")
    return {k: summary[k] for k in ("mean_final_valid_bits_per_byte", "valid_ratio_to_layernorm",
                                    "train_time_ratio_to_layernorm")}
