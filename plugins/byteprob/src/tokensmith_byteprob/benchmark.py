"""The ``byteprob`` benchmark (``tokensmith bench byteprob``) of exact byte-level probabilities
(Phan et al., arXiv 2410.09303), measured in one run:

* exactness: max |error| of next-byte distributions against brute-force enumeration, on the
  float64 toy Markov LM (both meanings) and on the benchmarked model;
* speed: byte-by-byte greedy generation vs token-level greedy with KV cache in the same run
  (median ms per next-byte distribution, LM forwards per byte, tensor bytes the decoding
  states hold);
* mid-word prompts: probability of the expected continuation under naive token prompting,
  token healing and byte-exact;
* ensemble: the model + a tiny LM with another vocabulary trained here on Python code, bits
  per byte on held-out code (full mode only).
"""

from __future__ import annotations

import math
import statistics
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    HFCausalLM,
    Provenance,
    Report,
    ResourceLimitError,
    Runtime,
    Series,
    Table,
    UnknownComponentError,
    bits_per_byte,
    positive_int,
    ratio,
    run_recipe,
    seeded_split,
    tensor_bytes,
    tiny_tokenizer,
)

from .brute_force import BruteForce, max_abs_error
from .cover_set import TOLERANCE, ByteProbLM
from .decoding import generate_bytes
from .demo import CASES, healed_probability, token_level_probability
from .ensemble import ByteEnsemble
from .toy import MarkovLM, ToyTokenizer

#: Python standard-library modules: the code corpus of the ensemble, split train/eval by name
CODE_MODULES = ("textwrap.py", "string.py", "bisect.py", "heapq.py", "fnmatch.py", "colorsys.py", "shlex.py",
                "glob.py")


def exactness(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    texts = [b"", b"a", b"ab a", b"b ab\xc3", b"aba\xc3\xa9b"] + ([] if quick else [b"abab a", b"bb ab"])
    for prefix in (b"", b" "):
        lm = MarkovLM(ToyTokenizer(prefix_bytes=prefix), seed=1)
        for meaning in ("canonical-local", "canonical-global", "marginal"):
            blm, brute = ByteProbLM(lm, meaning=meaning, tolerance=0), BruteForce(lm, meaning)
            err = max(max_abs_error(blm.start(t).logprobs, brute.next_byte_probs(t)) for t in texts)
            key = f"toy{'_prefixed' if prefix else ''}_{meaning}"
            out[key] = {"max_abs_error": err, "strings": len(texts)}
    return out


def model_exactness(lm: Any, quick: bool) -> dict[str, Any]:
    cases = [("canonical-local", b"def fibon")] + ([] if quick else [
        ("canonical-local", b"The capital of Fra"), ("canonical-global", b"def fibon"), ("marginal", b"Fra")])
    out = {}
    for meaning, text in cases:
        start = time.perf_counter()
        got = ByteProbLM(lm, meaning=meaning, tolerance=0).start(text).logprobs
        err = max_abs_error(got, BruteForce(lm, meaning).next_byte_probs(text))
        out[f"{meaning}:{text.decode()}"] = {"max_abs_error": err, "seconds": time.perf_counter() - start}
    return out


def _walk(lm: Any, blm: ByteProbLM, prompt: bytes, nbytes: int, *, peak: bool = False) -> dict[str, Any]:
    """Greedy bytes of ``blm`` after ``prompt``: the bytes, the states, seconds, LM forward calls and
    forwarded rows (token positions), and (``peak``) the most tensor bytes one state held."""
    calls, rows = lm.counters["forward_calls"], lm.counters["forward_tokens"]
    t0, c0 = time.perf_counter(), time.process_time()
    state = blm.start(prompt)
    states, text, most, times = [state], b"", tensor_bytes(state) if peak else 0, []
    for _ in range(nbytes):
        b = int(state.logprobs.argmax())
        if b == 256:
            break
        t1 = time.perf_counter()
        state = blm.advance(state, b)
        times.append(time.perf_counter() - t1)
        if peak:
            most = max(most, tensor_bytes(state))
        text += bytes([b])
        states.append(state)
    return {"text": text, "states": states, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "times": times,
            "calls": lm.counters["forward_calls"] - calls, "rows": lm.counters["forward_tokens"] - rows,
            "peak": most}


def boundary_share(state: Any) -> float:
    """The share of P(prefix) held by the expanded sequences ending exactly at the current byte (in the
    canonical meanings: the canonical encoding of the prefix), from a tolerance-0 state."""
    covers = state.data
    ends = [n.logq for n in covers.exact]
    if not ends or covers.log_cover == -math.inf:
        return 0.0
    top = max(ends)
    return math.exp(top + math.log(sum(math.exp(v - top) for v in ends)) - covers.log_cover)


#: interleaved repeats of token-level greedy and the default byte-exact walk for the headline bytes/s ratio
REPEATS = 3
#: tolerances of the deferral measured without prefetching (the default prefetch runs at 0 and the default)
SWEEP = (0.0, TOLERANCE, 1e-5, 1e-3)


def speed(lm: Any, quick: bool) -> dict[str, Any]:
    """Greedy bytes vs greedy tokens (KV cache) on the same prompts, same process: first the
    token-level greedy continuation (its bytes and seconds), then byte-exact greedy walks over as
    many bytes: the default (certified tolerance, prefetching), tolerance 0 (every forward, the
    reference of the true error), and without prefetching at the tolerances of :data:`SWEEP`.
    LM forward *calls* and forwarded *rows* per byte are counted apart (a batched call of k rows costs
    more than one row); bytes/s is the speed that matters. ``state_memory_ratio`` compares what the
    decoding states hold (KV caches of live covers, next-token rows, masks, cover tensors, prefetched
    states; the token state: its KV cache and logprobs); ``memory_ratio_with_model`` adds the model's
    weights, which both share. The certified bound of every default state is compared with its true
    error against the tolerance-0 run; the boundary sequence's share of the prefix mass is logged on
    the tolerance-0 walk without prefetch."""
    n_tokens = 6 if quick else 16
    weights = tensor_bytes(lm.model, modules=True)
    out: dict[str, Any] = {"tokens_per_prompt": n_tokens, "prompts": {}}
    runs = {"default": ByteProbLM(lm), "tolerance_0": ByteProbLM(lm, tolerance=0)}
    sweep = SWEEP[:2] if quick else SWEEP
    runs.update({f"prefetch_0_tolerance_{t:g}": ByteProbLM(lm, tolerance=t, prefetch=0) for t in sweep})
    if not quick:
        runs.update({f"prefetch_{k}": ByteProbLM(lm, prefetch=k) for k in (2, 4)})
    for blm in runs.values():
        blm.start(b"warm up")  # builds the per-tokenizer tables once
    tok_seconds = tok_cpu = tok_bytes = tok_forwards = 0.0
    totals = {k: {"seconds": 0.0, "cpu_seconds": 0.0, "calls": 0, "rows": 0, "bytes": 0, "peak": 0}
              for k in runs}
    byte_times: list[float] = []
    token_peak, worst, max_bound, bounds, shares = 0, 0.0, 0.0, [], []
    for prompt in ("def fibon", "The capital of Fra"):
        # token-level greedy: encode the prompt, then one cached step per token
        ids = list(lm.start_ids) + list(lm.tokenizer.encode(prompt).ids)
        calls = lm.counters["forward_calls"]
        t0, c0 = time.perf_counter(), time.process_time()
        tstate = lm.start(ids)
        gen: list[int] = []
        for _ in range(n_tokens):
            tok = int(tstate.logprobs.argmax())
            gen.append(tok)
            tstate = lm.extend(tstate, [tok])
            token_peak = max(token_peak, tensor_bytes(tstate))
        tok_seconds += time.perf_counter() - t0
        tok_cpu += time.process_time() - c0
        tok_forwards += lm.counters["forward_calls"] - calls
        text_bytes = lm.tokenizer.decode_bytes(gen)
        tok_bytes += len(text_bytes)
        walks = {}
        for key, blm in runs.items():
            peak = key in ("default", "prefetch_0_tolerance_1e-07")
            walk = walks[key] = _walk(lm, blm, prompt.encode(), len(text_bytes), peak=peak)
            total = totals[key]
            for field in ("seconds", "cpu_seconds", "calls", "rows"):
                total[field] += walk[field]
            total["bytes"] += len(walk["text"])
            total["peak"] = max(total["peak"], walk["peak"])
            if key == "default":
                byte_times += walk["times"]
            walk.pop("times")
        shares += [boundary_share(st) for st in walks["prefetch_0_tolerance_0"]["states"]]
        for a, e in zip(walks["default"]["states"], walks["tolerance_0"]["states"]):
            if a.prefix != e.prefix:
                break
            err = float((a.logprobs.exp() - e.logprobs.exp()).abs().max())
            bounds.append((a.data.bound, err))
            worst = max(worst, err - a.data.bound)
            max_bound = max(max_bound, a.data.bound)
        ref = walks["prefetch_0_tolerance_0"]["states"]
        on_off = max((float((a.logprobs.exp() - e.logprobs.exp()).abs().max())
                      for a, e in zip(walks["tolerance_0"]["states"], ref) if a.prefix == e.prefix),
                     default=0.0)
        out["prompts"][prompt] = {"token_level": text_bytes.decode("utf-8", "replace"),
                                  "byte_exact": walks["default"]["text"].decode("utf-8", "replace"),
                                  "same_path_as_tolerance_0":
                                      walks["default"]["text"] == walks["tolerance_0"]["text"],
                                  "prefetch_on_vs_off_max_abs_difference_tolerance_0": on_off}
    # the headline ratio again over interleaved repeats (per prompt: token-level greedy, then the defaults,
    # neither timing a memory count): one walk per configuration is noisy on a shared machine
    repeats: dict[str, list[float]] = {"wall": [], "cpu": []}
    for _ in range(1 if quick else REPEATS):
        sums = {"tok_wall": 0.0, "tok_cpu": 0.0, "tok_bytes": 0, "wall": 0.0, "cpu": 0.0, "bytes": 0}
        for prompt in ("def fibon", "The capital of Fra"):
            ids = list(lm.start_ids) + list(lm.tokenizer.encode(prompt).ids)
            t0, c0 = time.perf_counter(), time.process_time()
            tstate, gen = lm.start(ids), []
            for _ in range(n_tokens):
                gen.append(int(tstate.logprobs.argmax()))
                tstate = lm.extend(tstate, [gen[-1]])
            sums["tok_wall"] += time.perf_counter() - t0
            sums["tok_cpu"] += time.process_time() - c0
            n = len(lm.tokenizer.decode_bytes(gen))
            sums["tok_bytes"] += n
            walk = _walk(lm, runs["default"], prompt.encode(), n)
            sums["wall"] += walk["seconds"]
            sums["cpu"] += walk["cpu_seconds"]
            sums["bytes"] += len(walk["text"])
        for key, tok_key in (("wall", "tok_wall"), ("cpu", "tok_cpu")):
            repeats[key].append(ratio(sums["bytes"] / max(1e-9, sums[key]),
                                      sums["tok_bytes"] / max(1e-9, sums[tok_key])))
    ms_byte = 1000 * statistics.median(byte_times)
    ms_token = 1000 * tok_seconds / max(1.0, tok_forwards)
    errors = [e for _, e in bounds]
    tok_bps = tok_bytes / max(1e-9, tok_seconds)
    tok_cpu_bps = tok_bytes / max(1e-9, tok_cpu)
    configs = {}
    for key, t in totals.items():
        n = max(1, t["bytes"])
        configs[key] = {"tolerance": runs[key].tolerance, "prefetch": runs[key].prefetch,
                        "calls_per_byte": t["calls"] / n, "rows_per_byte": t["rows"] / n,
                        "bytes_per_second": t["bytes"] / max(1e-9, t["seconds"]),
                        "over_token_level_bytes_per_second":
                            ratio(t["bytes"] / max(1e-9, t["seconds"]), tok_bps),
                        "over_token_level_bytes_per_cpu_second":
                            ratio(t["bytes"] / max(1e-9, t["cpu_seconds"]), tok_cpu_bps),
                        "bytes": t["bytes"]}
    d, z, old = totals["default"], totals["tolerance_0"], totals["prefetch_0_tolerance_1e-07"]
    nbytes = max(1, d["bytes"])
    qs = sorted(shares)

    def quantile(q: float) -> float:
        return qs[min(len(qs) - 1, int(q * len(qs)))] if qs else 0.0

    out.update({
        "median_ms_per_next_byte_distribution": ms_byte,
        "median_ms_per_cached_token_step": ms_token,
        "ratio_byte_distribution_to_token_step": ratio(ms_byte, ms_token),
        "lm_forwards_per_byte": d["calls"] / nbytes,
        "lm_rows_per_byte": d["rows"] / nbytes,
        "lm_forwards_per_byte_tolerance_0": z["calls"] / max(1, z["bytes"]),
        "lm_forwards_per_byte_prefetch_0": old["calls"] / max(1, old["bytes"]),
        "lm_rows_per_byte_prefetch_0": old["rows"] / max(1, old["bytes"]),
        "token_level_forwards_per_byte": tok_forwards / max(1.0, tok_bytes),
        "bytes_per_token": tok_bytes / max(1.0, tok_forwards),
        "bytes_per_second_byte_exact": d["bytes"] / max(1e-9, d["seconds"]),
        "bytes_per_second_byte_exact_tolerance_0": z["bytes"] / max(1e-9, z["seconds"]),
        "bytes_per_second_byte_exact_prefetch_0": old["bytes"] / max(1e-9, old["seconds"]),
        "bytes_per_second_token_level": tok_bps,
        "byte_exact_over_token_level_bytes_per_second": ratio(d["bytes"] / max(1e-9, d["seconds"]), tok_bps),
        # the same ratio in CPU time of this process: less sensitive to other jobs on a shared machine
        "byte_exact_over_token_level_bytes_per_cpu_second": ratio(
            d["bytes"] / max(1e-9, d["cpu_seconds"]), tok_cpu_bps),
        "byte_exact_over_token_level_bytes_per_second_median_of_repeats": statistics.median(repeats["wall"]),
        "byte_exact_over_token_level_bytes_per_cpu_second_median_of_repeats":
            statistics.median(repeats["cpu"]),
        "repeats": len(repeats["wall"]),
        "byte_exact_prefetch_0_over_token_level_bytes_per_second": ratio(
            old["bytes"] / max(1e-9, old["seconds"]), tok_bps),
        "certified_bound_max": max_bound,
        "true_error_max": max(errors, default=0.0),
        "true_error_minus_bound_max": worst,
        "states_compared": len(bounds),
        "prefetch_on_vs_off_max_abs_difference": max(
            v["prefetch_on_vs_off_max_abs_difference_tolerance_0"] for v in out["prompts"].values()),
        "boundary_share_min": quantile(0.0), "boundary_share_p10": quantile(0.1),
        "boundary_share_median": quantile(0.5), "boundary_share_p90": quantile(0.9),
        "boundary_share_max": qs[-1] if qs else 0.0,
        **{f"boundary_share_fraction_below_{t:g}": sum(v < t for v in qs) / max(1, len(qs))
           for t in SWEEP[1:]},
        "state_bytes_peak_byteprob": d["peak"],
        "state_bytes_peak_byteprob_prefetch_0": old["peak"],
        "state_bytes_peak_token_level": token_peak,
        "state_memory_ratio": d["peak"] / max(1, token_peak),
        "state_memory_ratio_prefetch_0": old["peak"] / max(1, token_peak),
        "memory_ratio_with_model": ratio(weights + d["peak"], weights + token_peak),
    })
    out["configs"] = configs
    out["repeated_ratios"] = repeats
    out["boundary_shares"] = shares
    return out


def bound_check(lm: Any, quick: bool) -> dict[str, Any]:
    """The certified bound against the true error with float32 batch noise taken out: the same greedy
    walks as :func:`speed` (default tolerance vs tolerance 0) on a float64 copy of the model. In
    float32 the two runs batch different rows together, which moves probabilities by up to ~1e-6
    (``prefetch_on_vs_off_max_abs_difference``), above the default tolerance's bounds (~1e-7); in
    float64 that noise is ~1e-15, so what is left is the deferral's own error."""
    import copy

    import torch

    model = copy.deepcopy(lm.model).to(torch.float64)
    lm64 = HFCausalLM(model, lm.tokenizer, Runtime(device="cpu", dtype="float64"), name=f"{lm.name}-float64")
    n_bytes = 8 if quick else 24
    bounds: list[tuple[float, float]] = []
    for prompt in (b"def fibon", b"The capital of Fra"):
        default = _walk(lm64, ByteProbLM(lm64), prompt, n_bytes)["states"]
        exact = _walk(lm64, ByteProbLM(lm64, tolerance=0), prompt, n_bytes)["states"]
        for a, e in zip(default, exact):
            if a.prefix != e.prefix:
                break
            bounds.append((a.data.bound, float((a.logprobs.exp() - e.logprobs.exp()).abs().max())))
    del lm64, model
    return {"states": len(bounds), "bytes_per_prompt": n_bytes,
            "certified_bound_max": max((b for b, _ in bounds), default=0.0),
            "true_error_max": max((e for _, e in bounds), default=0.0),
            "true_error_minus_bound_max": max((e - b for b, e in bounds), default=0.0),
            "states_with_positive_bound": sum(b > 0 for b, _ in bounds)}


#: a paragraph repeated to lengthen the prompt before "The capital of Fra" (memory vs prompt length)
FILLER = "Paris is a city on the Seine with many museums, parks and old bridges. "


def memory_by_prompt_length(lm: Any, quick: bool) -> dict[str, Any]:
    """Decode-state memory of byte-exact greedy (after 4 bytes, default settings) over token-level
    greedy (after one cached step) for prompts of growing length: the token state grows with the
    prompt's KV cache; the byte state adds next-token rows and masks, which do not grow with it."""
    blm = ByteProbLM(lm)
    out = {}
    for repeats in ((0, 4) if quick else (0, 4, 16)):
        prompt = FILLER * repeats + "The capital of Fra"
        ids = list(lm.start_ids) + list(lm.tokenizer.encode(prompt).ids)
        tstate = lm.start(ids)
        tstate = lm.extend(tstate, [int(tstate.logprobs.argmax())])
        token = tensor_bytes(tstate)
        walk = _walk(lm, blm, prompt.encode(), 4, peak=True)
        out[str(len(ids))] = {"prompt_tokens": len(ids), "token_level_bytes": token,
                              "byte_exact_bytes": walk["peak"], "ratio": walk["peak"] / max(1, token)}
    return out


def meanings(lm: Any, quick: bool) -> dict[str, Any]:
    """canonical-local vs canonical-global on real prompts: max |difference| of next-byte
    probabilities at the prompt and along its first greedy bytes; and the marginal meaning on an
    18-byte prompt within the default memory bound (finishes, or stops with the typed error)."""
    local, glob = ByteProbLM(lm, tolerance=0), ByteProbLM(lm, meaning="canonical-global", tolerance=0)
    out: dict[str, Any] = {"prompts": {}}
    for prompt in (("def fibon",) if quick else ("def fibon", "The capital of Fra", "import num")):
        a, b = local.start(prompt.encode()), glob.start(prompt.encode())
        diffs = []
        for _ in range(2 if quick else 4):
            diffs.append(float((a.logprobs.exp() - b.logprobs.exp()).abs().max()))
            byte = int(a.logprobs.argmax())
            if byte == 256:
                break
            a, b = local.advance(a, byte), glob.advance(b, byte)
        out["prompts"][prompt] = max(diffs)
    out["max_abs_difference"] = max(out["prompts"].values())
    text = b"The capital of Fra" if not quick else b"Fra"
    blm = ByteProbLM(lm, meaning="marginal")
    calls = lm.counters["forward_calls"]
    t0 = time.perf_counter()
    try:
        state = blm.start(text)
        # what the state holds (tensor_bytes) and the cover set's own estimate checked against max_memory
        result = {"finished": True, "bound": state.data.bound, "covers": len(state.data),
                  "state_bytes": tensor_bytes(state), "cover_set_bytes": blm._memory(state.data, [])}
    except ResourceLimitError as err:
        result = {"finished": False, "error": type(err).__name__, "message": err.message}
    result.update({"prompt": text.decode(), "bytes": len(text), "seconds": time.perf_counter() - t0,
                   "forwards": lm.counters["forward_calls"] - calls, "max_memory": blm.max_memory})
    out["marginal_long_prompt"] = result
    return out


def mid_word(lm: Any, greedy: Any = None, healing: Any = None) -> dict[str, Any]:
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
        if greedy is not None:
            out[prompt]["token_level_greedy"] = greedy.generate(lm, prompt, max_new_tokens=3).text
            out[prompt]["token_healing_greedy"] = healing.generate(lm, prompt, max_new_tokens=3).text
    return out


def code_corpus() -> tuple[list[str], str]:
    """Training texts and a held-out chunk of Python code: the modules of :data:`CODE_MODULES`
    split by :func:`tokensmith.seeded_split` on their names (seed 0, a fifth held out)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    records = [(name, (stdlib / name).read_text()) for name in CODE_MODULES]
    train = [text for _, text in seeded_split(records, "train", eval_fraction=0.2, seed=0)]
    held = [text for _, text in seeded_split(records, "eval", eval_fraction=0.2, seed=0)]
    return train, held[0][1000:1300]


def ensemble(lm: Any, quick: bool) -> dict[str, Any]:
    """Bits per byte on held-out Python code: the model, a tiny code LM with another vocabulary,
    and their byte-level mixture (arithmetic mean of next-byte probabilities)."""
    if quick:
        return {"skipped": "quick mode (trains a tiny LM)"}
    from tokensmith.testing import tiny_llama

    train, held = code_corpus()
    tok = tiny_tokenizer("byte_fallback", vocab_size=600, corpus=train)
    # a context of 512 tokens holds the 300 bytes of prompt + held-out text at this small vocabulary
    model, _ = tiny_llama(tok, hidden_size=128, layers=3, heads=4, context=512, seed=0)
    # trained through the core recipe runner: 300 steps of 16 packed windows of 128 tokens
    steps = 300
    with tempfile.TemporaryDirectory() as tmp:
        result = run_recipe(
            model=model, tokenizer=tok, train_data=[{"text": text} for text in train],
            data={"max_length": 128, "packing": True},
            arguments={"steps": steps, "batch_size": 16, "lr": 3e-3, "schedule": "constant", "seed": 0,
                       "save_final": False, "progress": "off"},
            output_dir=tmp)
    model.eval()
    train_s = result.seconds
    tiny = HFCausalLM(model, tok, Runtime(device="cpu", dtype="float32"), name="tiny-code")
    mix = ByteEnsemble([ByteProbLM(lm), ByteProbLM(tiny)])
    prompt, target = held[:40].encode(), held[40:].encode()
    state = mix.start(prompt)
    member_logp: list[tuple[float, float]] = []
    nll_uniform = 0.0
    for b in target:
        nll_uniform -= float(state.logprobs[b])
        member_logp.append(tuple(float(m.logprobs[b]) if m is not None else -math.inf for m in state.data))
        state = mix.advance(state, b)
    # the members advance independently of the weights, so other mixtures follow from the same pass
    # (exactly, while no member gives a byte probability 0)
    n = len(target)

    def bpb(nll: float) -> float | None:  # a byte of probability 0 somewhere: not a finite number
        return bits_per_byte(nll, n) if math.isfinite(nll) else None

    by_weight = {str(w): bpb(-sum(math.log(w * math.exp(a) + (1 - w) * math.exp(b)) if max(a, b) > -math.inf
                                  else -math.inf for a, b in member_logp))
                 for w in (0.5, 0.8, 0.9, 0.95)}
    return {"train_steps": steps, "train_seconds": train_s, "final_train_loss": result.losses[-1][1],
            "held_out_bytes": n,
            "bits_per_byte": {"model": bpb(-sum(a for a, _ in member_logp)),
                              "tiny_code_lm": bpb(-sum(b for _, b in member_logp)),
                              "ensemble_uniform": bpb(nll_uniform)},
            "bits_per_byte_by_model_weight": by_weight}


def measure(lm: Any, *, quick: bool, greedy: Any = None, healing: Any = None, model: str = "",
            threads: int = 1, with_ensemble: bool = True) -> dict[str, Any]:
    """Every number of the benchmark as one JSON-like mapping (see :func:`to_report`)."""
    return {"quick": quick, "threads": threads, "model": model, "exactness_toy": exactness(quick),
            "exactness_model": model_exactness(lm, quick), "speed": speed(lm, quick),
            "bound_float64": bound_check(lm, quick),
            "memory_by_prompt_length": memory_by_prompt_length(lm, quick),
            "meanings": meanings(lm, quick), "mid_word": mid_word(lm, greedy, healing),
            "ensemble": ensemble(lm, quick) if with_ensemble else
            {"skipped": "ensemble=False (the two-vocabulary ensemble is not part of issue 13; see the README "
                        "for its last measured run)"}}


def to_report(result: dict[str, Any], provenance: Provenance | None = None) -> Report:
    """The report of :func:`measure`'s results: the headline numbers as metrics, one table per
    part, and the three plots (errors, speed, P(expected))."""
    errors = {**result["exactness_toy"], **result["exactness_model"]}
    sp, mid, ens = result["speed"], result["mid_word"], result["ensemble"]
    metrics: dict[str, float] = {
        "toy_max_error": max(v["max_abs_error"] for v in result["exactness_toy"].values()),
        "model_max_error": max(v["max_abs_error"] for v in result["exactness_model"].values()),
        "ms_per_next_byte_distribution": sp["median_ms_per_next_byte_distribution"],
        "ms_per_cached_token_step": sp["median_ms_per_cached_token_step"],
        "byte_distribution_vs_token_step": sp["ratio_byte_distribution_to_token_step"],
        "lm_forwards_per_byte": sp["lm_forwards_per_byte"],
        "lm_rows_per_byte": sp["lm_rows_per_byte"],
        "lm_forwards_per_byte_tolerance_0": sp["lm_forwards_per_byte_tolerance_0"],
        "lm_forwards_per_byte_prefetch_0": sp["lm_forwards_per_byte_prefetch_0"],
        "byte_exact_prefetch_0_over_token_level_bytes_per_second":
            sp["byte_exact_prefetch_0_over_token_level_bytes_per_second"],
        "prefetch_on_vs_off_max_abs_difference": sp["prefetch_on_vs_off_max_abs_difference"],
        "boundary_share_median": sp["boundary_share_median"],
        "token_level_forwards_per_byte": sp["token_level_forwards_per_byte"],
        "byte_exact_over_token_level_bytes_per_second": sp["byte_exact_over_token_level_bytes_per_second"],
        "byte_exact_over_token_level_bytes_per_cpu_second":
            sp["byte_exact_over_token_level_bytes_per_cpu_second"],
        "byte_exact_over_token_level_bytes_per_second_median_of_repeats":
            sp["byte_exact_over_token_level_bytes_per_second_median_of_repeats"],
        "byte_exact_over_token_level_bytes_per_cpu_second_median_of_repeats":
            sp["byte_exact_over_token_level_bytes_per_cpu_second_median_of_repeats"],
        "certified_bound_max": sp["certified_bound_max"],
        "true_error_max": sp["true_error_max"],
        "true_error_minus_bound_max": sp["true_error_minus_bound_max"],
        **{f"float64_{k}": v for k, v in result.get("bound_float64", {}).items()
           if k in ("certified_bound_max", "true_error_max", "true_error_minus_bound_max", "states")},
        "canonical_local_vs_global_max_abs_difference": result["meanings"]["max_abs_difference"],
        "state_memory_ratio": sp["state_memory_ratio"],
        "state_memory_ratio_prefetch_0": sp["state_memory_ratio_prefetch_0"],
        "memory_ratio_with_model": sp["memory_ratio_with_model"],
    }
    by_length = result["memory_by_prompt_length"]
    metrics.update({f"state_memory_ratio[{v['prompt_tokens']} prompt tokens]": v["ratio"]
                    for v in by_length.values()})
    notes = [f"{result['model']}, {result['threads']} CPU thread(s); speed over the bytes of "
             f"{sp['tokens_per_prompt']} greedy tokens per prompt (token-level greedy first, then byte-exact "
             "greedy over as many bytes, at the default tolerance and at 0); memory = distinct tensor "
             "storages the decoding states hold"]
    mn = result["meanings"]
    long = mn["marginal_long_prompt"]
    outcome = (f"finished in {long['seconds']:.1f} s, {long['forwards']} forwards, certified bound "
               f"{long['bound']:.2g}" if long["finished"] else
               f"stopped with {long['error']} after {long['seconds']:.1f} s: {long['message']}")
    if long["finished"]:
        outcome += (f", the state holds {long['state_bytes']:,} tensor bytes (cover-set estimate "
                    f"{long['cover_set_bytes']:,})")
    notes.append(f"marginal meaning, {long['bytes']}-byte prompt {long['prompt']!r}, max_memory="
                 f"{long['max_memory']:,} bytes: {outcome}")
    shown = {k: ", ".join(f"{v:.3f}" for v in vs) for k, vs in sp["repeated_ratios"].items()}
    notes.append(f"bytes/s ratio over {sp['repeats']} interleaved repeats (token-level greedy, then the "
                 f"defaults, per prompt): wall {shown['wall']}; CPU time {shown['cpu']}")
    if "bound_float64" in result:
        b64 = result["bound_float64"]
        notes.append(f"certified bound vs true error: float32 (true_error_*) includes the batch noise of two "
                     f"runs that batch different rows; float64 copy of the model (float64_*, {b64['states']} "
                     f"states, {b64['bytes_per_prompt']} bytes per prompt): max bound "
                     f"{b64['certified_bound_max']:.3g}, max true error {b64['true_error_max']:.3g}, "
                     f"true error - bound at most {b64['true_error_minus_bound_max']:.3g}")
    notes.append("prefetch: rows read ahead in the batch of a needed forward; the same rows a later forward "
                 "computes, so on/off differ only by float32 batch noise "
                 "(prefetch_on_vs_off_max_abs_difference)")
    tables = [Table("max |error| of next-byte distributions vs brute force",
                    ("case", "max |error|", "seconds"),
                    tuple((k, v["max_abs_error"], v.get("seconds")) for k, v in errors.items())),
              Table("speed: greedy bytes vs greedy tokens (KV cache)", ("measure", "value"),
                    tuple((k, v) for k, v in sp.items() if isinstance(v, int | float))),
              Table("forwards per byte by tolerance and prefetch (greedy walks, same run)",
                    ("run", "tolerance", "prefetch", "calls/byte", "rows/byte", "bytes/s",
                     "x token-level bytes/s", "x token-level bytes/CPU-s"),
                    tuple((k, c["tolerance"], c["prefetch"], c["calls_per_byte"], c["rows_per_byte"],
                           c["bytes_per_second"], c["over_token_level_bytes_per_second"],
                           c["over_token_level_bytes_per_cpu_second"])
                          for k, c in sp["configs"].items())),
              Table("decode-state memory vs prompt length (byte-exact: 4 bytes, token-level: 1 step)",
                    ("prompt tokens", "token-level bytes", "byte-exact bytes", "ratio"),
                    tuple((v["prompt_tokens"], v["token_level_bytes"], v["byte_exact_bytes"], v["ratio"])
                          for v in by_length.values())),
              Table("canonical-local vs canonical-global: max |difference| of next-byte probabilities",
                    ("prompt", "max |difference|"), tuple(mn["prompts"].items())),
              Table("mid-word prompts", ("prompt", "expected", "P token-level", "P token healing",
                                         "P byte-exact", "byte-exact greedy", "token-level greedy",
                                         "token-healing greedy"),
                    tuple((p, r["expected"], r["p_token_level"], r["p_token_healing"], r["p_byte_exact"],
                           r["byte_exact_greedy"], r.get("token_level_greedy"), r.get("token_healing_greedy"))
                          for p, r in mid.items()))]
    if "skipped" in ens:
        notes.append(f"ensemble: skipped ({ens['skipped']})")
    else:
        bpb = ens["bits_per_byte"]
        metrics.update({f"ensemble_bits_per_byte[{k}]": v for k, v in bpb.items() if v is not None})
        notes += [f"ensemble: {k} gives some held-out byte probability 0 (it ran out of context or of "
                  "covers): its bits per byte is infinite, left empty" for k, v in bpb.items() if v is None]
        tables.append(Table(f"bits per byte on {ens['held_out_bytes']} held-out bytes of Python code",
                            ("model", "bits/byte"), tuple(bpb.items())
                            + tuple((f"mixture, weight {w} on the model", v)
                                    for w, v in ens["bits_per_byte_by_model_weight"].items())))
        notes.append(f"ensemble: tiny code LM trained {ens['train_steps']} steps "
                     f"({ens['train_seconds']:.0f} s, final loss {ens['final_train_loss']:.3f})")
    if not any("token_level_greedy" in r for r in mid.values()):
        notes.append("no greedy decoder (tokensmith-baselines): token-level continuations left empty")
    floored = tuple(max(v["max_abs_error"], 1e-18) for v in errors.values())
    series = [Series("max |error|", tuple(errors), floored, y_label="max |error| (floor 1e-18)", plot="bar",
                     log_y=True, group="exactness vs brute force"),
              Series("forwards per byte", ("token-level greedy", "byte-exact (default tolerance)",
                                           "byte-exact (tolerance 0)"),
                     (sp["token_level_forwards_per_byte"], sp["lm_forwards_per_byte"],
                      sp["lm_forwards_per_byte_tolerance_0"]), y_label="LM forwards per byte", plot="bar",
                     group="forwards per byte"),
              Series("calls per byte", tuple(sp["configs"]),
                     tuple(c["calls_per_byte"] for c in sp["configs"].values()), y_label="per byte",
                     plot="bar", group="calls and rows per byte"),
              Series("rows per byte", tuple(sp["configs"]),
                     tuple(c["rows_per_byte"] for c in sp["configs"].values()), y_label="per byte",
                     plot="bar", group="calls and rows per byte"),
              Series("share of P(prefix)", tuple(range(len(sp["boundary_shares"]))),
                     tuple(max(v, 1e-18) for v in sp["boundary_shares"]), y_label="share (floor 1e-18)",
                     log_y=True, group="boundary sequence's share of the prefix mass, per byte state"),
              Series("median ms", ("cached token step", "next-byte distribution"),
                     (sp["median_ms_per_cached_token_step"], sp["median_ms_per_next_byte_distribution"]),
                     y_label="median ms", plot="bar", group="speed")]
    for key, label in (("p_token_level", "token-level"), ("p_token_healing", "token healing"),
                       ("p_byte_exact", "byte-exact")):
        series.append(Series(label, tuple(mid), tuple(r[key] for r in mid.values()), y_label="P(expected)",
                             plot="bar", group="P(expected continuation)"))
    provenance = provenance or Provenance()
    return Report(name="byteprob", metrics=metrics, tables=tuple(tables), series=tuple(series),
                  notes=tuple(notes),
                  provenance=attrs.evolve(provenance, extra={**provenance.extra, "quick": result["quick"],
                                                             "threads": result["threads"]}))


@attrs.define
class ByteProbBenchmark(Benchmark):
    """Exactness, speed, mid-word prompts and a two-vocabulary ensemble, in one run."""

    name = "byteprob"

    model: str = attrs.field(default="smollm2", metadata={"doc": "the model source measured"})
    threads: int = attrs.field(default=1, validator=positive_int, metadata={"doc": "CPU threads"})
    ensemble: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "full mode: train the tiny code LM and measure the two-vocabulary ensemble (False skips it, "
               "said in the notes)"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        registry = self.registry()
        pipeline = self.cpu_pipeline(self.model, threads=self.threads)
        ctx = BuildContext(runtime=pipeline.runtime, model=pipeline.model, tokenizer=pipeline.tokenizer,
                           lm=pipeline.lm, source=pipeline.spec.model, registry=registry)
        try:
            greedy = registry.build("decoder", "greedy", ctx)
            healing = registry.build("decoder", {"type": "greedy", "token_healing": True}, ctx)
        except UnknownComponentError:
            greedy = healing = None
        model = "SmolLM2-135M-Instruct" if self.model == "smollm2" else self.model
        result = measure(pipeline.lm, quick=quick, greedy=greedy, healing=healing, model=model,
                         threads=self.threads, with_ensemble=self.ensemble)
        return to_report(result, Provenance.collect(registry, pipeline.runtime, pipeline.spec.model))
