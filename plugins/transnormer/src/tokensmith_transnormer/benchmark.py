"""The ``transnormer`` benchmark (``tokensmith bench transnormer``): TransNormerLLM (arXiv
2307.14995) at small scale, against softmax baselines in the same run.

1. One attention layer at equal width (256, 4 heads): time and peak tensor memory vs
   sequence length of Lightning Attention (blockwise linear attention, pure PyTorch) and
   causal softmax attention (materialised, and PyTorch's fused SDPA). Growth exponents are
   fitted on the longer half of the lengths (1 = linear, 2 = quadratic).
2. Norm layers: forward + backward time of SRMSNorm vs RMSNorm (with gain) and LayerNorm.
3. A tiny TransNormer LM vs a tiny Llama (transformers ``LlamaForCausalLM`` from a config)
   with the same parameter count (within 0.1%), tokenizer, batches, optimiser and steps, on
   Python standard-library source, both trained through the core recipe runner
   (transformers' Trainer); perplexity on held-out files. The full run tries two learning
   rates for the baseline and keeps its best. Then the trained TransNormer decodes greedily
   through tokensmith's LanguageModel (recurrent form).

Memory: torch.profiler memory events (live tensor bytes allocated by the CPU allocator
during the call; see :mod:`tokensmith_transnormer.measure`). Times: fastest of a few calls,
on ``threads`` CPU threads (default one: the machine is shared).
"""

from __future__ import annotations

import math
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

import attrs
import torch

from tokensmith import (
    Benchmark,
    BuildContext,
    Provenance,
    Report,
    Runtime,
    Series,
    Table,
    positive_int,
    ratio,
)

WIDTH, HEADS = 256, 4
#: a positive int, or None (the default)
_OPTIONAL_POSITIVE = attrs.validators.optional(positive_int)

FULL = {"lengths": (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536),
        "limits": {"softmax (materialised)": 4096, "softmax (fused SDPA)": 16384}, "norm_repeats": 10,
        "text": (2_000_000, 200_000), "steps": 250, "seq": 128, "batch": 16, "llama_lrs": (3e-3, 1e-3)}
QUICK = {"lengths": (512, 1024, 2048, 4096, 8192),
         "limits": {"softmax (materialised)": 2048, "softmax (fused SDPA)": 4096}, "norm_repeats": 5,
         "text": (600_000, 60_000), "steps": 60, "seq": 128, "batch": 16, "llama_lrs": (3e-3,)}
NORM_SHAPE = (8, 512, 576)
#: the optimiser of both language models ([train] keys; lr is each run's own)
OPTIMISATION = {"schedule": "cosine", "weight_decay": 0.01, "grad_clip": 1.0,
                "arguments": {"adam_beta2": 0.95}}
TRANSNORMER_LR = 3e-3


def growth_exponent(lengths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(n) over the longer half of the points."""
    half = max(2, len(lengths) // 2)
    xs = [math.log(n) for n in lengths[-half:]]
    ys = [math.log(max(v, 1e-12)) for v in values[-half:]]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def attention_scaling(lengths: tuple[int, ...], limits: dict[str, int], *, block_size: int = 256,
                      budget_s: float = 3.0) -> dict[str, Any]:
    """Per attention form: the lengths measured (up to its limit), the fastest time and the peak
    tensor bytes of one call at each, and the fitted growth exponents."""
    from .measure import attention_forms, best_seconds, peak_tensor_bytes, random_qkv

    forms = attention_forms(HEADS, block_size=block_size)
    out: dict[str, Any] = {name: {"lengths": [], "seconds": [], "peak_bytes": []} for name in forms}
    with torch.inference_mode():
        for n in lengths:
            q, k, v = random_qkv(n, WIDTH, HEADS)
            for name, fn in forms.items():
                if n > limits.get(name, n):
                    continue
                call = lambda fn=fn, q=q, k=k, v=v: fn(q, k, v)  # noqa: E731
                row = out[name]
                row["lengths"].append(n)
                row["seconds"].append(best_seconds(call, repeats=9, budget_s=budget_s))
                row["peak_bytes"].append(peak_tensor_bytes(call))
    for row in out.values():
        row["time_exponent"] = growth_exponent(row["lengths"], row["seconds"])
        row["memory_exponent"] = growth_exponent(row["lengths"], row["peak_bytes"])
    return out


def norm_speed(shape: tuple[int, ...] = NORM_SHAPE, repeats: int = 10) -> dict[str, Any]:
    from .measure import best_seconds
    from .srmsnorm import SRMSNorm

    x = torch.randn(*shape, requires_grad=True)
    dim = shape[-1]
    norms = {"SRMSNorm": SRMSNorm(dim), "RMSNorm (gain)": torch.nn.RMSNorm(dim, eps=1e-6),
             "LayerNorm": torch.nn.LayerNorm(dim)}

    def step(norm):
        x.grad = None
        norm(x).sum().backward()

    seconds = {name: best_seconds(lambda norm=norm: step(norm), repeats=repeats)
               for name, norm in norms.items()}
    return {"shape": list(shape), "seconds_fwd_bwd": seconds,
            "srmsnorm_speedup_vs_rmsnorm": ratio(seconds["RMSNorm (gain)"], seconds["SRMSNorm"]),
            "srmsnorm_speedup_vs_layernorm": ratio(seconds["LayerNorm"], seconds["SRMSNorm"])}


def stdlib_corpus(train_budget: int, eval_budget: int) -> tuple[str, str]:
    """Train and held-out text: the standard library's top-level files, every tenth held out."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, held = [], []
    size_t = size_h = 0
    for i, path in enumerate(sorted(root.glob("*.py"))):
        text = path.read_text(encoding="utf-8", errors="strict")
        if i % 10 == 9 and size_h < eval_budget:
            held.append(text)
            size_h += len(text)
        elif i % 10 != 9 and size_t < train_budget:
            train.append(text)
            size_t += len(text)
    return "\n".join(train), "\n".join(held)


def llama_matching(vocab: int, width: int, layers: int, heads: int, target: int) -> Any:
    """A LlamaForCausalLM (tied embeddings, full KV heads) whose MLP width brings its
    parameter count closest to ``target``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    per_hidden = 3 * width * layers
    fixed = vocab * width + layers * (4 * width * width + 2 * width) + width
    hidden = max(1, round((target - fixed) / per_hidden))
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=hidden,
                                        num_hidden_layers=layers, num_attention_heads=heads,
                                        num_key_value_heads=heads, max_position_embeddings=4096,
                                        tie_word_embeddings=True))


def windows(ids: Any, seq: int, n: int, seed: int) -> list[dict[str, list[int]]]:
    """``n`` random windows of ``seq + 1`` token ids (the model reads ``seq`` and predicts the
    next of each), in the order a seeded generator draws them: one optimizer step per
    ``batch`` of them, the same for every model."""
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - seq - 1, (n,), generator=g).tolist()
    return [{"input_ids": ids[s:s + seq + 1].tolist()} for s in starts]


def _logits(model: Any, x: Any) -> Any:
    out = model(input_ids=x)
    return out.logits if hasattr(out, "logits") else out[0]


def held_out_nll(model: Any, ids: Any, seq: int) -> tuple[float, int]:
    """Total NLL (nats) and token count over non-overlapping windows of the held-out ids."""
    from torch.nn import functional as F

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        starts = list(range(0, len(ids) - seq - 1, seq))
        for first in range(0, len(starts), 8):
            xb = torch.stack([ids[s:s + seq + 1] for s in starts[first:first + 8]])
            logits = _logits(model, xb[:, :-1])
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1),
                                           reduction="sum"))
            count += xb[:, 1:].numel()
    return total, count


class RunnerView(torch.nn.Module):
    """A TransNormer LM as the runner trains it: ``forward(input_ids)`` returns the logits.
    transformers' Trainer writes ``model.config.use_cache`` on any model with a ``config``
    attribute, and a TransNormer's config is a frozen record, so the Trainer gets this view
    (same parameters, no ``config``)."""

    def __init__(self, lm: torch.nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids)[0]

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.lm.get_input_embeddings()


def train_lm(model: Any, examples: list[dict[str, list[int]]], *, steps: int, seq: int, batch: int, lr: float,
             output_dir: Path) -> Any:
    """``steps`` steps of ``batch`` windows, in order, through ``tokensmith.run_recipe``: AdamW
    (β₂ 0.95, weight decay 0.01), warm-up over 5% of the steps then cosine, clip 1.0."""
    from tokensmith import run_recipe

    arguments = {**OPTIMISATION, "lr": lr, "steps": steps, "batch_size": batch, "warmup": max(1, steps // 20),
                 "shuffle": False, "progress": "off", "save_final": False}
    from .model import TransNormerLM

    trained = RunnerView(model) if isinstance(model, TransNormerLM) else model
    return run_recipe(model=trained, train_data=examples, data={"max_length": seq + 1}, arguments=arguments,
                      output_dir=output_dir, runtime=Runtime(device="cpu", dtype="float32", seed=0))


def perplexity(train_text: str, held_text: str, *, steps: int, seq: int, batch: int,
               llama_lrs: tuple[float, ...], vocab: int = 1024, width: int = 128, layers: int = 4,
               decode_tokens: int = 48) -> dict[str, Any]:
    """Train a TransNormer LM and an equally sized Llama on the same windows; held-out
    perplexity and bits per byte, the Llama's learning-rate sweep, and recurrent decoding."""
    from tokensmith import tiny_tokenizer

    from .model import TransNormerArchitecture

    tok = tiny_tokenizer("byte_level", vocab_size=vocab,
                         corpus=[train_text[i:i + 20_000] for i in range(0, len(train_text), 20_000)])
    train_ids = torch.tensor(tok.encode(train_text).ids)
    held_ids = torch.tensor(tok.encode(held_text).ids)
    architecture = TransNormerArchitecture(vocab_size=tok.vocab_size, width=width, layers=layers, heads=4,
                                           block_size=64, lrpe=True)
    n_tnl = sum(p.numel() for p in architecture.build(Runtime(seed=0)).parameters())
    runs = [("transnormer", TRANSNORMER_LR, lambda: architecture.build(Runtime(seed=0)))]
    runs += [("llama", lr, lambda: llama_matching(tok.vocab_size, width, layers, 4, n_tnl))
             for lr in llama_lrs]
    examples = windows(train_ids, seq, steps * batch, seed=0)
    held_bytes = len(held_text.encode("utf-8"))
    out: dict[str, Any] = {"tokenizer_vocab": tok.vocab_size, "train_tokens": len(train_ids),
                           "held_out_tokens": len(held_ids), "held_out_bytes": held_bytes, "steps": steps,
                           "width": width, "layers": layers,
                           "seq_len": seq, "batch": batch, "llama_lr_sweep": {}}
    models = {}
    with tempfile.TemporaryDirectory(prefix="tokensmith-bench-transnormer-") as folder:
        for i, (name, lr, make) in enumerate(runs):
            model = make()
            result = train_lm(model, examples, steps=steps, seq=seq, batch=batch, lr=lr,
                              output_dir=Path(folder) / str(i))
            nll, count = held_out_nll(model, held_ids, seq)
            record = {"parameters": sum(p.numel() for p in model.parameters()), "lr": lr,
                      "train_loss": result.losses, "seconds_per_step": result.seconds / steps,
                      "held_out_ppl": math.exp(nll / count),
                      "held_out_bits_per_byte": nll / math.log(2) / held_bytes * len(held_ids) / count}
            if name == "llama":
                out["llama_lr_sweep"][lr] = record["held_out_ppl"]
            if name not in out or record["held_out_ppl"] < out[name]["held_out_ppl"]:
                out[name], models[name] = record, model
    out["ppl_ratio_transnormer_over_llama"] = ratio(out["transnormer"]["held_out_ppl"],
                                                    out["llama"]["held_out_ppl"])
    out["decoding"] = decode_with_tokensmith(models["transnormer"], tok, decode_tokens)
    return out


def decode_with_tokensmith(model: Any, tok: Any, tokens: int = 48) -> dict[str, Any]:
    """Greedy decoding through TransNormerLanguageModel: the state size stays fixed while
    the recurrent logits track a blockwise re-read of the whole sequence."""
    from .language_model import TransNormerLanguageModel

    lm = TransNormerLanguageModel(model, tok, Runtime(seed=0))
    state = lm.start(list(lm.start_ids) + list(tok.encode("def __init__(self").ids))
    size = state.cache.nbytes
    sizes, generated = set(), []
    for _ in range(tokens):
        token = int(state.logprobs.argmax())
        generated.append(token)
        state = lm.extend(state, [token])
        sizes.add(state.cache.nbytes)
    reread = lm.logprobs_batch([list(state.ids)])[0][-1]
    return {"prompt": "def __init__(self", "continuation": tok.decode(generated), "tokens": tokens,
            "state_bytes": size, "state_sizes_seen": sorted(sizes),
            "max_abs_logprob_diff_recurrent_vs_blockwise": float((state.logprobs - reread).abs().max())}


def measure(*, quick: bool, steps: int | None = None, threads: int = 1) -> dict[str, Any]:
    """Every number of the benchmark, as one mapping (see :func:`to_report`)."""
    torch.set_num_threads(threads)
    cfg = QUICK if quick else FULL
    train_text, held_text = stdlib_corpus(*cfg["text"])
    return {"quick": quick, "threads": threads, "width": WIDTH, "heads": HEADS,
            "attention": attention_scaling(cfg["lengths"], cfg["limits"]),
            "norms": norm_speed(NORM_SHAPE, cfg["norm_repeats"]),
            "perplexity": perplexity(train_text, held_text, steps=steps or cfg["steps"], seq=cfg["seq"],
                                     batch=cfg["batch"], llama_lrs=cfg["llama_lrs"])}


def _smooth(values: list[float]) -> list[float]:
    window = max(1, len(values) // 20)
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


def to_report(results: dict[str, Any], provenance: Provenance | None = None) -> Report:
    """Growth exponents, the norm speed-ups, perplexities and their ratio, decoding; tables of
    every measurement; time and memory against length, the norm times and the loss curves."""
    att, norms, ppl = results["attention"], results["norms"], results["perplexity"]
    lightning = next(name for name in att if name.startswith("lightning"))
    tnl, llama, decoding = ppl["transnormer"], ppl["llama"], ppl["decoding"]
    metrics: dict[str, float] = {}
    for name, key in ((lightning, "lightning"), ("softmax (fused SDPA)", "sdpa"),
                      ("softmax (materialised)", "materialised")):
        metrics[f"{key}_time_exponent"] = att[name]["time_exponent"]
        metrics[f"{key}_memory_exponent"] = att[name]["memory_exponent"]
    longest = max(n for n in att["softmax (fused SDPA)"]["lengths"] if n in att[lightning]["lengths"])
    at = {name: dict(zip(row["lengths"], row["seconds"], strict=True)) for name, row in att.items()}
    metrics["sdpa_time_vs_lightning_at_longest_common_length"] = ratio(at["softmax (fused SDPA)"][longest],
                                                                       at[lightning][longest])
    metrics.update({"srmsnorm_speedup_vs_rmsnorm": norms["srmsnorm_speedup_vs_rmsnorm"],
                    "srmsnorm_speedup_vs_layernorm": norms["srmsnorm_speedup_vs_layernorm"],
                    "ppl_transnormer": tnl["held_out_ppl"], "ppl_llama": llama["held_out_ppl"],
                    "ppl_ratio_transnormer_over_llama": ppl["ppl_ratio_transnormer_over_llama"],
                    "bits_per_byte_transnormer": tnl["held_out_bits_per_byte"],
                    "bits_per_byte_llama": llama["held_out_bits_per_byte"],
                    "step_time_ratio_transnormer_over_llama": ratio(tnl["seconds_per_step"],
                                                                    llama["seconds_per_step"]),
                    "decoding_state_bytes": decoding["state_bytes"],
                    "decoding_max_abs_logprob_diff": decoding["max_abs_logprob_diff_recurrent_vs_blockwise"]})
    attention = Table(f"one attention layer, width {results['width']}, {results['heads']} heads",
                      ("form", "length", "ms (fastest)", "peak tensor MiB"),
                      tuple((name, n, s * 1e3, b / 2**20) for name, row in att.items() for n, s, b
                            in zip(row["lengths"], row["seconds"], row["peak_bytes"], strict=True)))
    exponents = Table("growth exponents (longer half of the lengths; 1 linear, 2 quadratic)",
                      ("form", "time", "memory"),
                      tuple((name, row["time_exponent"], row["memory_exponent"])
                            for name, row in att.items()))
    norm_table = Table(f"norm forward + backward on {norms['shape']}", ("norm", "ms (fastest)"),
                       tuple((name, s * 1e3) for name, s in norms["seconds_fwd_bwd"].items()))
    models = Table(f"language models: {ppl['steps']} steps of {ppl['batch']} x {ppl['seq_len']} tokens, "
                   "same windows, through the recipe runner",
                   ("model", "parameters", "lr", "held-out ppl", "bits/byte", "ms/step"),
                   tuple((name, r["parameters"], r["lr"], r["held_out_ppl"], r["held_out_bits_per_byte"],
                          r["seconds_per_step"] * 1e3)
                         for name, r in (("transnormer", tnl), ("llama", llama))))
    sweep = Table("Llama learning-rate sweep (the best is kept)", ("lr", "held-out ppl"),
                  tuple((float(lr), v) for lr, v in ppl["llama_lr_sweep"].items()))
    decode = Table("greedy decoding, recurrent form", ("prompt", "continuation", "state bytes",
                                                       "max |recurrent − blockwise| log-prob"),
                   ((decoding["prompt"], decoding["continuation"], decoding["state_bytes"],
                     decoding["max_abs_logprob_diff_recurrent_vs_blockwise"]),))
    series = []
    for name, row in att.items():
        series.append(Series(f"time: {name}", row["lengths"], row["seconds"], "sequence length", "seconds",
                             group="attention time", log_x=True, log_y=True))
        series.append(Series(f"memory: {name}", row["lengths"], [b / 2**20 for b in row["peak_bytes"]],
                             "sequence length", "peak tensor MiB", group="attention memory", log_x=True,
                             log_y=True))
    series.append(Series("norm fwd+bwd", list(norms["seconds_fwd_bwd"]),
                         [s * 1e3 for s in norms["seconds_fwd_bwd"].values()], y_label="ms", plot="bar",
                         group="norms"))
    for name, r in (("transnormer", tnl), ("llama", llama)):
        series.append(Series(f"{name} (lr {r['lr']:g}, ppl {r['held_out_ppl']:.1f})",
                             [s for s, _ in r["train_loss"]], _smooth([v for _, v in r["train_loss"]]),
                             "step", "train loss (smoothed)", group="language models"))
    notes = (f"CPU, {results['threads']} thread(s); times are the fastest of 2-9 calls (a shared machine), "
             "memory the peak of live tensor bytes during one call (torch.profiler memory events)",
             f"TransNormer LM ({ppl['layers']} layers, width {ppl['width']}, LRPE, block 64) vs "
             "LlamaForCausalLM of the same size, "
             f"BPE {ppl['tokenizer_vocab']} on stdlib source ({ppl['train_tokens']:,} train tokens, "
             f"{ppl['held_out_tokens']:,} held-out); AdamW β₂ 0.95, weight decay 0.01 (the Trainer's: not on "
             "biases and norm gains), warm-up 5% then cosine, clip 1.0; both through the core recipe runner",
             "paper (385M-7B, A100, Triton): 385M PPL 4.77 vs 5.16 for a Transformer; Lightning Attention "
             "linear in length, > 2x faster and 4x less memory than the PyTorch implementation; SRMSNorm "
             "> 20% faster training")
    provenance = provenance or Provenance()
    return Report(name="transnormer", metrics=metrics,
                  tables=(exponents, attention, norm_table, models, sweep, decode), series=tuple(series),
                  notes=notes, provenance=attrs.evolve(provenance, extra={
                      **provenance.extra, "quick": results["quick"], "threads": results["threads"]}))


@attrs.define
class TransNormerBenchmark(Benchmark):
    """Lightning Attention, SRMSNorm and a tiny TransNormer LM against softmax baselines."""

    name = "transnormer"

    steps: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": "training steps of each language model (default 250; quick 60)"})
    threads: int = attrs.field(default=1, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        registry = self.ctx.registry if self.ctx is not None else None
        results = measure(quick=quick, steps=self.steps, threads=self.threads)
        runtime = Runtime(device="cpu", dtype="float32", seed=0, threads=self.threads)
        return to_report(results, Provenance.collect(registry, runtime, "transnormer-lm vs llama (tiny)", 0))
