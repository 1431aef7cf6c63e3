"""SMC (tokensmith-awrs) under a constraint over the exact byte-level LM of an ensemble of two
models with different tokenizers (tokensmith-byteprob's ByteEnsemble): the particles' posterior
is the ensemble's own constrained posterior, computed here by enumerating the finite language,
even when the prompt ends inside a word (no token boundary to respect: nothing is biased there).
A composition of two plugins (examples/ensemble-smc runs it on SmolLM2): skipped without them."""

from __future__ import annotations

import math

import pytest

from tokensmith import BYTE_EOS

torch = pytest.importorskip("torch")
awrs_regex = pytest.importorskip("tokensmith_awrs.regex")
awrs_smc = pytest.importorskip("tokensmith_awrs.smc")
awrs_spaces = pytest.importorskip("tokensmith_awrs.spaces")
byteprob = pytest.importorskip("tokensmith_byteprob")
byteprob_ensemble = pytest.importorskip("tokensmith_byteprob.ensemble")
RegexConstraint, smc, ByteSpace = awrs_regex.RegexConstraint, awrs_smc.smc, awrs_spaces.ByteSpace

#: the prompt stops inside "over": a token-level model would have to respect a token boundary
#: the text does not have (the tiny models are random: a pattern whose strings they weigh
#: alike keeps the posterior far from degenerate)
PROMPT = "jumps ov"
PATTERN = "[ab]{1,2}"
LANGUAGE = [b"a", b"b", b"aa", b"ab", b"ba", b"bb"]


@pytest.fixture(scope="module")
def ensemble():
    from tokensmith import HFCausalLM, Runtime
    from tokensmith.testing import tiny_llama, tiny_tokenizer

    members = []
    for kind, seed in (("byte_level", 3), ("byte_fallback", 4)):
        tok = tiny_tokenizer(kind)
        model, _ = tiny_llama(tok, dtype="float64", seed=seed)
        lm = HFCausalLM(model, tok, Runtime(device="cpu", dtype="float64"), name=f"tiny-{kind}")
        members.append(byteprob.ByteProbLM(lm))
    assert members[0].lm.tokenizer.vocab() != members[1].lm.tokenizer.vocab()
    return byteprob_ensemble.ByteEnsemble(members, weights=[0.7, 0.3])


def _exact(lm, prompt: str, strings: list[bytes]) -> tuple[dict[bytes, float], float]:
    """The constrained posterior by enumeration: p(s) = prod p(byte | prompt, s[:i]) p(EOS | s)."""
    mass = {}
    for s in strings:
        state, logp = lm.start(prompt.encode()), 0.0
        for byte in s:
            logp += float(state.logprobs[byte])
            state = lm.advance(state, byte)
        mass[s] = math.exp(logp + float(state.logprobs[BYTE_EOS]))
    z = sum(mass.values())
    return {s: m / z for s, m in mass.items()}, z


def _tv(p, q):
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def test_the_ensemble_mixes_two_tokenizers_next_byte_distributions(ensemble):
    state = ensemble.start(PROMPT.encode())
    parts = [m.start(PROMPT.encode()) for m in ensemble.members]
    mixed = torch.logsumexp(torch.stack([parts[0].logprobs.double() + math.log(0.7),
                                         parts[1].logprobs.double() + math.log(0.3)]), 0)
    assert torch.allclose(state.logprobs.double(), mixed, atol=1e-12)
    assert not torch.allclose(parts[0].logprobs, parts[1].logprobs)  # two different models


def test_smc_over_the_ensemble_recovers_its_exact_constrained_posterior(ensemble):
    constraint = RegexConstraint(PATTERN)
    assert all(constraint.accepts(s) for s in LANGUAGE)
    exact, z = _exact(ensemble, PROMPT, LANGUAGE)
    assert 0.3 < exact[b"a"] < 0.7  # not degenerate
    result = smc(ByteSpace(ensemble), PROMPT, constraint, n_particles=2000, max_new_tokens=4,
                 generator=torch.Generator().manual_seed(1))
    posterior = result.posterior()
    assert set(posterior) <= set(LANGUAGE)  # every finished particle is in the language
    assert all(p.finish in ("stop", "rejected") for p in result.particles)
    # Monte Carlo with AWRS's random weights: 0.010-0.048 over seeds 0-2 at 2000 particles
    assert _tv(posterior, exact) < 0.1
    assert result.log_evidence == pytest.approx(math.log(z), abs=0.3)
