"""TransNormerLLM (arXiv 2307.14995) at small scale, against softmax baselines in the same run.

1. One attention layer at equal width (256, 4 heads): time and peak tensor memory vs
   sequence length of Lightning Attention (blockwise linear attention, pure PyTorch)
   and causal softmax attention (materialised, and PyTorch's fused SDPA). Growth
   exponents are fitted on the longer half of the lengths (1 = linear, 2 = quadratic).
2. Norm layers: forward + backward time of SRMSNorm vs RMSNorm (with gain) and LayerNorm.
3. A tiny TransNormer LM vs a tiny Llama (transformers ``LlamaForCausalLM`` from a config)
   with the same parameter count (within 0.1%), tokenizer, batches, optimiser and steps, on
   Python standard-library source; perplexity on held-out files. The full run tries two
   learning rates for the baseline and keeps its best. Then the trained
   TransNormer decodes greedily through tokensmith's LanguageModel (recurrent form).

Memory: torch.profiler memory events (live tensor bytes allocated by the CPU allocator
during the call; see ``tokensmith_transnormer.measure``). Times: fastest of a few calls.
Runs on one thread (``torch.set_num_threads(1)``): the machine is shared.
"""

from __future__ import annotations

import json
import math
import sysconfig
import time
from pathlib import Path

import torch
from tokensmith_transnormer.language_model import TransNormerLanguageModel
from tokensmith_transnormer.measure import attention_forms, best_seconds, peak_tensor_bytes, random_qkv
from tokensmith_transnormer.model import TransNormerArchitecture
from tokensmith_transnormer.srmsnorm import SRMSNorm
from torch.nn import functional as F

from tokensmith import Runtime, atomic_write_text, tiny_tokenizer

NAME = "transnormer"
WIDTH, HEADS = 256, 4


def growth_exponent(lengths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) on log(n) over the longer half of the points."""
    half = max(2, len(lengths) // 2)
    xs = [math.log(n) for n in lengths[-half:]]
    ys = [math.log(max(v, 1e-12)) for v in values[-half:]]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def attention_scaling(quick: bool) -> dict:
    lengths = [512, 1024, 2048, 4096, 8192] if quick else [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
    limits = {"softmax (materialised)": 2048 if quick else 4096,
              "softmax (fused SDPA)": 4096 if quick else 16384}
    forms = attention_forms(HEADS, block_size=256)
    out: dict = {name: {"lengths": [], "seconds": [], "peak_bytes": []} for name in forms}
    with torch.inference_mode():
        for n in lengths:
            q, k, v = random_qkv(n, WIDTH, HEADS)
            for name, fn in forms.items():
                if n > limits.get(name, n):
                    continue
                call = lambda fn=fn, q=q, k=k, v=v: fn(q, k, v)  # noqa: E731
                row = out[name]
                row["lengths"].append(n)
                row["seconds"].append(best_seconds(call, repeats=9, budget_s=3.0))
                row["peak_bytes"].append(peak_tensor_bytes(call))
                print(f"  n={n:>6} {name:<24} {row['seconds'][-1] * 1e3:9.1f} ms "
                      f"{row['peak_bytes'][-1] / 2**20:9.1f} MiB", flush=True)
    for row in out.values():
        row["time_exponent"] = growth_exponent(row["lengths"], row["seconds"])
        row["memory_exponent"] = growth_exponent(row["lengths"], row["peak_bytes"])
    return out


def norm_speed(quick: bool) -> dict:
    x = torch.randn(8, 512, 576, requires_grad=True)
    norms = {"SRMSNorm": SRMSNorm(576), "RMSNorm (gain)": torch.nn.RMSNorm(576, eps=1e-6),
             "LayerNorm": torch.nn.LayerNorm(576)}

    def step(norm):
        x.grad = None
        norm(x).sum().backward()

    seconds = {name: best_seconds(lambda norm=norm: step(norm), repeats=5 if quick else 10)
               for name, norm in norms.items()}
    return {"shape": list(x.shape), "seconds_fwd_bwd": seconds,
            "srmsnorm_speedup_vs_rmsnorm": seconds["RMSNorm (gain)"] / seconds["SRMSNorm"],
            "srmsnorm_speedup_vs_layernorm": seconds["LayerNorm"] / seconds["SRMSNorm"]}


def stdlib_corpus(quick: bool) -> tuple[str, str]:
    """Train and held-out text: alternate files of the standard library's top level."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py"))
    train_budget, eval_budget = (600_000, 60_000) if quick else (2_000_000, 200_000)
    train, held = [], []
    size_t = size_h = 0
    for i, path in enumerate(files):
        text = path.read_text(encoding="utf-8", errors="strict")
        if i % 10 == 9 and size_h < eval_budget:
            held.append(text)
            size_h += len(text)
        elif i % 10 != 9 and size_t < train_budget:
            train.append(text)
            size_t += len(text)
    return "\n".join(train), "\n".join(held)


def llama_matching(vocab: int, width: int, layers: int, heads: int, target: int):
    """A LlamaForCausalLM (tied embeddings, full KV heads) whose MLP width brings its
    parameter count closest to ``target``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def config(hidden: int) -> LlamaConfig:
        return LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=hidden,
                           num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                           max_position_embeddings=4096, tie_word_embeddings=True)

    per_hidden = 3 * width * layers
    fixed = vocab * width + layers * (4 * width * width + 2 * width) + width
    hidden = max(1, round((target - fixed) / per_hidden))
    torch.manual_seed(0)
    return LlamaForCausalLM(config(hidden))


def batches(ids: torch.Tensor, seq: int, batch: int, steps: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - seq - 1, (batch,), generator=g)
        yield torch.stack([ids[s:s + seq + 1] for s in starts.tolist()])


def train(model, forward, ids: torch.Tensor, steps: int, seq: int, batch: int, lr: float) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup)
                                              * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses = []
    model.train()
    start = time.perf_counter()
    for xb in batches(ids, seq, batch, steps, seed=0):
        logits = forward(model, xb[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return {"train_loss": losses, "seconds_per_step": (time.perf_counter() - start) / steps}


def held_out_nll(model, forward, ids: torch.Tensor, seq: int) -> tuple[float, int]:
    """Total NLL (nats) and token count over non-overlapping windows of the held-out ids."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        windows = list(range(0, len(ids) - seq - 1, seq))
        for first in range(0, len(windows), 8):
            xb = torch.stack([ids[s:s + seq + 1] for s in windows[first:first + 8]])
            logits = forward(model, xb[:, :-1])
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1),
                                           reduction="sum"))
            count += xb[:, 1:].numel()
    return total, count


def perplexity(quick: bool) -> dict:
    train_text, held_text = stdlib_corpus(quick)
    tok = tiny_tokenizer("byte_level", vocab_size=1024, corpus=[train_text[i:i + 20_000]
                                                                for i in range(0, len(train_text), 20_000)])
    train_ids = torch.tensor(tok.encode(train_text).ids)
    held_ids = torch.tensor(tok.encode(held_text).ids)
    steps, seq, batch = (60, 128, 16) if quick else (250, 128, 16)
    architecture = TransNormerArchitecture(vocab_size=tok.vocab_size, width=128, layers=4, heads=4,
                                           block_size=64, lrpe=True)
    n_tnl = sum(p.numel() for p in architecture.build(Runtime(seed=0)).parameters())
    # the baseline gets a learning-rate sweep in the full run; TransNormer gets one value
    runs = [("transnormer", 3e-3, lambda: architecture.build(Runtime(seed=0)),
             lambda m, x: m(x)[0])]
    runs += [("llama", lr, lambda: llama_matching(tok.vocab_size, 128, 4, 4, n_tnl),
              lambda m, x: m(input_ids=x).logits) for lr in ((3e-3,) if quick else (3e-3, 1e-3))]
    held_bytes = len(held_text.encode("utf-8"))
    out: dict = {"tokenizer_vocab": tok.vocab_size, "train_tokens": len(train_ids),
                 "held_out_tokens": len(held_ids), "held_out_bytes": held_bytes,
                 "steps": steps, "seq_len": seq, "batch": batch, "llama_lr_sweep": {}}
    models = {}
    for name, lr, make, forward in runs:
        model = make()
        params = sum(p.numel() for p in model.parameters())
        print(f"  training {name} ({params:,} parameters, {steps} steps, lr {lr:g})", flush=True)
        result = train(model, forward, train_ids, steps, seq, batch, lr=lr)
        nll, count = held_out_nll(model, forward, held_ids, seq)
        result.update(parameters=params, lr=lr, held_out_ppl=math.exp(nll / count),
                      held_out_bits_per_byte=nll / math.log(2) / held_bytes * len(held_ids) / count)
        print(f"    held-out ppl {result['held_out_ppl']:.2f}, "
              f"{result['seconds_per_step'] * 1e3:.0f} ms/step", flush=True)
        if name == "llama":
            out["llama_lr_sweep"][str(lr)] = result["held_out_ppl"]
        if name not in out or result["held_out_ppl"] < out[name]["held_out_ppl"]:
            out[name], models[name] = result, model
    out["ppl_ratio_transnormer_over_llama"] = (out["transnormer"]["held_out_ppl"]
                                               / out["llama"]["held_out_ppl"])
    out["decoding"] = decode_with_tokensmith(models["transnormer"], tok)
    return out


def decode_with_tokensmith(model, tok) -> dict:
    """Greedy decoding through TransNormerLanguageModel: the state size stays fixed while
    the recurrent logits track a blockwise re-read of the whole sequence."""
    lm = TransNormerLanguageModel(model, tok, Runtime(seed=0))
    state = lm.start(list(lm.start_ids) + list(tok.encode("def __init__(self").ids))
    size = state.cache.nbytes
    sizes, generated = set(), []
    for _ in range(48):
        token = int(state.logprobs.argmax())
        generated.append(token)
        state = lm.extend(state, [token])
        sizes.add(state.cache.nbytes)
    reread = lm.logprobs_batch([list(state.ids)])[0][-1]
    return {"prompt": "def __init__(self", "continuation": tok.decode(generated),
            "state_bytes": size, "state_sizes_seen": sorted(sizes),
            "max_abs_logprob_diff_recurrent_vs_blockwise": float((state.logprobs - reread).abs().max())}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(22, 4.8))
    att = result["attention"]
    for name, row in att.items():
        axes[0].loglog(row["lengths"], row["seconds"], "o-",
                       label=f"{name} (slope {row['time_exponent']:.2f})")
        axes[1].loglog(row["lengths"], [b / 2**20 for b in row["peak_bytes"]], "o-",
                       label=f"{name} (slope {row['memory_exponent']:.2f})")
    axes[0].set(title=f"one attention layer, width {WIDTH}, {HEADS} heads: time", xlabel="sequence length",
                ylabel="seconds (fastest of 2-9 calls)")
    axes[1].set(title="peak tensor memory", xlabel="sequence length", ylabel="MiB")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    norms = result["norms"]["seconds_fwd_bwd"]
    axes[2].bar(list(norms), [t * 1e3 for t in norms.values()], color=["C2", "C0", "C1"])
    axes[2].set(title=f"norm fwd+bwd on {result['norms']['shape']}", ylabel="ms")
    ppl = result["perplexity"]
    for name in ("transnormer", "llama"):
        losses = ppl[name]["train_loss"]
        window = max(1, len(losses) // 20)
        smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
                  for i in range(len(losses))]
        axes[3].plot(smooth, label=f"{name}: {ppl[name]['parameters']:,} params, lr {ppl[name]['lr']:g}, "
                                   f"held-out ppl {ppl[name]['held_out_ppl']:.2f}")
    axes[3].set(title="stdlib source, same batches and steps", xlabel="step", ylabel="train loss (smoothed)")
    axes[3].legend(fontsize=8)
    fig.suptitle("TransNormerLLM at small scale (CPU, 1 thread)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(out_dir: Path, quick: bool) -> dict:
    torch.set_num_threads(1)
    start = time.perf_counter()
    print(" attention scaling", flush=True)
    result: dict = {"quick": quick, "threads": 1, "width": WIDTH, "heads": HEADS,
                    "attention": attention_scaling(quick)}
    print(" norm speed", flush=True)
    result["norms"] = norm_speed(quick)
    print(" perplexity", flush=True)
    result["perplexity"] = perplexity(quick)
    result["seconds"] = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / f"{NAME}.json", json.dumps(result, indent=1))
    plot(result, out_dir / f"{NAME}.png")
    att, ppl = result["attention"], result["perplexity"]
    return {"lightning_time_exponent": att["lightning (B=256)"]["time_exponent"],
            "sdpa_time_exponent": att["softmax (fused SDPA)"]["time_exponent"],
            "materialised_memory_exponent": att["softmax (materialised)"]["memory_exponent"],
            "lightning_memory_exponent": att["lightning (B=256)"]["memory_exponent"],
            "srmsnorm_speedup_vs_rmsnorm": result["norms"]["srmsnorm_speedup_vs_rmsnorm"],
            "ppl_transnormer": ppl["transnormer"]["held_out_ppl"], "ppl_llama": ppl["llama"]["held_out_ppl"],
            "seconds": result["seconds"]}
