"""The llguidance-backed constraints (lark, llg-json-schema, llg-regex): exact against brute force,
the token-mask fast path equal to the byte checks, both decoders, and the SMC posterior.

They need the optional extra (``tokensmith-awrs[llguidance]``); ``tox -e llguidance`` runs this
file with it. Without llguidance every test here but the last skips, saying so."""

from __future__ import annotations

import itertools
import math
import sys

import pytest
import torch
from tokensmith_awrs.decoders import AWRSDecoder, MaskingDecoder
from tokensmith_awrs.grammars import LarkConstraint, LLGJSONSchemaConstraint, LLGRegexConstraint, available
from tokensmith_awrs.smc import smc
from tokensmith_awrs.spaces import ByteSpace, TokenSpace

from tokensmith import ConfigError
from tokensmith.testing import ConstraintContract

needs_llguidance = pytest.mark.skipif(
    not available(), reason="llguidance is not installed (optional: pip install "
                            "'tokensmith-awrs[llguidance]'; tox -e llguidance runs these tests)")

#: a finite language, small enough to enumerate every string over its alphabet
GRAMMAR = 'start: "ab" | "a" DIGIT | "ba" DIGIT?\nDIGIT: /[0-9]/'
LANGUAGE = {b"ab", b"ba"} | {b"a" + d for d in (b"0", b"5", b"9")} | {b"ba" + d for d in (b"0", b"5", b"9")}


@needs_llguidance
class TestLarkContract(ConstraintContract):
    @pytest.fixture
    def constraint(self):
        return LarkConstraint(grammar=GRAMMAR)

    @pytest.fixture
    def accepted(self):
        return sorted(LANGUAGE)

    @pytest.fixture
    def rejected(self):
        return [b"", b"a", b"abc", b"b9", b"ba55", b"x"]


@needs_llguidance
def test_lark_agrees_with_brute_force():
    """Over every string of at most 4 bytes from the grammar's alphabet (and one byte outside
    it), accepts is membership and allows is "some word of the language starts with it"."""
    words = {b"ab", b"ba"} | {b"a" + bytes([d]) for d in b"0123456789"} \
        | {b"ba" + bytes([d]) for d in b"0123456789"}
    constraint = LarkConstraint(grammar=GRAMMAR)
    for n in range(5):
        for chars in itertools.product(b"ab05x", repeat=n):
            s = bytes(chars)
            assert constraint.accepts(s) == (s in words), s
            assert constraint.allows(s) == any(w.startswith(s) for w in words), s
            assert constraint.allows_after(s[:1], s[1:]) == constraint.allows(s)


@needs_llguidance
def test_utf8_cut_inside_a_character_is_allowed_when_it_completes():
    constraint = LarkConstraint(grammar='start: "é" "a"+')
    assert constraint.allows("é".encode()[:1]) and not constraint.allows(b"\xc3\xa8")
    assert constraint.accepts("éaa".encode()) and not constraint.accepts("é".encode())


@needs_llguidance
def test_full_json_schema_keywords_the_subset_refuses():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 5},
                                               "tag": {"anyOf": [{"const": "x"}, {"type": "null"}]}},
              "required": ["n"], "additionalProperties": False}
    constraint = LLGJSONSchemaConstraint(schema=schema)
    assert constraint.accepts(b'{"n":4}') and constraint.accepts(b'{"n":5,"tag":null}')
    assert not constraint.accepts(b'{"n":2}') and not constraint.accepts(b'{"n":4,"tag":"y"}')
    assert LLGJSONSchemaConstraint(schema=schema, whitespace_flexible=True).accepts(b'{ "n": 4 }')
    with pytest.raises(ConfigError, match="minimum"):  # this plugin's own subset refuses the keyword
        from tokensmith_awrs.json_schema import JSONSchemaConstraint
        JSONSchemaConstraint(schema)


@needs_llguidance
def test_llg_regex_matches_the_whole_text():
    constraint = LLGRegexConstraint(pattern=r"\d{4}-\d{2}")
    assert constraint.allows(b"1969-0") and constraint.accepts(b"1969-07")
    assert not constraint.allows(b"1969-07-") and not constraint.accepts(b"1969")


@needs_llguidance
@pytest.mark.parametrize("make", [lambda: LarkConstraint(grammar="start: foo"),
                                  lambda: LLGRegexConstraint(pattern="["),
                                  lambda: LLGJSONSchemaConstraint(schema="{not json")])
def test_a_bad_grammar_is_a_config_error_naming_the_component(make):
    with pytest.raises(ConfigError, match="constraint 'l"):
        make()


@needs_llguidance
def test_registry_builds_them_and_refuses_bad_ones(installed_registry):
    built = installed_registry.build("constraint", {"type": "lark", "grammar": GRAMMAR})
    assert isinstance(built, LarkConstraint) and built.accepts(b"ab")
    with pytest.raises(ConfigError):
        installed_registry.build("constraint", {"type": "lark", "grammar": ""})


@needs_llguidance
def test_token_mask_equals_the_byte_checks_on_every_token(tiny_lm):
    """The fast path (one llguidance mask per step over the LM's vocabulary) answers exactly
    what the byte matcher answers for prefix + each token's bytes, along several prefixes."""
    constraint = LarkConstraint(grammar='start: WORD (" " WORD)*\nWORD: /[a-z]+/')
    space = TokenSpace(tiny_lm)
    masker = space.masker(constraint)
    tok = tiny_lm.tokenizer
    for text in ("", "the", "the cat", "a b"):
        ids = list(tok.encode(text).ids)
        prefix = b"".join(space.pieces[i] for i in ids)
        assert prefix == text.encode()
        mask = masker.mask(ids)
        for x, piece in enumerate(space.pieces):
            if x in space.stops or not piece:
                assert not mask[x]
            else:
                assert bool(mask[x]) == constraint.allows_after(prefix, piece), (text, piece)


@needs_llguidance
@pytest.mark.parametrize("decoder", [AWRSDecoder(), AWRSDecoder(n_particles=3), MaskingDecoder()])
def test_decoders_honour_a_lark_grammar_through_masks(tiny_lm, decoder):
    constraint = LarkConstraint(grammar='start: WORD (" " WORD)*\nWORD: /[a-z]+/')
    for seed in range(2):
        constraint.reset_counters()
        gen = decoder.generate(tiny_lm, "x", max_new_tokens=6, constraint=constraint, seed=seed)
        assert constraint.allows(gen.bytes)
        if gen.finish_reason == "stop":
            assert constraint.accepts(gen.bytes)
        assert gen.counters["token_masks"] >= 1 and gen.counters["constraint_checks"] >= 1
    if isinstance(decoder, MaskingDecoder):
        # one mask answers every candidate: counted as one check per candidate token
        assert gen.counters["constraint_checks"] >= tiny_lm.tokenizer.vocab_size - 10


@needs_llguidance
def test_smc_over_a_lark_grammar_recovers_the_exact_posterior(toy_byte_lm):
    """The byte matcher path under SMC, against enumeration (the regex test's target, as Lark)."""
    constraint = LarkConstraint(grammar='start: "ac" | /b[ab]*/')
    strings = toy_byte_lm.enumerate()
    mass = {s: p for s, p in strings.items() if constraint.accepts(s)}
    z = sum(mass.values())
    result = smc(ByteSpace(toy_byte_lm), ">", constraint, n_particles=500, max_new_tokens=8,
                 generator=torch.Generator().manual_seed(0))
    post = result.posterior()
    tv = 0.5 * sum(abs(post.get(k, 0.0) - mass.get(k, 0.0) / z) for k in set(post) | set(mass))
    assert tv < 0.12  # Monte Carlo at 500 particles
    assert result.log_evidence == pytest.approx(math.log(z), abs=0.15)


def test_without_llguidance_the_constraints_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "llguidance", None)  # makes `import llguidance` fail
    with pytest.raises(ConfigError, match="llguidance is not installed") as err:
        LarkConstraint(grammar=GRAMMAR)
    assert "tokensmith-awrs[llguidance]" in str(err.value)
    assert not available()
