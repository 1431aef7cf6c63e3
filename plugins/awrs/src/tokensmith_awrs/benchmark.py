"""The ``awrs`` benchmark (``tokensmith bench awrs``): AWRS against full-vocabulary masking on
SmolLM2 (2 CPU threads), measured in one run (Lipkin et al. 2025, "Fast controlled generation
from language models with adaptive weighted rejection sampling").

For a regex and a JSON Schema constraint: constraint checks per sampled symbol, wall time per
token, and validity of the finished strings; the time of an unconstrained decode step
(KV-cache extend + a multinomial draw) is measured in the same run as the reference. A
constrained token costs one LM forward (the KV-cache extend) plus one sampler step, so each
run times its forwards and its sampler steps apart: a run of ``n`` sampler steps makes only
``n - 1`` forwards after the prompt's prefill (the last step, an EOS draw or the step that hits
``max_new_tokens``, extends nothing), and the prefill is left out. Peers (genlm-control,
llguidance) are compared in bench/peers, which reuses :func:`timed_runs`.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import attrs

from tokensmith import (
    Benchmark,
    BuildContext,
    ComponentError,
    Provenance,
    Report,
    Series,
    Table,
    TrustedText,
    encode_prompt,
    positive_int,
    ratio,
)

from .decoders import AWRSDecoder, MaskingDecoder
from .demo import PROMPT as JSON_PROMPT
from .demo import SCHEMA
from .json_schema import JSONSchemaConstraint
from .regex import RegexConstraint

REGEX = r"\d{4}-\d{2}-\d{2}"
# a chat prompt written by us: its markers are control tokens (TrustedText), not user text
REGEX_PROMPT = TrustedText("<|im_start|>user\nOn which date did Apollo 11 land on the Moon? Reply with the "
                           "date only, formatted YYYY-MM-DD.<|im_end|>\n<|im_start|>assistant\n")
#: the decoders measured: AWRS as configured by default (genlm-control's estimator switch,
#: a-priori alphabet pruning and implied rejections), the same without implied rejections (what
#: genlm-control runs), the paper's two-round AWRS without pruning (this plugin's first version),
#: and full-vocabulary masking (locally constrained decoding, no pruning)
METHODS = ("awrs", "awrs-no-closure", "awrs-paper", "masking")


def decoder_for(method: str) -> Any:
    if method == "awrs":
        return AWRSDecoder()
    if method == "awrs-no-closure":
        return AWRSDecoder(closure=False)
    if method == "awrs-paper":
        return AWRSDecoder(variant="two-round", prune=False)
    return MaskingDecoder(prune=False)


def plain_step_ms(lm: Any, prompt: str, steps: int) -> float:
    """Milliseconds of one unconstrained decode step: a KV-cache extend and a multinomial draw."""
    import torch

    gen = torch.Generator().manual_seed(0)
    state = lm.start(list(encode_prompt(lm.tokenizer, prompt).ids))
    start = time.perf_counter()
    for _ in range(steps):
        token = int(torch.multinomial(state.logprobs.exp(), 1, generator=gen))
        state = lm.extend(state, [token])
    return 1000 * (time.perf_counter() - start) / steps


def _timing(lm: Any) -> dict[str, list[float]]:
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


def _untime(lm: Any) -> None:
    del lm.start, lm.extend


def timed_runs(decoder: Any, lm: Any, prompt: str, constraint: Any, max_new_tokens: int,
               seeds: list[int]) -> dict[str, Any]:
    """One constrained generation per seed, each paired with unconstrained steps timed just
    before it: on a shared machine the load drifts, so the time ratio is taken per pair, and
    the medians over the runs are reported."""
    rows = []
    for seed in seeds:
        plain = plain_step_ms(lm, prompt, 6)
        constraint.reset_counters()
        times = _timing(lm)
        try:
            start = time.perf_counter()
            gen = decoder.generate(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint,
                                   seed=seed)
            seconds = time.perf_counter() - start - sum(times["start"])
        finally:
            _untime(lm)
        forwards = gen.counters["lm_calls"] - 1  # the prefill is the one other forward
        if forwards != len(times["extend"]) or forwards < 1:
            raise ComponentError(f"{forwards} forwards counted after the prefill but {len(times['extend'])} "
                                 "timed extends", component="benchmark 'awrs'",
                                 hint="every forward after the prefill must be an lm.extend")
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
                     "plain_step_ms": plain, "time_vs_plain_step": ratio(ms_per_token, plain)})
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


def measure(lm: Any, *, quick: bool, model: str = "SmolLM2-135M-Instruct",
            threads: int = 2) -> dict[str, Any]:
    """Every number of the benchmark, as one JSON-like mapping (see :func:`to_report`)."""
    seeds = [0] if quick else list(range(10))
    masking_tokens = 2 if quick else 4
    plain = plain_step_ms(lm, JSON_PROMPT, 8 if quick else 24)
    results: dict[str, Any] = {"model": model, "threads": threads, "quick": quick,
                               "vocab_size": lm.vocab_size, "plain_step_ms": plain, "constraints": {}}
    cases = {"regex": (REGEX_PROMPT, lambda: RegexConstraint(REGEX), 16),
             "json-schema": (JSON_PROMPT, lambda: JSONSchemaConstraint(SCHEMA), 64)}
    for name, (prompt, make, max_tokens) in cases.items():
        runs = {m: timed_runs(decoder_for(m), lm, prompt, make(),
                              masking_tokens if m == "masking" else max_tokens, seeds) for m in METHODS}
        results["constraints"][name] = {
            **runs, **{f"{m}_time_vs_plain_step": runs[m]["time_vs_plain_step"] for m in METHODS},
            "masking_checks_vs_awrs": ratio(runs["masking"]["checks_per_token"],
                                            runs["awrs"]["checks_per_token"]),
            "paper_checks_vs_awrs": ratio(runs["awrs-paper"]["checks_per_token"],
                                          runs["awrs"]["checks_per_token"]),
            "no_closure_checks_vs_awrs": ratio(runs["awrs-no-closure"]["checks_per_token"],
                                               runs["awrs"]["checks_per_token"])}
    return results


def to_report(results: dict[str, Any], provenance: Provenance | None = None) -> Report:
    """The report of :func:`measure`'s results: per-constraint ratios as metrics, a summary
    table, every run, and bars of checks and time per token."""
    constraints = results["constraints"]
    metrics: dict[str, float] = {"plain_step_ms": results["plain_step_ms"]}
    summary, runs, notes = [], [], []
    for name, c in constraints.items():
        metrics[f"{name}.masking_checks_vs_awrs"] = c["masking_checks_vs_awrs"]
        metrics[f"{name}.paper_checks_vs_awrs"] = c["paper_checks_vs_awrs"]
        metrics[f"{name}.no_closure_checks_vs_awrs"] = c["no_closure_checks_vs_awrs"]
        for method in METHODS:
            m = c[method]
            metrics[f"{name}.{method}_checks_per_token"] = m["checks_per_token"]
            metrics[f"{name}.{method}_time_vs_plain_step"] = c[f"{method}_time_vs_plain_step"]
            if m["validity"] is not None:
                metrics[f"{name}.{method}_validity"] = m["validity"]
            summary.append((name, method, len(m["seeds"]), m["checks_per_token"], m["ms_per_token"],
                            m["sampler_step_ms"], m["time_vs_plain_step"], m["finished"], m["validity"],
                            m["prefixes_allowed"]))
            for seed, r in zip(m["seeds"], m["runs"]):
                runs.append((name, method, seed, r["text"], r["finish"], r["steps"], r["forwards"],
                             r["checks"], r["forward_ms"], r["sampler_step_ms"], r["ms_per_token"],
                             r["ms_per_forward"], int(r["valid"]), r["time_vs_plain_step"]))
            if m["validity"] is None:
                why = " (it stops after a few tokens by design: it checks every token of the vocabulary " \
                      "at every step)" if method == "masking" else ""
                notes.append(f"{name}: no {method} run finished{why}, so its validity is not measured")
    names = tuple(constraints)
    series = []
    for key, label, log in (("checks_per_token", "constraint checks per token", True),
                            ("ms_per_token", "ms per token (median run)", False)):
        for method in METHODS:
            values = tuple(constraints[n][method][key] for n in names)
            series.append(Series(f"{method}: {label}", names, values, y_label=label, plot="bar", group=label,
                                 log_y=log))
    series.append(Series("unconstrained step: ms per token", names, (results["plain_step_ms"],) * len(names),
                         y_label="ms per token (median run)", plot="scatter",
                         group="ms per token (median run)"))
    notes.append(f"{results['model']}, {results['threads']} CPU threads, vocabulary {results['vocab_size']}; "
                 "per-token time = mean LM forward + mean sampler step, prompt prefill excluded; ratios "
                 "against an unconstrained decode step timed just before each run")
    provenance = provenance or Provenance()
    notes.append("awrs: the default decoder (variant auto: geometric estimator when max p >= 2/3, else "
                 "recursive; tokens with a byte outside the constraint's alphabet pruned a priori; a "
                 "rejected token's dead byte prefix rejects the tokens extending it unchecked); "
                 "awrs-no-closure: the same without that (genlm-control's algorithm); awrs-paper: the "
                 "paper's two-round estimator, no pruning; masking: the constraint on every "
                 "token of the vocabulary (no pruning)")
    return Report(
        name="awrs", metrics=metrics,
        tables=(Table("AWRS vs full masking, median over runs",
                      ("constraint", "method", "runs", "checks/token", "ms/token", "sampler ms/step",
                       "time vs plain step", "finished", "validity", "prefixes allowed"), tuple(summary)),
                Table("every run", ("constraint", "method", "seed", "text", "finish", "steps", "forwards",
                                    "checks", "forward ms", "sampler ms", "ms/token", "ms/forward",
                                    "valid", "time vs plain step"), tuple(runs))),
        series=tuple(series), notes=tuple(notes),
        provenance=attrs.evolve(provenance, extra={**provenance.extra, "quick": results["quick"],
                                                   "threads": results["threads"]}))


@attrs.define
class AWRSBenchmark(Benchmark):
    """AWRS (default and the paper's two-round variant) vs full-vocabulary masking on a regex and a
    JSON Schema, in one run."""

    name = "awrs"

    model: str = attrs.field(default="smollm2", metadata={"doc": "the model source measured"})
    threads: int = attrs.field(default=2, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def run(self, *, quick: bool = False) -> Report:
        registry = self.registry()
        pipeline = self.cpu_pipeline(self.model, threads=self.threads)
        model = "SmolLM2-135M-Instruct" if self.model == "smollm2" else self.model
        results = measure(pipeline.lm, quick=quick, model=model, threads=self.threads)
        return to_report(results, Provenance.collect(registry, pipeline.runtime, pipeline.spec.model))
