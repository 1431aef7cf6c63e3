"""AWRS vs full-vocabulary masking on SmolLM2 (2 CPU threads), measured in one run.

For a regex and a JSON Schema constraint: constraint checks per sampled symbol,
wall time per token, and validity of the finished strings; the time of an
unconstrained decode step (KV-cache extend + a multinomial draw) is measured in
the same run as the reference. A constrained token costs one LM forward (the
KV-cache extend) plus one sampler step, so each run times its forwards and its
sampler steps apart: a run of ``n`` sampler steps makes only ``n - 1`` forwards
after the prompt's prefill (the last step, an EOS draw or the step that hits
``max_new_tokens``, extends nothing), and the prefill is left out. Peers
(genlm-control, llguidance) are reported only when installed.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
from pathlib import Path

from tokensmith import TrustedText, encode_prompt

REGEX = r"\d{4}-\d{2}-\d{2}"
# a chat prompt written by us: its markers are control tokens (TrustedText), not user text
REGEX_PROMPT = TrustedText("<|im_start|>user\nOn which date did Apollo 11 land on the Moon? Reply with the "
                           "date only, formatted YYYY-MM-DD.<|im_end|>\n<|im_start|>assistant\n")



def _plain_step_ms(lm, prompt: str, steps: int) -> float:
    import torch

    gen = torch.Generator().manual_seed(0)
    state = lm.start(list(encode_prompt(lm.tokenizer, prompt).ids))
    start = time.perf_counter()
    for _ in range(steps):
        token = int(torch.multinomial(state.logprobs.exp(), 1, generator=gen))
        state = lm.extend(state, [token])
    return 1000 * (time.perf_counter() - start) / steps


def _timing(lm) -> dict[str, list[float]]:
    """Record the duration of every ``lm.start`` (the prompt's prefill, which ``generate``
    includes and a per-token time must not) and every ``lm.extend`` (one forward per
    generated token) by wrapping this instance's methods; ``_untime`` removes the wrappers."""
    times: dict[str, list[float]] = {"start": [], "extend": []}
    for name in times:
        method = getattr(lm, name)

        def timed(*args, _method=method, _name=name):
            t0 = time.perf_counter()
            state = _method(*args)
            times[_name].append(time.perf_counter() - t0)
            return state

        setattr(lm, name, timed)
    return times


def _untime(lm) -> None:
    del lm.start, lm.extend


def _run(decoder, lm, prompt, constraint, max_new_tokens, seeds):
    """Each run is paired with unconstrained steps timed just before it: on a shared machine
    the load drifts, so the time ratio is taken per pair, and the medians over the runs are
    reported."""
    rows = []
    for seed in seeds:
        plain = _plain_step_ms(lm, prompt, 6)
        constraint.reset_counters()
        times = _timing(lm)
        start = time.perf_counter()
        gen = decoder.generate(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        seconds = time.perf_counter() - start - sum(times["start"])
        _untime(lm)
        forwards = gen.counters["lm_calls"] - 1  # the prefill is the one other forward
        assert forwards == len(times["extend"]), "every forward after the prefill is an extend"
        steps = len(gen.ids) + (gen.finish_reason == "stop")  # the EOS draw is a sampler step too
        forward_seconds = sum(times["extend"])
        forward_ms = 1000 * forward_seconds / forwards
        sampler_ms = 1000 * (seconds - forward_seconds) / steps
        ms_per_token = forward_ms + sampler_ms
        rows.append({"text": gen.text, "finish": gen.finish_reason, "steps": steps, "forwards": forwards,
                     "checks": gen.counters["constraint_checks"], "seconds": seconds,
                     "forward_ms": forward_ms, "sampler_step_ms": sampler_ms, "ms_per_token": ms_per_token,
                     # the same run's time over its forwards: counts the one extra sampler step
                     "ms_per_forward": 1000 * seconds / forwards,
                     "valid": gen.finish_reason == "stop" and constraint.accepts(gen.bytes),
                     "prefix_allowed": constraint.allows(gen.bytes),
                     "plain_step_ms": plain, "time_vs_plain_step": ms_per_token / plain})
    finished = sum(r["finish"] == "stop" for r in rows)
    return {"runs": rows, "seeds": list(seeds),
            "checks_per_token": sum(r["checks"] for r in rows) / sum(r["steps"] for r in rows),
            "ms_per_token": statistics.median(r["ms_per_token"] for r in rows),
            "sampler_step_ms": statistics.median(r["sampler_step_ms"] for r in rows),
            "finished": finished / len(rows),
            # over finished runs; masking runs stop after a few tokens by design
            "validity": sum(r["valid"] for r in rows) / finished if finished else None,
            "prefixes_allowed": sum(r["prefix_allowed"] for r in rows) / len(rows),
            "time_vs_plain_step": statistics.median(r["time_vs_plain_step"] for r in rows)}


def _peers() -> dict:
    out = {}
    for name, module in (("genlm-control 0.4.1", "genlm.control"), ("llguidance 1.9.1", "llguidance")):
        found = importlib.util.find_spec(module.split(".")[0]) is not None
        out[name] = {"skipped": "installed, but no offline adapter to SmolLM2 is wired up here" if found
                     else "not installed in this environment (optional peer, not a plugin dependency)"}
    return out


def main(out_dir: Path, quick: bool) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from tokensmith_awrs.decoders import AWRSDecoder, MaskingDecoder
    from tokensmith_awrs.demo import PROMPT as JSON_PROMPT
    from tokensmith_awrs.demo import SCHEMA
    from tokensmith_awrs.json_schema import JSONSchemaConstraint
    from tokensmith_awrs.regex import RegexConstraint

    from tokensmith.adapters.hf_lm import HFCausalLM
    from tokensmith.adapters.models import load_smollm2
    from tokensmith.core.runtime import Runtime

    torch.set_num_threads(2)
    runtime = Runtime(device="cpu", dtype="float32")
    model, tok = load_smollm2(runtime, progress=False)
    lm = HFCausalLM(model, tok, runtime, name="smollm2")
    seeds = [0] if quick else [0, 1, 2]
    masking_tokens = 2 if quick else 4
    plain_ms = _plain_step_ms(lm, JSON_PROMPT, 8 if quick else 24)
    results: dict = {"model": "SmolLM2-135M-Instruct", "threads": 2, "quick": quick,
                     "vocab_size": lm.vocab_size, "plain_step_ms": plain_ms, "constraints": {}}
    cases = {"regex": (REGEX_PROMPT, lambda: RegexConstraint(REGEX), 16),
             "json-schema": (JSON_PROMPT, lambda: JSONSchemaConstraint(SCHEMA), 64)}
    for name, (prompt, make, max_tokens) in cases.items():
        awrs = _run(AWRSDecoder(), lm, prompt, make(), max_tokens, seeds)
        masking = _run(MaskingDecoder(), lm, prompt, make(), masking_tokens, seeds)
        results["constraints"][name] = {
            "awrs": awrs, "masking": masking,
            "awrs_time_vs_plain_step": awrs["time_vs_plain_step"],
            "masking_time_vs_plain_step": masking["time_vs_plain_step"],
            "masking_checks_vs_awrs": masking["checks_per_token"] / awrs["checks_per_token"]}
        print(f"  {name}: AWRS {awrs['checks_per_token']:.1f} checks/token, "
              f"{awrs['ms_per_token']:.0f} ms/token (median run) "
              f"(validity {awrs['validity'] or 0:.0%}); "
              f"masking {masking['checks_per_token']:.0f} checks/token, "
              f"{masking['ms_per_token']:.0f} ms/token; plain step {plain_ms:.0f} ms", flush=True)
    results["peers"] = _peers()
    (out_dir / "awrs.json").write_text(json.dumps(results, indent=2))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = list(results["constraints"])
    x = range(len(names))
    for ax, key, label in ((axes[0], "checks_per_token", "constraint checks per token (log)"),
                           (axes[1], "ms_per_token", "wall time per token, median run (ms)")):
        for k, (method, color) in enumerate((("awrs", "tab:blue"), ("masking", "tab:red"))):
            values = [results["constraints"][n][method][key] for n in names]
            ax.bar([i + 0.35 * k for i in x], values, 0.35, label=method, color=color)
        if key == "ms_per_token":
            ax.axhline(plain_ms, color="k", ls="--", label="unconstrained step")
        else:
            ax.set_yscale("log")
        ax.set_xticks([i + 0.175 for i in x], names)
        ax.set_title(label)
        ax.legend()
    fig.suptitle("AWRS vs full masking on SmolLM2-135M (2 CPU threads)")
    fig.tight_layout()
    fig.savefig(out_dir / "awrs.png", dpi=120)
    plt.close(fig)
    return {n: {k: round(v, 3) for k, v in c.items() if isinstance(v, float)}
            for n, c in results["constraints"].items()}
