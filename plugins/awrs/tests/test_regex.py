"""The regex constraint against Python's ``re`` and brute-force completion search."""

from __future__ import annotations

import itertools
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_awrs.regex import RegexConstraint, utf8_sequences

from tokensmith import ConfigError
from tokensmith.testing import ConstraintContract


class TestRegexContract(ConstraintContract):
    @pytest.fixture
    def constraint(self):
        return RegexConstraint(r"[a-z]+@[a-z]+\.(com|org)|é+\d{2}")

    @pytest.fixture
    def accepted(self):
        return [b"bob@example.com", b"a@b.org", "ééé42".encode()]

    @pytest.fixture
    def rejected(self):
        return [b"bob@example.net", b"", b"@a.com", "é4".encode(), b"\xc3"]


def test_prefix_cut_mid_character_is_allowed_when_it_can_complete():
    c = RegexConstraint("日本|é")
    assert c.allows("日".encode()[:1]) and c.allows("日".encode()[:2]) and c.allows(b"\xc3")
    assert not c.allows(b"\xc3\x28") and not c.allows("日".encode()[:1] + b"a")
    assert not c.allows("月".encode()[:2])  # same lead byte as 日, different second byte
    assert RegexConstraint(".").allows(b"\xf0\x9f") and not RegexConstraint(".").allows(b"\xff")


@settings(max_examples=200, deadline=None)
@given(lo=st.integers(0, 0x10FFFF), span=st.integers(0, 3000), probe=st.integers(0, 0x10FFFF))
def test_utf8_sequences_encode_exactly_the_range(lo, span, probe):
    hi = min(lo + span, 0x10FFFF)
    seqs = utf8_sequences(lo, hi)
    if 0xD800 <= probe <= 0xDFFF:
        return
    data = chr(probe).encode("utf-8")
    matched = any(len(s) == len(data) and all(a <= b <= z for (a, z), b in zip(s, data)) for s in seqs)
    assert matched == (lo <= probe <= hi)


PATTERNS = ["(ab|b)*a?", "a{2,3}(b|c)+", "[^a]b*", "(a|ab)(c|bcd)", r"\d+(\.\d+)?", "a*b?c{0,2}",
            "(?:ab)*|ba+", "[a-c]{1,2}[^b]?", ".b|c.", "(?s).a", "^a+$", "x|y|"]
ALPHABET = "abc1.\n"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_agrees_with_re_fullmatch_and_brute_force_completion(pattern):
    c = RegexConstraint(pattern)
    rx = re.compile(pattern)
    depth = 4
    strings = ["".join(t) for n in range(depth + 1) for t in itertools.product(ALPHABET, repeat=n)]
    matched = {s for s in strings if rx.fullmatch(s)}
    for s in strings:
        b = s.encode()
        assert c.accepts(b) == (s in matched), s
        # allowed iff some completion matches; every pattern here completes a prefix of
        # length <= 2 within 2 more characters, so the search up to `depth` is exhaustive
        if len(s) <= 2:
            assert c.allows(b) == any(m.startswith(s) for m in matched), s


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet="aé日b1 .", max_size=8))
def test_every_prefix_of_an_accepted_string_is_allowed(text):
    pattern = r"(a|é|日)+( \d)?|b.*"
    c = RegexConstraint(pattern)
    data = text.encode()
    assert c.accepts(data) == bool(re.fullmatch(pattern, text))
    if c.accepts(data):
        assert all(c.allows(data[:i]) for i in range(len(data) + 1))


def test_allowed_prefixes_complete_by_random_walk():
    """From any allowed prefix a walk over allowed bytes reaches an accepted string."""
    c = RegexConstraint(r"(\w+ ){1,2}\d\d")
    rng = random.Random(0)
    symbols = [bytes([b]) for b in b"ab 19"] + ["é".encode()[:1], "é".encode()[1:], "日".encode()]
    for _ in range(200):
        prefix = b""
        for _ in range(rng.randrange(6)):
            options = [s for s in symbols if c.allows(prefix + s)]
            prefix += rng.choice(options)
        frontier = {prefix}
        for _ in range(8):
            if any(c.accepts(p) for p in frontier):
                break
            frontier = {p + s for p in frontier for s in symbols if c.allows(p + s)}
        assert any(c.accepts(p) for p in frontier), prefix


@pytest.mark.parametrize("pattern", ["(a", r"(a)\1", "a(?=b)", r"a\bb", "(?i)abc", "a^b", "[z-a]"])
def test_invalid_or_unsupported_patterns_are_config_errors(pattern):
    with pytest.raises(ConfigError) as err:
        RegexConstraint(pattern)
    assert err.value.component == "constraint 'regex'"


def test_unicode_categories_match_re():
    c = RegexConstraint(r"\w\d\s")
    for text in ["a1 ", "é٣\u3000", "_9\t", "-1 ", "a1x"]:
        assert c.accepts(text.encode()) == bool(re.fullmatch(r"\w\d\s", text)), text
    ascii_c = RegexConstraint(r"(?a)\w")
    assert ascii_c.accepts(b"a") and not ascii_c.accepts("é".encode())


@pytest.mark.parametrize("pattern", [r"\d{2}-\d", r"(ab|cd)+e?", r"[a-c]*x", "é+|a"])
def test_can_occur_is_false_only_for_pieces_no_accepted_string_contains(pattern):
    """The a-priori pruning test: a piece that "cannot occur" is refused after every allowed
    prefix, and the alphabet contains every byte of an accepted string (brute force)."""
    constraint = RegexConstraint(pattern)
    symbols = sorted(set(pattern.encode()) | set(b"19-z") | set("é".encode()))
    pieces = [bytes(p) for n in range(1, 4) for p in itertools.product(symbols, repeat=n)]
    prefixes = [b""] + [bytes(p) for n in range(1, 4) for p in itertools.product(symbols, repeat=n)]
    prefixes = [p for p in prefixes if constraint.allows(p)]
    alphabet = constraint.byte_alphabet()
    for piece in pieces:
        if not constraint.can_occur(piece):
            assert not any(constraint.allows(p + piece) for p in prefixes), piece
        if constraint.accepts(piece):
            assert set(piece) <= alphabet and constraint.can_occur(piece)
