"""Benchmark of tokensmith-byteprob (Phan et al., arXiv 2410.09303).

* exactness: max |error| of next-byte distributions against brute-force
  enumeration, on the float64 toy Markov LM (both meanings) and on SmolLM2;
* speed: byte-by-byte greedy generation on SmolLM2 vs token-level greedy with
  KV cache in the same run (median ms per next-byte distribution, LM forwards
  per byte, memory held by the decoding state);
* mid-word prompts: probability of the expected continuation under naive token
  prompting, token healing and byte-exact;
* ensemble: SmolLM2 + a tiny LM with another vocabulary trained here on Python
  code, bits per byte on held-out code (full mode only).

Writes ``byteprob.json`` and ``byteprob.png``. Nothing here asserts a time.
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sysconfig
import time
from pathlib import Path
from typing import Any


def _tensor_bytes(obj: Any, seen: set[int]) -> int:
    """Bytes of the distinct tensors reachable from ``obj`` (KV caches, cover tensors)."""
    import torch

    if obj is None or id(obj) in seen or isinstance(obj, (int, float, str, bytes)):
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, torch.nn.Module):
        return sum(_tensor_bytes(v, seen) for v in vars(obj).values())
    if hasattr(obj, "__attrs_attrs__"):
        return sum(_tensor_bytes(getattr(obj, a.name), seen) for a in obj.__attrs_attrs__)
    return 0


def exactness(quick: bool) -> dict[str, Any]:
    from tokensmith_byteprob import ByteProbLM
    from tokensmith_byteprob.brute_force import BruteForce, max_abs_error
    from tokensmith_byteprob.toy import MarkovLM, ToyTokenizer

    out: dict[str, Any] = {}
    texts = [b"", b"a", b"ab a", b"b ab\xc3", b"aba\xc3\xa9b"] + ([] if quick else [b"abab a", b"bb ab"])
    for prefix in (b"", b" "):
        lm = MarkovLM(ToyTokenizer(prefix_bytes=prefix), seed=1)
        for meaning in ("canonical", "marginal"):
            blm, brute = ByteProbLM(lm, meaning=meaning), BruteForce(lm, meaning)
            err = max(max_abs_error(blm.start(t).logprobs, brute.next_byte_probs(t)) for t in texts)
            key = f"toy{'_prefixed' if prefix else ''}_{meaning}"
            out[key] = {"max_abs_error": err, "strings": len(texts)}
    return out


def smollm2_exactness(lm: Any, quick: bool) -> dict[str, Any]:
    from tokensmith_byteprob import ByteProbLM
    from tokensmith_byteprob.brute_force import BruteForce, max_abs_error

    cases = [("canonical", b"def fibon")] + ([] if quick else [("canonical", b"The capital of Fra"),
                                                                ("marginal", b"Fra")])
    out = {}
    for meaning, text in cases:
        start = time.perf_counter()
        got = ByteProbLM(lm, meaning=meaning).start(text).logprobs
        err = max_abs_error(got, BruteForce(lm, meaning).next_byte_probs(text))
        out[f"{meaning}:{text.decode()}"] = {"max_abs_error": err, "seconds": time.perf_counter() - start}
    return out


def speed(lm: Any, quick: bool) -> dict[str, Any]:
    """Greedy bytes vs greedy tokens (KV cache) on the same prompts, same process.
    ``state_memory_ratio`` compares what the decoding states hold (KV caches of live covers,
    cover tensors); ``memory_ratio_with_model`` adds the model's weights, which both share."""
    from tokensmith_byteprob import ByteProbLM

    n_bytes = 16 if quick else 48
    weights = sum(p.numel() * p.element_size() for p in lm.model.parameters())
    blm = ByteProbLM(lm)
    blm.start(b"warm up")  # builds the per-tokenizer tables once
    out: dict[str, Any] = {"bytes_per_prompt": n_bytes, "prompts": {}}
    byte_times, token_times, forwards, nbytes = [], [], 0, 0
    state_peak, token_peak = 0, 0
    for prompt in ("def fibon", "The capital of Fra"):
        state = blm.start(prompt.encode())
        calls = lm.counters["forward_calls"]
        text = b""
        for _ in range(n_bytes):
            b = int(state.logprobs.argmax())
            if b == 256:
                break
            t0 = time.perf_counter()
            state = blm.advance(state, b)
            byte_times.append(time.perf_counter() - t0)
            text += bytes([b])
            state_peak = max(state_peak, _tensor_bytes(state, set()))
        forwards += lm.counters["forward_calls"] - calls
        nbytes += len(text)
        # token-level greedy over the same text: cached single-token steps
        ids = list(lm.start_ids) + list(lm.tokenizer.encode(prompt + text.decode("utf-8", "replace")).ids)
        tstate = lm.start(ids[: len(ids) - 12])
        for tok in ids[len(ids) - 12:]:
            t0 = time.perf_counter()
            tstate = lm.extend(tstate, [tok])
            token_times.append(time.perf_counter() - t0)
            token_peak = max(token_peak, _tensor_bytes(tstate, set()))
        out["prompts"][prompt] = {"continuation": text.decode("utf-8", "replace")}
    ms_byte = 1000 * statistics.median(byte_times)
    ms_token = 1000 * statistics.median(token_times)
    out.update({
        "median_ms_per_next_byte_distribution": ms_byte,
        "median_ms_per_cached_token_step": ms_token,
        "ratio_byte_distribution_to_token_step": ms_byte / ms_token,
        "lm_forwards_per_byte": forwards / max(1, nbytes),
        "state_bytes_peak_byteprob": state_peak,
        "state_bytes_peak_token_level": token_peak,
        "state_memory_ratio": state_peak / max(1, token_peak),
        "memory_ratio_with_model": (weights + state_peak) / (weights + token_peak),
    })
    return out


def mid_word(lm: Any) -> dict[str, Any]:
    from tokensmith_byteprob import ByteProbLM
    from tokensmith_byteprob.decoding import generate_bytes
    from tokensmith_byteprob.demo import CASES, healed_probability, token_level_probability

    blm = ByteProbLM(lm)
    out = {}
    for prompt, expected in CASES:
        text, _ = generate_bytes(blm, prompt.encode(), len(expected) + 4)
        out[prompt] = {
            "expected": expected,
            "p_token_level": token_level_probability(lm, prompt, expected),
            "p_token_healing": healed_probability(lm, prompt, expected),
            "p_byte_exact": math.exp(blm.score_bytes(prompt.encode(), expected.encode())),
            "byte_exact_greedy": text.decode("utf-8", "replace"),
        }
        try:
            from tokensmith_baselines.decoding import GreedyDecoder

            out[prompt]["token_level_greedy"] = GreedyDecoder().generate(lm, prompt, max_new_tokens=3).text
            out[prompt]["token_healing_greedy"] = GreedyDecoder(token_healing=True).generate(
                lm, prompt, max_new_tokens=3).text
        except ImportError:
            out[prompt]["token_healing_greedy"] = "tokensmith-baselines not installed"
    return out


def _code_corpus() -> tuple[list[str], str]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    train = [(stdlib / name).read_text() for name in ("textwrap.py", "string.py", "bisect.py", "heapq.py",
                                                       "fnmatch.py", "colorsys.py", "shlex.py")]
    held = (stdlib / "glob.py").read_text()
    return train, held[1000:1300]


def ensemble(smol: Any, quick: bool) -> dict[str, Any]:
    """Bits per byte on held-out Python code: SmolLM2, a tiny code LM with another vocabulary,
    and their byte-level mixture (arithmetic mean of next-byte probabilities)."""
    if quick:
        return {"skipped": "quick mode (trains a tiny LM)"}
    import torch
    from tokensmith_byteprob import ByteProbLM
    from tokensmith_byteprob.ensemble import ByteEnsemble

    from tokensmith import Runtime
    from tokensmith.adapters.hf_lm import HFCausalLM
    from tokensmith.adapters.models import tiny_llama, tiny_tokenizer

    train, held = _code_corpus()
    tok = tiny_tokenizer("byte_fallback", vocab_size=600, corpus=train)
    model, _ = tiny_llama(tok, hidden_size=128, layers=3, heads=4, context=256, seed=0)
    ids = [i for text in train for i in tok.encode(text).ids]
    data = torch.tensor(ids)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    start = time.perf_counter()
    steps = 300
    for _ in range(steps):
        offs = torch.randint(0, len(data) - 129, (16,), generator=gen)
        batch = torch.stack([data[o: o + 129] for o in offs])
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    train_s = time.perf_counter() - start
    tiny = HFCausalLM(model, tok, Runtime(device="cpu", dtype="float32"), name="tiny-code")
    mix = ByteEnsemble([ByteProbLM(smol), ByteProbLM(tiny)])
    prompt, target = held[:40].encode(), held[40:].encode()
    state = mix.start(prompt)
    member_logp: list[tuple[float, float]] = []
    bits_uniform = 0.0
    for b in target:
        bits_uniform -= float(state.logprobs[b]) / math.log(2)
        member_logp.append(tuple(float(m.logprobs[b]) if m is not None else -math.inf for m in state.data))
        state = mix.advance(state, b)
    # the members advance independently of the weights, so other mixtures follow from the same pass
    # (exactly, while no member gives a byte probability 0)
    by_weight = {}
    for w in (0.5, 0.8, 0.9, 0.95):
        total = -sum(math.log(w * math.exp(a) + (1 - w) * math.exp(b)) for a, b in member_logp)
        by_weight[str(w)] = total / math.log(2) / len(target)
    n = len(target)
    return {"train_steps": steps, "train_seconds": train_s, "final_train_loss": loss.item(),
            "held_out_bytes": n,
            "bits_per_byte": {"smollm2": -sum(a for a, _ in member_logp) / math.log(2) / n,
                              "tiny_code_lm": -sum(b for _, b in member_logp) / math.log(2) / n,
                              "ensemble_uniform": bits_uniform / n},
            "bits_per_byte_by_smollm2_weight": by_weight}


def peers() -> dict[str, Any]:
    if importlib.util.find_spec("genlm") is None:
        return {"skipped": "genlm-bytes / genlm-backend are not installed (optional, not a dependency)"}
    return {"skipped": "genlm-bytes is installed but its async beam API is not wired into this benchmark"}


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    errs = {**result["exactness_toy"], **result["exactness_smollm2"]}
    axes[0].bar(range(len(errs)), [max(v["max_abs_error"], 1e-18) for v in errs.values()])
    axes[0].set_yscale("log")
    axes[0].set_xticks(range(len(errs)), list(errs), rotation=60, ha="right", fontsize=7)
    axes[0].set_title("max |error| vs brute force")
    sp = result["speed"]
    axes[1].bar(["cached token step", "next-byte distribution"],
                [sp["median_ms_per_cached_token_step"], sp["median_ms_per_next_byte_distribution"]])
    axes[1].set_ylabel("median ms")
    axes[1].set_title(f"SmolLM2, {sp['lm_forwards_per_byte']:.2f} forwards/byte")
    mid = result["mid_word"]
    labels = list(mid)
    for k, key in enumerate(("p_token_level", "p_token_healing", "p_byte_exact")):
        axes[2].bar([i + 0.27 * k for i in range(len(labels))], [mid[p][key] for p in labels], width=0.27,
                    label=key[2:])
    axes[2].set_xticks([i + 0.27 for i in range(len(labels))], labels, fontsize=7)
    axes[2].set_title("P(expected continuation)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(out_dir: Path, quick: bool) -> dict[str, Any]:
    import torch

    from tokensmith import Runtime
    from tokensmith.adapters.hf_lm import HFCausalLM
    from tokensmith.adapters.models import load_smollm2

    torch.set_num_threads(1)
    model, tok = load_smollm2(Runtime(device="cpu", dtype="float32"), progress=False)
    lm = HFCausalLM(model, tok, Runtime(device="cpu", dtype="float32"), name="smollm2")
    result: dict[str, Any] = {"quick": quick, "threads": 1}
    result["exactness_toy"] = exactness(quick)
    result["exactness_smollm2"] = smollm2_exactness(lm, quick)
    result["speed"] = speed(lm, quick)
    result["mid_word"] = mid_word(lm)
    result["ensemble"] = ensemble(lm, quick)
    result["peers"] = peers()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "byteprob.json").write_text(json.dumps(result, indent=1))
    _plot(result, out_dir / "byteprob.png")
    return {"toy_max_error": max(v["max_abs_error"] for v in result["exactness_toy"].values()),
            "smollm2_max_error": max(v["max_abs_error"] for v in result["exactness_smollm2"].values()),
            "ms_per_byte": result["speed"]["median_ms_per_next_byte_distribution"],
            "ms_per_token_step": result["speed"]["median_ms_per_cached_token_step"],
            "forwards_per_byte": result["speed"]["lm_forwards_per_byte"]}
