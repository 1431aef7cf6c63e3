"""Peer comparison on SmolLM2 (2 CPU threads): tokensmith plugins vs the genlm stack and llguidance.

Optional: the peers (genlm-bytes 0.2.0, genlm-control 0.4.1, genlm-backend 0.3.1,
llguidance 1.9.1) are not dependencies of any plugin. When they are not importable,
``main`` prints the reason, returns ``None`` and leaves any earlier ``peers.json``
(measured with the peers installed) as it is; otherwise it returns a ``tokensmith.Report``
that bench/run.py writes with ``write_all``.
See README.md in this folder for the install commands. Measured in one run:

* next-byte distributions: genlm-bytes' beam (K=5) vs tokensmith-byteprob (canonical):
  KL(ours || theirs), max |p_ours - p_theirs|, median ms per next-byte distribution;
* AWRS: genlm-control's ``AWRS`` sampler vs ``tokensmith_awrs`` AWRSDecoder on one regex:
  constraint checks per token and ms per token;
* masks: llguidance token-mask build time per step vs the per-step sampler time of
  tokensmith-awrs' full-vocabulary masking baseline, on the same regex.

Nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

PEERS = {"genlm-bytes": "genlm.bytes", "genlm-control": "genlm.control", "genlm-backend": "genlm.backend",
         "llguidance": "llguidance"}
BYTE_PROMPTS = (b"def fibon", b"The capital of Fra", b"import num")
BEAM_K = 5


def _missing() -> list[str]:
    out = []
    for dist, module in PEERS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            out.append(dist)
    return out


def _awrs_bench() -> Any:
    """tokensmith-awrs' registered benchmark module: its regex, prompt and per-run timing are
    reused so both comparisons measure tokensmith-awrs exactly as ``tokensmith bench awrs`` does."""
    from tokensmith_awrs import benchmark

    return benchmark


def _hf_tokenizer(lm: Any) -> Any:
    """A transformers fast tokenizer over the same tokenizer.json, which the peers need;
    BOS is set to the id tokensmith conditions on, since the converted file declares none."""
    from transformers import PreTrainedTokenizerFast

    from tokensmith.adapters.models import smollm2_cache_dir

    hft = PreTrainedTokenizerFast(tokenizer_file=str(smollm2_cache_dir() / "tokenizer.json"))
    hft.bos_token = hft.convert_ids_to_tokens(lm.start_ids[0])
    hft.eos_token = hft.convert_ids_to_tokens(lm.tokenizer.eos_id)
    return hft


def _theirs_257(lazy: Any) -> tuple[Any, float]:
    """genlm-bytes' 258 entries (bytes, EOT, EOS) as tokensmith's 257 (bytes, EOS); the EOT
    entry (a token boundary, not a symbol) is dropped and returned for the record."""
    import numpy as np

    ps = np.exp(np.asarray(lazy.ps, dtype=np.float64))
    p = np.concatenate([ps[:256], ps[257:258]])
    return p / p.sum(), float(ps[256])


def byte_distributions(lm: Any, hft: Any, quick: bool) -> dict[str, Any]:
    import numpy as np
    from genlm.backend.llm import AsyncTransformer
    from genlm.bytes import BeamParams, ByteBeamState
    from tokensmith_byteprob import ByteProbLM

    steps = 4 if quick else 8
    blm = ByteProbLM(lm, meaning="canonical")
    blm.start(b"warm up")
    alm = AsyncTransformer(lm.model, hft)

    async def run() -> dict[str, Any]:
        initial = await ByteBeamState.initial(alm, BeamParams(K=BEAM_K))
        await (await initial.prefill(b"warm up")).logp_next()
        rows, ours_ms, theirs_ms = {}, [], []
        for prompt in BYTE_PROMPTS:
            state = blm.start(prompt)
            beam = await initial.prefill(prompt)
            theirs, eot = _theirs_257(await beam.logp_next())
            kls, diffs, eots, text = [], [], [eot], b""
            for k in range(steps + 1):
                ours = state.logprobs.exp().double().numpy()
                kls.append(float(np.sum(ours * (np.log(np.maximum(ours, 1e-300))
                                                - np.log(np.maximum(theirs, 1e-300))))))
                diffs.append(float(np.abs(ours - theirs).max()))
                b = int(ours.argmax())
                if k == steps or b == 256:
                    break
                text += bytes([b])
                t0 = time.perf_counter()
                state = blm.advance(state, b)
                ours_ms.append(1000 * (time.perf_counter() - t0))
                t0 = time.perf_counter()
                beam = await (beam.prune() << b)
                lazy = await beam.logp_next()
                theirs_ms.append(1000 * (time.perf_counter() - t0))
                theirs, eot = _theirs_257(lazy)
                eots.append(eot)
            rows[prompt.decode()] = {"greedy_continuation": text.decode("utf-8", "replace"),
                                     "kl_ours_theirs": kls, "max_abs_diff": diffs,
                                     "theirs_eot_mass_dropped": eots}
        return {"prompts": rows, "ours_ms": ours_ms, "theirs_ms": theirs_ms}

    res = asyncio.run(run())
    kls = [v for r in res["prompts"].values() for v in r["kl_ours_theirs"]]
    diffs = [v for r in res["prompts"].values() for v in r["max_abs_diff"]]
    return {"beam_K": BEAM_K, "meaning": "canonical", "bytes_per_prompt": steps, "prompts": res["prompts"],
            "kl_max": max(kls), "kl_median": statistics.median(kls), "max_abs_diff_max": max(diffs),
            "ours_median_ms_per_next_byte": statistics.median(res["ours_ms"]),
            "theirs_median_ms_per_next_byte": statistics.median(res["theirs_ms"]),
            "theirs_over_ours_time": statistics.median(res["theirs_ms"]) / statistics.median(res["ours_ms"])}


#: genlm-control's ``BoolFSA.from_regex`` reads the pattern over ``string.printable`` (its default
#: charset), so its ``\d`` is the ten ASCII digits; Python's ``re`` (tokensmith-awrs' regex) gives
#: ``\d`` every Unicode digit. ``(?a)`` (re.ASCII) makes ours the same language as theirs.
ASCII = "(?a)"


def _ci(rows: list[dict[str, Any]], seed: int = 0, reps: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval (over runs) of the checks per token, sum(checks) / sum(steps)."""
    import random

    rng = random.Random(seed)
    stats = []
    for _ in range(reps):
        pick = [rows[rng.randrange(len(rows))] for _ in rows]
        stats.append(sum(r["checks"] for r in pick) / sum(r["steps"] for r in pick))
    stats.sort()
    return stats[int(0.025 * reps)], stats[int(0.975 * reps) - 1]


def _per_step(rows: list[dict[str, Any]]) -> list[float]:
    """Mean checks at each sampler step (1 = the first token), over the runs that got that far."""
    longest = max(len(r["step_checks"]) for r in rows)
    return [statistics.mean(r["step_checks"][k] for r in rows if len(r["step_checks"]) > k)
            for k in range(longest)]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    steps = sum(r["steps"] for r in rows)
    low, high = _ci(rows)
    return {"checks_per_token": sum(r["checks"] for r in rows) / steps, "checks_per_token_ci95": [low, high],
            "checks_per_run": [r["checks"] for r in rows], "checks_per_step": _per_step(rows),
            "texts": [r["text"] for r in rows], "steps": steps}


def _ours_run(lm: Any, bench: Any, constraint: Any, max_tokens: int, seed: int) -> dict[str, Any]:
    """One run of tokensmith-awrs' default AWRSDecoder, timed by the awrs benchmark's ``timed_runs``;
    a replay with the same seed (the samples are reproducible) records the checks of every step."""
    from tokensmith_awrs.decoders import AWRSDecoder

    run = bench.timed_runs(AWRSDecoder(), lm, bench.REGEX_PROMPT, constraint, max_tokens, [seed])["runs"][0]
    marks: list[int] = []
    extend = lm.extend

    def marked(*args, _extend=extend, _marks=marks):
        _marks.append(constraint.checks)  # the step that chose this token is over
        return _extend(*args)

    lm.extend = marked
    try:
        constraint.reset_counters()
        gen = AWRSDecoder().generate(lm, bench.REGEX_PROMPT, max_new_tokens=max_tokens,
                                     constraint=constraint, seed=seed)
    finally:
        del lm.extend
    if gen.text != run["text"]:
        raise AssertionError(f"seed {seed}: the replay sampled {gen.text!r}, the timed run {run['text']!r}")
    # the last step (the EOS draw, or the one that reaches max_new_tokens) extends nothing
    marks.append(gen.counters["constraint_checks"])
    if len(marks) != run["steps"]:
        raise AssertionError(f"seed {seed}: {len(marks)} steps marked, {run['steps']} timed")
    row = {"seed": seed, "text": run["text"], "steps": run["steps"], "checks": run["checks"],
           "step_checks": [b - a for a, b in zip([0, *marks], marks)], "seconds": run["seconds"],
           "ms_per_token": run["ms_per_token"], "valid": run["valid"]}
    if sum(row["step_checks"]) != run["checks"]:
        raise AssertionError(f"seed {seed}: per-step checks do not add up to the run's")
    return row


def _ours(lm: Any, bench: Any, regex: str, max_tokens: int, seeds: list[int]) -> dict[str, Any]:
    """:func:`_ours_run` for every seed, summarised."""
    from tokensmith_awrs.regex import RegexConstraint

    constraint = RegexConstraint(regex)
    rows = [_ours_run(lm, bench, constraint, max_tokens, seed) for seed in seeds]
    return {"regex": regex, **_summary(rows), "ms_per_token": _ms_per_token(rows),
            "validity": sum(r["valid"] for r in rows) / len(rows), "runs": rows}


def _ms_per_token(rows: list[dict[str, Any]]) -> float:
    """Total time over sampled tokens (EOS included); ours' per-run time is its forwards (prefill
    excluded) plus its sampler steps (``timed_runs``), theirs the SMC call after the prefill."""
    return statistics.median(r["ms_per_token"] for r in rows)


def _paired(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], seed: int = 0,
            reps: int = 2000) -> dict[str, Any]:
    """Paired bootstrap over the pairs (ours seed i, theirs seed i, run back to back): the 95%
    interval of the difference of checks per token (ours - theirs, each sum(checks) / sum(steps)
    over the same resampled pairs) and of the median per-pair time ratio (theirs / ours ms per
    token; the two runs of a pair share the machine's load)."""
    import random

    rng = random.Random(seed)
    n = len(ours)
    ratios = [t["ms_per_token"] / o["ms_per_token"] for o, t in zip(ours, theirs)]

    def cpt(rows: list[dict[str, Any]], pick: list[int]) -> float:
        return sum(rows[i]["checks"] for i in pick) / sum(rows[i]["steps"] for i in pick)

    diffs, medians = [], []
    for _ in range(reps):
        pick = [rng.randrange(n) for _ in range(n)]
        diffs.append(cpt(ours, pick) - cpt(theirs, pick))
        medians.append(statistics.median(ratios[i] for i in pick))
    diffs.sort()
    medians.sort()
    every = list(range(n))
    return {"pairs": n, "checks_per_token_difference": cpt(ours, every) - cpt(theirs, every),
            "checks_per_token_difference_ci95": [diffs[int(0.025 * reps)], diffs[int(0.975 * reps) - 1]],
            "time_ratio_per_pair": ratios, "time_ratio_median": statistics.median(ratios),
            "time_ratio_median_ci95": [medians[int(0.025 * reps)], medians[int(0.975 * reps) - 1]],
            "time_ratio_min": min(ratios), "time_ratio_max": max(ratios)}


#: pairs of the end-to-end comparison: seeds 0, 1, ... until MAX_PAIRS, or until the pairs have
#: taken PAIR_BUDGET_S seconds (at least MIN_PAIRS), so that the whole run fits ~12 minutes even
#: when the machine is loaded; the JSON says how many were run. (The 2026-12-02 run with a 420 s
#: budget and 10 Unicode runs spent 613 s in this part on a loaded machine and hit the 15-minute
#: limit before writing its report.)
MAX_PAIRS, MIN_PAIRS, PAIR_BUDGET_S = 40, 10, 300.0


def awrs(lm: Any, hft: Any, bench: Any, quick: bool) -> dict[str, Any]:
    """Both samplers end to end on the same prompt and language, interleaved: for seed i, our run
    and theirs back to back (which goes first alternates), so both sides of a pair see the same
    load; the 1-minute load average is recorded before and after every pair."""
    import os

    from tokensmith_awrs.regex import RegexConstraint

    from tokensmith import progress

    seeds = list(range(2 if quick else MAX_PAIRS))
    max_tokens = 16
    llm, condition, _ = _their_sampler(lm, hft, bench, seed=0)
    constraint = RegexConstraint(ASCII + bench.REGEX)

    async def one(seed: int) -> dict[str, Any]:
        from genlm.control import AWRS

        sampler = AWRS(llm, condition, seed=seed, autobatch=False)
        checks, step_checks = 0, []
        accept, sample = sampler._accept, sampler.sample

        async def counted(context, token, verbosity=0):
            nonlocal checks
            checks += 1
            return await accept(context, token, verbosity)

        async def stepped(*args, **kwargs):
            before = checks
            out = await sample(*args, **kwargs)
            step_checks.append(checks - before)
            return out

        sampler._accept = counted
        sampler.sample = stepped
        await llm.logw_next([])  # the prompt's prefill, left out as in tokensmith's timing
        t0 = time.perf_counter()
        seqs = await sampler.smc(n_particles=1, ess_threshold=0.5, max_tokens=max_tokens)
        seconds = time.perf_counter() - t0
        context = seqs.contexts[0]
        text = b"".join(t for t in context if isinstance(t, bytes))
        return {"seed": seed, "text": text.decode("utf-8", "replace"), "steps": len(context),
                "checks": checks, "step_checks": step_checks, "seconds": seconds,
                "ms_per_token": 1000 * seconds / len(context)}

    ours_rows, theirs_rows, load = [], [], []
    started = time.perf_counter()
    for seed in progress(seeds, total=len(seeds), desc="AWRS pairs", unit="pair"):
        if len(ours_rows) >= MIN_PAIRS and time.perf_counter() - started > PAIR_BUDGET_S:
            break  # the run must fit its time slot on a loaded machine: fewer pairs, reported as such
        before = os.getloadavg()[0]
        if seed % 2 == 0:
            ours_rows.append(_ours_run(lm, bench, constraint, max_tokens, seed))
            theirs_rows.append(asyncio.run(one(seed)))
        else:
            theirs_rows.append(asyncio.run(one(seed)))
            ours_rows.append(_ours_run(lm, bench, constraint, max_tokens, seed))
        load.append([before, os.getloadavg()[0]])
    ours = {"regex": ASCII + bench.REGEX, **_summary(ours_rows), "ms_per_token": _ms_per_token(ours_rows),
            "validity": sum(r["valid"] for r in ours_rows) / len(ours_rows), "runs": ours_rows}
    theirs = {"regex": bench.REGEX, **_summary(theirs_rows), "ms_per_token": _ms_per_token(theirs_rows),
              "runs": theirs_rows}
    paired = _paired(ours_rows, theirs_rows)
    # ours on the awrs benchmark's Unicode \d (a different, larger language), fewer seeds, not paired
    ours_unicode = _ours(lm, bench, bench.REGEX, max_tokens, seeds[:2 if quick else 4])
    flat = [v for pair in load for v in pair]
    return {"regex": bench.REGEX, "ours_regex": ASCII + bench.REGEX, "max_new_tokens": max_tokens,
            "seeds": seeds[:len(ours_rows)], "pair_budget_s": PAIR_BUDGET_S, "ours": ours,
            "ours_unicode_digits": ours_unicode, "theirs": theirs,
            "paired": paired, "loadavg_1min_per_pair": load,
            "loadavg_min": min(flat), "loadavg_median": statistics.median(flat), "loadavg_max": max(flat),
            "cpu_count": os.cpu_count(),
            "checks_difference": paired["checks_per_token_difference"],
            "checks_difference_ci95_low": paired["checks_per_token_difference_ci95"][0],
            "checks_difference_ci95_high": paired["checks_per_token_difference_ci95"][1],
            "theirs_over_ours_time": paired["time_ratio_median"],
            "theirs_over_ours_time_ci95_low": paired["time_ratio_median_ci95"][0],
            "theirs_over_ours_time_ci95_high": paired["time_ratio_median_ci95"][1],
            "theirs_over_ours_checks": theirs["checks_per_token"] / ours["checks_per_token"]}


#: dates whose token prefixes are the contexts of the teacher-forced comparison (the landing date
#: SmolLM2 answers most often, and two it also writes)
STEP_DATES = ("1969-07-20", "1969-07-16", "1969-07-24")


def _their_sampler(lm: Any, hft: Any, bench: Any, seed: int) -> tuple[Any, Any, Any]:
    """genlm-control's AWRS over the same LM, prompt, EOS and (ASCII) regex as ``awrs``."""
    from genlm.backend.llm import AsyncTransformer
    from genlm.control import AWRS, BoolFSA, PromptedLLM

    prompt_ids = list(lm.start_ids) + list(lm.tokenizer.encode(bench.REGEX_PROMPT, allow_special=True).ids)
    llm = PromptedLLM(AsyncTransformer(lm.model, hft), prompt_ids=prompt_ids,
                      eos_byte_strings=[hft.eos_token.encode()])
    condition = BoolFSA.from_regex(bench.REGEX).coerce(llm, f=b"".join)
    return llm, condition, AWRS(llm, condition, seed=seed, autobatch=False)


def _their_ids(llm: Any, sampler: Any, eos_id: int) -> list[int]:
    """The token id behind each entry of genlm-control's next-token vector (its EOS entry is
    SmolLM2's EOS, ``<|im_end|>``)."""
    ids = [-1] * len(llm.vocab_eos)
    for t in llm.vocab_eos:
        ids[llm.lookup[t]] = eos_id if t is sampler.target.eos else llm.token_maps.encode[t]
    return ids


def awrs_steps(lm: Any, hft: Any, bench: Any, quick: bool) -> dict[str, Any]:
    """Teacher-forced comparison of the two samplers on *the same* next-token distributions: for
    every prefix of the tokens of :data:`STEP_DATES` (the EOS step included), one forward on each
    side, then each side's AWRS step ``reps`` times on that distribution (fresh keys each time).
    Per context: the mean constraint checks of each side (with its standard error), both sides'
    pruned candidate sets and masses, which estimator each side's switch picks (``max p >= 2/3``:
    geometric), the total variation between the two pruned distributions, and, as an exactness
    check, each side's mean weight against the exact ``Z_c`` (every candidate checked). The
    end-to-end runs differ in *what* was sampled; this isolates *how* each side samples."""
    import torch
    from tokensmith_awrs.regex import RegexConstraint
    from tokensmith_awrs.sampler import GEOMETRIC_THRESHOLD, SAMPLERS
    from tokensmith_awrs.smc import symbol_check
    from tokensmith_awrs.spaces import TokenSpace, byte_alphabet

    from tokensmith import encode_prompt, progress

    reps = 10 if quick else 100
    constraint = RegexConstraint(ASCII + bench.REGEX)
    space = TokenSpace(lm)
    space.restrict(byte_alphabet(constraint), constraint)
    prompt_ids = list(lm.start_ids) + list(encode_prompt(lm.tokenizer, bench.REGEX_PROMPT).ids)
    llm, _, theirs = _their_sampler(lm, hft, bench, seed=0)
    their_ids = torch.tensor(_their_ids(llm, theirs, lm.tokenizer.eos_id))
    stops = sorted(space.stops)
    paths = []
    for date in STEP_DATES[:2] if quick else STEP_DATES:
        ids = list(lm.tokenizer.encode(date).ids)
        paths += [tuple(ids[:k]) for k in range(len(ids) + 1) if tuple(ids[:k]) not in paths]

    def merged(logp: Any) -> Any:
        """Probabilities over token ids with every stop symbol merged into EOS (theirs has one EOS)."""
        p = torch.exp(logp)
        p[lm.tokenizer.eos_id] = p[stops].sum()
        p[[s for s in stops if s != lm.tokenizer.eos_id]] = 0.0
        return p

    async def theirs_at(path: tuple[int, ...]) -> dict[str, Any]:
        context = [llm.token_maps.decode[i] for i in path]
        logws = await llm.logw_next(context)
        lw = theirs._prune_logws(torch.as_tensor(logws.weights)).double()
        log_z = float(torch.logsumexp(lw, 0))
        full = torch.full((lm.vocab_size,), -math.inf, dtype=torch.float64)
        full[their_ids] = lw - log_z
        checks, weights, seconds = [], [], []
        for _ in range(reps):
            n = [0]

            async def counted(tok: Any, _n: list[int] = n) -> bool:
                _n[0] += 1
                return await theirs._accept(context, tok)

            t0 = time.perf_counter()
            _, w, _ = await theirs._run_rejection(logws, counted)
            seconds.append(time.perf_counter() - t0)
            checks.append(n[0])
            weights.append(math.exp(w) if w > -math.inf else 0.0)
        return {"logp": full, "log_z": log_z, "checks": checks, "weights": weights, "seconds": seconds,
                "candidates": int(torch.isfinite(lw).sum())}

    step = SAMPLERS["auto"]
    rows = []
    for path in progress(paths, total=len(paths), desc="teacher-forced steps", unit="context"):
        prefix = b"".join(space.pieces[i] for i in path)
        state = lm.start(prompt_ids + list(path))
        logw = space.logweights(state).double()
        log_z = float(torch.logsumexp(logw, 0))
        logp = logw - log_z
        finite = torch.nonzero(torch.isfinite(logw)).flatten().tolist()
        allowed = [x for x in finite if symbol_check(constraint, space, prefix, list(path))(x)]
        z_c = float(torch.exp(logw[allowed]).sum()) if allowed else 0.0
        gen = torch.Generator().manual_seed(len(rows))
        checks, weights, seconds = [], [], []
        for _ in range(reps):
            before = constraint.checks
            t0 = time.perf_counter()
            s = step(logw, symbol_check(constraint, space, prefix, list(path)), gen)
            seconds.append(time.perf_counter() - t0)
            checks.append(constraint.checks - before)
            weights.append(math.exp(s.log_weight) if s.log_weight > -math.inf else 0.0)
        other = asyncio.run(theirs_at(path))
        tv = 0.5 * float((merged(logp) - merged(other["logp"])).abs().sum())
        # the exact Z_c on their side: their pruned mass times the allowed share (same allowed set)
        their_allowed = [x for x in allowed if x not in space.stops or x == lm.tokenizer.eos_id]
        their_zc = math.exp(other["log_z"]) * float(torch.exp(other["logp"][their_allowed]).sum())
        rows.append({
            "prefix": prefix.decode(), "step": len(path) + 1,
            "ours_mean_checks": statistics.mean(checks),
            "ours_se": statistics.stdev(checks) / math.sqrt(reps),
            "theirs_mean_checks": statistics.mean(other["checks"]),
            "theirs_se": statistics.stdev(other["checks"]) / math.sqrt(reps),
            "ours_candidates": len(finite), "theirs_candidates": other["candidates"],
            "ours_log_z": log_z, "theirs_log_z": other["log_z"],
            "ours_max_p": float(torch.exp(logp.max())), "theirs_max_p": float(torch.exp(other["logp"].max())),
            "ours_geometric": float(logp.max()) >= GEOMETRIC_THRESHOLD,
            "theirs_geometric": float(other["logp"].max()) >= GEOMETRIC_THRESHOLD,
            "tv_pruned_distributions": tv,
            "allowed": len(allowed), "z_c": z_c, "ours_mean_weight": statistics.mean(weights),
            "theirs_z_c": their_zc, "theirs_mean_weight": statistics.mean(other["weights"]),
            "ours_step_ms": 1000 * statistics.median(seconds),
            "theirs_step_ms": 1000 * statistics.median(other["seconds"])})
    diffs = [r["ours_mean_checks"] - r["theirs_mean_checks"] for r in rows]
    ses = [math.hypot(r["ours_se"], r["theirs_se"]) for r in rows]
    return {"regex": ASCII + bench.REGEX, "dates": list(STEP_DATES[:2] if quick else STEP_DATES),
            "reps_per_context": reps, "contexts": rows,
            "mean_checks_ours": statistics.mean(r["ours_mean_checks"] for r in rows),
            "mean_checks_theirs": statistics.mean(r["theirs_mean_checks"] for r in rows),
            "max_abs_z_score": max(abs(d) / s if s > 0 else 0.0 for d, s in zip(diffs, ses)),
            "max_tv_pruned_distributions": max(r["tv_pruned_distributions"] for r in rows),
            # the sampler step alone (no forward) on identical distributions
            "ours_median_step_ms": statistics.median(r["ours_step_ms"] for r in rows),
            "theirs_median_step_ms": statistics.median(r["theirs_step_ms"] for r in rows)}


def masks(lm: Any, hft: Any, bench: Any, quick: bool) -> dict[str, Any]:
    import llguidance
    import llguidance.hf
    import llguidance.torch
    from tokensmith_awrs.decoders import MaskingDecoder
    from tokensmith_awrs.regex import RegexConstraint

    masking = bench.timed_runs(MaskingDecoder(), lm, bench.REGEX_PROMPT, RegexConstraint(bench.REGEX),
                         2 if quick else 4, [0])
    lltok = llguidance.hf.from_tokenizer(hft, n_vocab=lm.vocab_size)
    path = lm.tokenizer.encode("1969-07-20").ids
    reps = 5 if quick else 20
    times = []
    for _ in range(reps):
        matcher = llguidance.LLMatcher(lltok, llguidance.LLMatcher.grammar_from_regex(bench.REGEX))
        bitmask = llguidance.torch.allocate_token_bitmask(1, lm.vocab_size)
        for token in path:
            t0 = time.perf_counter()
            llguidance.torch.fill_next_token_bitmask(matcher, bitmask, 0)
            times.append(1000 * (time.perf_counter() - t0))
            assert matcher.consume_token(token), matcher.get_error()
    ours_ms = masking["sampler_step_ms"]
    return {"regex": bench.REGEX, "token_path": path,
            "llguidance_median_ms_per_mask": statistics.median(times),
            "ours_masking_sampler_step_ms": ours_ms,
            "ours_masking_checks_per_step": masking["checks_per_token"],
            "ours_over_llguidance_time": ours_ms / statistics.median(times)}


def _part(results: dict, name: str, fn: Any, *args: Any) -> None:
    """Each comparison is independent: one peer API failing is recorded, the others still run."""
    t0 = time.perf_counter()
    try:
        results[name] = fn(*args)
    except Exception as err:  # noqa: BLE001 - a peer's failure is a result to record, not a crash
        results[name] = {"error": f"{type(err).__name__}: {err}"}
    results[name]["bench_seconds"] = time.perf_counter() - t0
    scalars = {k: v for k, v in results[name].items() if not isinstance(v, (dict, list))}
    print(f"  {name}: {json.dumps(scalars)}", flush=True)


BARS = (("next-byte distribution (ms)", "byte_distributions", ("ours_median_ms_per_next_byte",),
         ("theirs_median_ms_per_next_byte",), "genlm-bytes K=5"),
        ("AWRS regex (ms/token)", "awrs", ("ours", "ms_per_token"), ("theirs", "ms_per_token"),
         "genlm-control AWRS"),
        ("mask per step (ms)", "masks", ("ours_masking_sampler_step_ms",), ("llguidance_median_ms_per_mask",),
         "llguidance"))


def _get(d: Any, keys: tuple[str, ...]) -> float | None:
    for k in keys:
        d = d.get(k, {}) if isinstance(d, dict) else {}
    return float(d) if isinstance(d, int | float) and math.isfinite(d) else None


AWRS_SIDES = (("ours", "tokensmith-awrs"), ("theirs", "genlm-control"),
              ("ours_unicode_digits", "tokensmith-awrs, Unicode \\d"))


def _awrs_checks(part: dict[str, Any], metrics: dict[str, float], tables: tuple, series: tuple) -> tuple:
    """Checks per token of each AWRS side with its bootstrap interval, and the mean checks of each
    step (where the two differ), as metrics, a table and a line plot."""
    from tokensmith import Series, Table

    sides = [(key, label, part[key]) for key, label in AWRS_SIDES if isinstance(part.get(key), dict)
             and "checks_per_step" in part[key]]
    if not sides:
        return tables, series
    rows = []
    for key, label, side in sides:
        low, high = side["checks_per_token_ci95"]
        metrics.update({f"awrs.{key}.checks_per_token": side["checks_per_token"],
                        f"awrs.{key}.checks_per_token_ci95_low": low,
                        f"awrs.{key}.checks_per_token_ci95_high": high,
                        f"awrs.{key}.ms_per_token": side["ms_per_token"]})
        steps = side["checks_per_step"]
        rows.append((label, side.get("regex", part.get("regex")), len(side["checks_per_run"]),
                     side["checks_per_token"], f"{low:.2f}-{high:.2f}", side["ms_per_token"],
                     " ".join(f"{c:.1f}" for c in steps[:12])))
    seeds = len(part.get("seeds", []))
    tables += (Table(f"AWRS on {part.get('regex')}: constraint checks per token over {seeds} seeds per side "
                     "(95% bootstrap interval over runs)",
                     ("sampler", "regex", "runs", "checks/token", "95% interval", "median ms/token",
                      "mean checks at step 1, 2, ..."), tuple(rows)),)
    series += tuple(Series(label, tuple(range(1, len(side["checks_per_step"]) + 1)),
                           tuple(side["checks_per_step"]), plot="line", x_label="sampler step",
                           y_label="mean constraint checks", group="AWRS checks per step")
                    for _, label, side in sides)
    return tables, series


def _awrs_pairs(part: dict[str, Any], steps: dict[str, Any], tables: tuple, series: tuple) -> tuple:
    """The paired end-to-end comparison (difference of checks per token, per-pair time ratio, load)
    and the teacher-forced one (mean checks of each side on the same distributions) as tables,
    the latter also as bars."""
    from tokensmith import Series, Table

    paired = part.get("paired")
    if isinstance(paired, dict):
        low, high = paired["checks_per_token_difference_ci95"]
        tlow, thigh = paired["time_ratio_median_ci95"]
        tables += (Table(f"AWRS end to end, {paired['pairs']} interleaved pairs (ours seed i, genlm-control "
                         "seed i, back to back; paired bootstrap, 95%)",
                         ("measure", "value", "95% interval"),
                         (("checks/token, ours - genlm-control", paired["checks_per_token_difference"],
                           f"{low:.3f} to {high:.3f}"),
                          ("ms/token, genlm-control / ours (median per-pair ratio)",
                           paired["time_ratio_median"], f"{tlow:.2f} to {thigh:.2f}"),
                          ("per-pair ratio, min - max", paired["time_ratio_min"],
                           f"max {paired['time_ratio_max']:.2f}"),
                          ("1-min load average over the pairs (min / median / max), "
                           f"{part.get('cpu_count')} CPUs", part.get("loadavg_median"),
                           f"{part.get('loadavg_min'):.2f} / {part.get('loadavg_max'):.2f}"))),)
    rows = steps.get("contexts") if isinstance(steps, dict) else None
    if rows:
        tables += (Table(f"AWRS teacher-forced: both samplers {steps['reps_per_context']} times on the same "
                         "next-token distribution of each context (mean checks ± standard error)",
                         ("context", "step", "ours", "genlm-control", "candidates ours / theirs",
                          "max p ours / theirs", "TV of pruned distributions", "Z_c exact",
                          "mean weight ours / theirs", "sampler step ms ours / theirs"),
                         tuple((r["prefix"] or "(start)", r["step"],
                                f"{r['ours_mean_checks']:.2f} ± {r['ours_se']:.2f}",
                                f"{r['theirs_mean_checks']:.2f} ± {r['theirs_se']:.2f}",
                                f"{r['ours_candidates']} / {r['theirs_candidates']}",
                                f"{r['ours_max_p']:.3f} / {r['theirs_max_p']:.3f}",
                                r["tv_pruned_distributions"], r["z_c"],
                                f"{r['ours_mean_weight']:.4g} / {r['theirs_mean_weight']:.4g}",
                                f"{r['ours_step_ms']:.2f} / {r['theirs_step_ms']:.2f}") for r in rows)),)
        labels = tuple(f"{r['prefix'] or '(start)'}" for r in rows)
        series += tuple(Series(label, labels, tuple(r[key] for r in rows), plot="bar", x_label="context",
                               y_label="mean constraint checks", group="AWRS teacher-forced checks")
                        for label, key in (("tokensmith-awrs, teacher-forced", "ours_mean_checks"),
                                           ("genlm-control, teacher-forced", "theirs_mean_checks")))
    return tables, series


def to_report(results: dict[str, Any], provenance: Any = None) -> Any:
    """The peer comparison as a Report: the scalar results of each part as metrics, one table
    of tokensmith vs peer, and the bars (log scale) of the plot."""
    from tokensmith import Provenance, Report, Series, Table

    metrics: dict[str, float] = {}
    notes = [f"{results['model']}, {results['threads']} CPU threads; peers: "
             + ", ".join(f"{d} {v}" for d, v in results["versions"].items())]
    for part in ("byte_distributions", "awrs", "awrs_steps", "masks"):
        for k, v in results.get(part, {}).items():
            if k == "error":
                notes.append(f"{part}: {v}")
            elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) \
                    and k != "bench_seconds":
                metrics[f"{part}.{k}"] = v
    rows = [(label, peer, _get(results.get(part, {}), ours), _get(results.get(part, {}), theirs))
            for label, part, ours, theirs, peer in BARS]
    kl = _get(results, ("byte_distributions", "kl_max"))
    if kl is not None:
        notes.append(f"max KL(ours || genlm-bytes) = {kl:.2e} nats")
    measured = [r for r in rows if r[2] is not None and r[3] is not None]
    series = (Series("tokensmith", tuple(r[0] for r in measured), tuple(r[2] for r in measured), plot="bar",
                     y_label="ms (log)", group="tokensmith vs peers", log_y=True),
              Series("peer", tuple(r[0] for r in measured), tuple(r[3] for r in measured), plot="bar",
                     y_label="ms (log)", group="tokensmith vs peers", log_y=True)) if measured else ()
    prompts = results.get("byte_distributions", {}).get("prompts", {})
    per_prompt = tuple((p, r["greedy_continuation"], max(r["kl_ours_theirs"]), max(r["max_abs_diff"]),
                        max(r["theirs_eot_mass_dropped"])) for p, r in prompts.items())
    tables = (Table("tokensmith vs peers", ("measure", "peer", "tokensmith", "peer value"), tuple(rows)),)
    if per_prompt:
        tables += (Table("next-byte distributions along tokensmith's greedy path, vs genlm-bytes",
                         ("prompt", "greedy continuation", "max KL (nats)", "max |Δp|",
                          "max EOT mass dropped"), per_prompt),)
    tables, series = _awrs_checks(results.get("awrs", {}), metrics, tables, series)
    tables, series = _awrs_pairs(results.get("awrs", {}), results.get("awrs_steps", {}), tables, series)
    return Report(name="peers", metrics=metrics, tables=tables,
                  series=series, notes=tuple(notes), provenance=provenance or Provenance())


def main(out_dir: Path, quick: bool) -> Any:
    missing = _missing()
    if missing:
        # Results measured where the peers were installed stay in place; only the reason is reported.
        print(f"peers not importable: {', '.join(missing)} (optional; install as in bench/peers/README.md)")
        return None

    from importlib.metadata import version

    import torch

    from tokensmith import PipelineSpec, Provenance, Registry

    registry = Registry.from_environment()
    pipeline = registry.build_pipeline(PipelineSpec(
        model={"source": "smollm2", "progress": False},
        runtime={"device": "cpu", "dtype": "fp32", "threads": 2, "seed": 0}))
    lm = pipeline.lm
    hft = _hf_tokenizer(lm)
    bench = _awrs_bench()
    results: dict[str, Any] = {"model": "SmolLM2-135M-Instruct", "threads": 2, "quick": quick,
                               "versions": {d: version(d) for d in PEERS} | {"torch": torch.__version__}}
    _part(results, "byte_distributions", byte_distributions, lm, hft, quick)
    _part(results, "awrs", awrs, lm, hft, bench, quick)
    _part(results, "awrs_steps", awrs_steps, lm, hft, bench, quick)
    _part(results, "masks", masks, lm, hft, bench, quick)
    return to_report(results, Provenance.collect(registry, pipeline.runtime, pipeline.spec.model))
