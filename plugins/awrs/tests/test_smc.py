"""SMC with AWRS weights recovers the exact constrained posterior on an enumerable toy LM;
locally constrained decoding (masking) without weights is measurably biased."""

from __future__ import annotations

import math

import pytest
import torch
from tokensmith_awrs.decoders import AWRSDecoder, MaskingDecoder
from tokensmith_awrs.regex import RegexConstraint
from tokensmith_awrs.smc import smc
from tokensmith_awrs.spaces import ByteSpace

#: after "a" only "c" (probability 0.05) may follow: LCD over-samples the a-branch
PATTERN = "ac|b[ab]*"


def target(lm, constraint):
    strings = lm.enumerate()
    mass = {s: p for s, p in strings.items() if constraint.accepts(s)}
    z = sum(mass.values())
    return {s: p / z for s, p in mass.items()}, z


def lcd_exact(lm, constraint):
    """The string distribution of locally constrained decoding, by enumeration."""
    out: dict[bytes, float] = {}

    def visit(prefix: bytes, prob: float) -> None:
        logp = lm._logprobs(prefix)
        options = {}
        for sym in range(257):
            if logp[sym] == -math.inf:
                continue
            ok = constraint.accepts(prefix) if sym == 256 else constraint.allows(prefix + bytes([sym]))
            if ok:
                options[sym] = math.exp(float(logp[sym]))
        z = sum(options.values())
        for sym, p in options.items():
            if sym == 256:
                out[prefix] = out.get(prefix, 0.0) + prob * p / z
            else:
                visit(prefix + bytes([sym]), prob * p / z)

    visit(b"", 1.0)
    return out


def tv(p, q):
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def kl(p, q):
    return sum(v * math.log(v / q[k]) for k, v in p.items() if v > 0)


@pytest.mark.parametrize("ess_threshold", [0.0, 0.5])
def test_smc_with_awrs_recovers_the_exact_posterior(toy_byte_lm, ess_threshold):
    constraint = RegexConstraint(PATTERN)
    exact, z = target(toy_byte_lm, constraint)
    result = smc(ByteSpace(toy_byte_lm), "", constraint, n_particles=2000, max_new_tokens=8,
                 ess_threshold=ess_threshold, generator=torch.Generator().manual_seed(0))
    assert all(p.finish in ("stop", "rejected") for p in result.particles)
    assert tv(result.posterior(), exact) < 0.08  # Monte Carlo: ~0.045 at 2000 particles, 0.014 at 20000
    assert result.log_evidence == pytest.approx(math.log(z), abs=0.1)
    if ess_threshold == 0.0:
        assert result.resamples == 0


def test_truncated_particles_are_reported_apart_from_the_posterior(toy_byte_lm):
    """With 3 steps a finished string has at most 2 bytes; particles still running after the
    third token are truncated: their weights check only the prefix, so the posterior and the
    evidence are those of accepted strings of at most 2 bytes."""
    constraint = RegexConstraint(PATTERN)
    strings = {s: p for s, p in toy_byte_lm.enumerate().items() if constraint.accepts(s) and len(s) <= 2}
    z = sum(strings.values())
    result = smc(ByteSpace(toy_byte_lm), "", constraint, n_particles=3000, max_new_tokens=3,
                 ess_threshold=0.0, generator=torch.Generator().manual_seed(0))
    truncated = result.truncated()
    assert truncated and all(len(s) == 3 and constraint.allows(s) for s in truncated)
    assert sum(truncated.values()) == pytest.approx(1.0)
    assert tv(result.posterior(), {s: p / z for s, p in strings.items()}) < 0.05
    assert result.log_evidence == pytest.approx(math.log(z), abs=0.05)


def test_tokens_counts_appended_tokens_once_despite_resampling(toy_byte_lm):
    """Resampled copies inherit their parent's tokens; ``tokens`` counts each sampled token
    once, i.e. one advance of a byte state each (forks of byte states are free), where the
    sum of the final particles' lengths (3 seeds of 4: 27, 28, 41) does not."""
    for seed in range(4):
        toy_byte_lm.calls = 0
        gen = AWRSDecoder(n_particles=16, ess_threshold=1.0).generate(
            toy_byte_lm, "", max_new_tokens=8, constraint=RegexConstraint(PATTERN), seed=seed)
        assert gen.counters["resamples"] > 0 and gen.counters["truncated"] == 0
        assert gen.counters["tokens"] == gen.counters["lm_calls"] - 1 == toy_byte_lm.calls - 1


def test_masking_without_weights_is_biased(toy_byte_lm):
    constraint = RegexConstraint(PATTERN)
    exact, _ = target(toy_byte_lm, constraint)
    lcd = lcd_exact(toy_byte_lm, constraint)
    bias = kl(exact, lcd)
    assert bias > 0.5  # measured: the a-branch gets 0.6 of LCD's mass but ~0.01 of the target's
    decoder = MaskingDecoder()
    samples: dict[bytes, float] = {}
    n = 1500
    for seed in range(n):
        gen = decoder.generate(toy_byte_lm, "", max_new_tokens=8, constraint=constraint, seed=seed)
        samples[gen.bytes] = samples.get(gen.bytes, 0.0) + 1 / n
    assert tv(samples, lcd) < 0.05  # the decoder really is LCD
    assert tv(samples, exact) > 0.4


def test_awrs_decoder_single_particle_weights_are_importance_weights(toy_byte_lm):
    """Self-normalised importance sampling with one-particle AWRS runs recovers the target."""
    constraint = RegexConstraint(PATTERN)
    exact, z = target(toy_byte_lm, constraint)
    decoder = AWRSDecoder()
    totals: dict[bytes, float] = {}
    weights = []
    for seed in range(1500):
        gen = decoder.generate(toy_byte_lm, "", max_new_tokens=8, constraint=constraint, seed=seed)
        w = math.exp(gen.log_weight)
        weights.append(w)
        if w > 0:
            assert constraint.accepts(gen.bytes) and gen.finish_reason == "stop"
        totals[gen.bytes] = totals.get(gen.bytes, 0.0) + w
    norm = sum(totals.values())
    assert tv({k: v / norm for k, v in totals.items()}, exact) < 0.08
    mean = sum(weights) / len(weights)
    stderr = float(torch.tensor(weights).std()) / math.sqrt(len(weights))
    assert abs(mean - z) < 4 * stderr


def test_unsatisfiable_constraint_ends_with_zero_weight(toy_byte_lm):
    constraint = RegexConstraint("x+")  # the toy LM never produces "x"
    for decoder in (AWRSDecoder(), AWRSDecoder(n_particles=4), MaskingDecoder()):
        gen = decoder.generate(toy_byte_lm, "", max_new_tokens=8, constraint=constraint, seed=0)
        assert gen.log_weight == -math.inf and gen.finish_reason == "rejected" and gen.bytes == b""


def test_counters_and_length_limit(toy_byte_lm):
    constraint = RegexConstraint("b[ab]*")
    gen = AWRSDecoder().generate(toy_byte_lm, "", max_new_tokens=2, constraint=constraint, seed=3)
    assert len(gen.ids) <= 2 and gen.counters["constraint_checks"] >= len(gen.ids)
    assert gen.counters["lm_calls"] == toy_byte_lm.calls
    assert constraint.allows(gen.bytes)


def test_awrs_over_tokensmith_byteprob(tiny_lm):
    """AWRS over 256 bytes + EOS of an exact byte-level LM derived from a token LM."""
    byteprob = pytest.importorskip("tokensmith_byteprob")
    blm = byteprob.ByteProbLM(tiny_lm)
    constraint = RegexConstraint(r"[a-z]{1,3}")
    gen = AWRSDecoder().generate(blm, "the ", max_new_tokens=4, constraint=constraint, seed=0)
    assert gen.log_weight > -math.inf and constraint.allows(gen.bytes)
    assert all(0 <= b < 256 for b in gen.ids) and bytes(gen.ids) == gen.bytes
    assert gen.counters["constraint_checks"] > 0
