"""Bounded resources and satisfiability (issue 8, items 12-14 and 16): automaton size, schema
depth, empty and unproducible languages, non-JSON numbers, particles, the automaton memo."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import tempfile
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_awrs.decoders import MAX_PARTICLES, AWRSDecoder, MaskingDecoder
from tokensmith_awrs.json_schema import MAX_DEPTH, MAX_DEPTH_CEILING, JSONSchemaConstraint
from tokensmith_awrs.python_syntax import PythonConstraint
from tokensmith_awrs.regex import MAX_STATES, RegexConstraint, compile_nfa, measure_pattern

from tokensmith import (
    BuildContext,
    ConfigError,
    HFCausalLM,
    IncompatibleComponentsError,
    PipelineSpec,
    ResourceLimitError,
    Runtime,
)
from tokensmith.testing import tiny_llama, tiny_tokenizer

NESTED = "((a{1000}){1000}){1000}"


@pytest.fixture
def registry(make_registry):
    import tokensmith_awrs.plugin as plugin

    return make_registry(plugin)


def nested_items(depth: int) -> dict:
    schema: dict = {}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


# -- item 12: the automaton's size and the schema's depth are bounded ---------------------

def test_nested_repeats_are_refused_before_memory_is_spent():
    """The issue's pattern (a billion NFA states, > 8 GB before) is refused — built directly, by
    the validator, and when a pipeline is validated — in a process that may use 1.5 GB of
    address space: the states are counted before anything is allocated."""
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
        import tokensmith_awrs.plugin as plugin
        from tokensmith import PipelineSpec, Registry, ResourceLimitError
        from tokensmith_awrs.regex import RegexConstraint, _compiles
        try:
            RegexConstraint({NESTED!r})
        except ResourceLimitError as exc:
            print(exc.message)
        try:
            _compiles(None, None, {NESTED!r})
        except ValueError as exc:
            print(exc)
        registry = Registry.from_environment(plugins=(plugin,), entry_points=False, env={{}})
        spec = PipelineSpec(model="tiny-llama", decoder="awrs",
                            constraint={{"type": "regex", "pattern": {NESTED!r}}})
        for problem in registry.validate(spec):
            print(type(problem).__name__, problem.component, "|", str(problem).replace("\\n", " "))
    """)
    # cwd: not the source tree, whose tokensmith/ folder would shadow the installed package
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=tempfile.gettempdir())
    assert run.returncode == 0, run.stderr[-2000:]
    direct, validator, validated = run.stdout.strip().split("\n")
    assert "1,001,001,002 states" in direct and "max_states=100,000" in direct
    assert "1,001,001,002 states" in validator and "max_states" in validator
    assert validated.startswith("ConfigError constraint 'regex' |")
    assert "parameter 'pattern'" in validated and "1,001,001,002 states" in validated


def test_max_states_is_the_bound_and_can_be_raised():
    pattern = "(a{100}){20}"  # 20 x 101 + 1 + 1 states
    states, _ = measure_pattern(pattern)
    with pytest.raises(ResourceLimitError, match="max_states=2,000") as err:
        RegexConstraint(pattern, max_states=2000)
    assert err.value.component == "constraint 'regex'" and "raise max_states" in err.value.hint
    c = RegexConstraint(pattern, max_states=states)
    assert c.accepts(b"a" * 2000) and not c.accepts(b"a" * 1999) and len(c._edges) == states
    assert RegexConstraint("a{5000}").accepts(b"a" * 5000)  # a single large repeat is fine now
    with pytest.raises(ResourceLimitError):
        RegexConstraint("a", max_states=10**9)
    assert MAX_STATES == RegexConstraint("a").max_states


def test_max_states_through_the_registry(registry):
    with pytest.raises(ConfigError, match="parameter 'max_states'"):
        registry.build("constraint", {"type": "regex", "pattern": "a", "max_states": 0})
    # the configured bound is checked with the pattern at validation (check_parameters)
    with pytest.raises(ConfigError, match="max_states=100"):
        registry.build("constraint", {"type": "regex", "pattern": "a{200}", "max_states": 100})
    spec = PipelineSpec(model="tiny-llama", decoder="awrs",
                        constraint={"type": "regex", "pattern": "a{200}", "max_states": 100})
    assert any("max_states=100" in str(p) for p in registry.validate(spec))
    assert registry.build("constraint", {"type": "regex", "pattern": "a{200}", "max_states": 300}).accepts(
        b"a" * 200)


def _nested_pattern(counts: list[tuple[int, int | None]]) -> tuple[str, int, int | None]:
    """``(((a{lo,hi}){lo,hi})...)``, and the shortest and longest match (None: unbounded)."""
    pattern, shortest, longest = "a", 1, 1
    for lo, hi in counts:
        pattern = f"({pattern}){{{lo},{'' if hi is None else hi}}}"
        shortest *= lo
        longest = None if hi is None or longest is None else longest * hi
    return pattern, shortest, longest


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40) | st.none()), min_size=1, max_size=4),
       max_states=st.integers(50, 3000))
def test_nested_repeats_build_within_the_bound_or_are_refused(counts, max_states):
    counts = [(min(lo, hi if hi is not None else lo), hi) for lo, hi in counts]
    pattern, shortest, longest = _nested_pattern(counts)
    needed, _ = measure_pattern(pattern)  # exact: test_the_size_is_counted_exactly_before_building
    try:
        c = RegexConstraint(pattern, max_states=max_states)
    except ResourceLimitError as exc:
        assert needed > max_states and "max_states" in exc.message
        if needed <= 20_000:
            assert len(compile_nfa(pattern, max_states=needed)[0].edges) > max_states
        return
    assert len(c._edges) <= max_states
    assert c.accepts(b"a" * shortest)
    if longest is not None:
        assert c.accepts(b"a" * longest) and not c.accepts(b"a" * (longest + 1))


#: (pattern, a string it matches or None when its language is empty), built side by side
_atoms = st.sampled_from([("a", "a"), ("b", "b"), ("[ab]", "b"), (".", "x"), (r"\d", "7"), ("é", "é"),
                          ("日", "日"), (r"[^\s\S]", None), (r"[\ud800-\udfff]", None), (r"[^\d\D]", None)])


def _concat(parts):
    (p, x), (q, y) = parts
    return p + q, (x + y if x is not None and y is not None else None)


def _either(parts):
    (p, x), (q, y) = parts
    return f"(?:{p}|{q})", (x if x is not None else y)


def _repeat(args):
    (p, x), lo, extra = args
    return f"(?:{p}){{{lo},{lo + extra}}}", ("" if lo == 0 else None if x is None else x * lo)


_regexes = st.recursive(_atoms, lambda inner: st.one_of(
    st.tuples(inner, inner).map(_concat), st.tuples(inner, inner).map(_either),
    st.tuples(inner, st.integers(0, 3), st.integers(0, 2)).map(_repeat),
    inner.map(lambda t: (f"(?:{t[0]})*", ""))), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(case=_regexes)
def test_an_empty_language_is_refused_and_a_nonempty_one_is_kept(case):
    pattern, witness = case
    if witness is None:
        with pytest.raises(ConfigError, match="matches no string"):
            RegexConstraint(pattern)
        return
    assert re.fullmatch(pattern, witness)
    assert RegexConstraint(pattern).accepts(witness.encode())


@settings(max_examples=150, deadline=None)
@given(case=_regexes)
def test_the_size_is_counted_exactly_before_building(case):
    """The bound is checked on a count computed from the parse tree; it is the exact number of
    states the construction then allocates, and its emptiness verdict is the NFA's."""
    pattern, witness = case
    states, nonempty = measure_pattern(pattern)
    assert nonempty == (witness is not None)
    if not nonempty:
        return
    nfa, start, accept = compile_nfa(pattern, max_states=states)
    assert len(nfa.edges) == states and start in nfa.co_reachable(accept)
    with pytest.raises(ResourceLimitError):
        compile_nfa(pattern, max_states=states - 1)


def test_a_deep_schema_is_a_typed_error():
    deep = nested_items(3000)
    with pytest.raises(ResourceLimitError, match=f"max_depth={MAX_DEPTH}") as err:
        JSONSchemaConstraint(deep)
    assert err.value.component == "constraint 'json-schema'"
    with pytest.raises(ResourceLimitError, match="deeper than"):
        JSONSchemaConstraint('{"items": ' * 3000 + "{}" + "}" * 3000)
    with pytest.raises(ResourceLimitError):  # json's own parser would recurse past Python's limit
        JSONSchemaConstraint("[" * 100_000 + "]" * 100_000)


def test_a_deep_schema_is_a_config_error_at_validation(registry):
    spec = PipelineSpec(model="tiny-llama", decoder="awrs",
                        constraint={"type": "json-schema", "schema": nested_items(3000)})
    problems = registry.validate(spec)
    assert len(problems) == 1 and isinstance(problems[0], ConfigError)
    assert "parameter 'schema'" in str(problems[0]) and "max_depth" in str(problems[0])


@settings(max_examples=60, deadline=None)
@given(depth=st.integers(1, 150), max_depth=st.integers(1, MAX_DEPTH_CEILING))
def test_schema_depth_builds_within_the_bound_or_is_refused(depth, max_depth):
    schema = nested_items(depth)  # `depth` arrays around {}: the document nests depth + 1 levels
    try:
        c = JSONSchemaConstraint(schema, max_depth=max_depth)
    except ResourceLimitError as exc:
        assert depth + 1 > max_depth and "max_depth" in exc.message
        return
    assert depth + 1 <= max_depth
    assert c.accepts(("[" * depth + "]" * depth).encode()) and not c.accepts(b"{}")


def test_max_depth_bounds(registry):
    with pytest.raises(ResourceLimitError):
        JSONSchemaConstraint({}, max_depth=MAX_DEPTH_CEILING + 1)
    with pytest.raises(ConfigError, match="parameter 'max_depth'"):
        registry.build("constraint", {"type": "json-schema", "schema": {}, "max_depth": 0})
    deepest = JSONSchemaConstraint(nested_items(MAX_DEPTH_CEILING - 1), max_depth=MAX_DEPTH_CEILING)
    assert deepest.allows(b"[[")


# -- item 13: unsatisfiable patterns are refused --------------------------------------

@pytest.mark.parametrize("pattern", [r"[^\s\S]", r"a[^\s\S]b", r"(?:[^\s\S]|[^\d\D])+", "[\\ud800-\\udfff]"])
def test_an_empty_language_is_refused(registry, pattern):
    with pytest.raises(ConfigError, match="matches no string"):
        RegexConstraint(pattern)
    problems = registry.validate(PipelineSpec(model="tiny-llama", decoder="awrs",
                                              constraint={"type": "regex", "pattern": pattern}))
    assert len(problems) == 1 and "parameter 'pattern'" in str(problems[0])
    assert "matches no string" in str(problems[0])


def test_empty_parts_are_fine_when_something_else_matches():
    c = RegexConstraint(r"[^\s\S]|ok|x[^\s\S]*")
    assert c.accepts(b"ok") and c.accepts(b"x") and not c.allows(b"y")


def test_every_byte_is_producible_with_the_tiny_tokenizer(tiny_tokenizer, registry):
    ctx = BuildContext(Runtime(device="cpu"), tokenizer=tiny_tokenizer)
    assert not tiny_tokenizer.unrepresentable_bytes
    assert RegexConstraint(r"\x04+", ctx=ctx).accepts(b"\x04\x04")
    assert registry.build("constraint", {"type": "regex", "pattern": r"\x04+"}, ctx).accepts(b"\x04")


@pytest.mark.smollm2
def test_bytes_smollm2_cannot_produce(smollm2, registry):
    tokenizer = smollm2[1]
    ctx = BuildContext(Runtime(device="cpu"), tokenizer=tokenizer)
    assert 0x04 in tokenizer.unrepresentable_bytes
    with pytest.raises(IncompatibleComponentsError, match="bytes 04, and no token") as err:
        RegexConstraint(r"\x04+", ctx=ctx)
    assert err.value.component == "constraint 'regex'" and "smollm2" in err.value.message
    with pytest.raises(IncompatibleComponentsError, match="04") as err:
        registry.build("constraint", {"type": "regex", "pattern": r"\x04+"}, ctx)
    assert err.value.plugin is not None  # the registry names the plugin
    # a pattern that can still be produced keeps only what the vocabulary can spell
    c = RegexConstraint(r"\x04|ok", ctx=ctx)
    assert c.accepts(b"ok") and not c.allows(b"\x04")
    assert RegexConstraint(r"\x04|ok").allows(b"\x04")  # without the tokenizer, as re says


@pytest.mark.smollm2
@settings(max_examples=40, deadline=None)
@given(chars=st.sets(st.integers(0, 0x7F), min_size=1, max_size=6))
def test_a_class_is_refused_iff_smollm2_has_none_of_its_bytes(smollm2, chars):
    tokenizer = smollm2[1]
    ctx = BuildContext(Runtime(device="cpu"), tokenizer=tokenizer)
    pattern = "[" + "".join(f"\\x{c:02x}" for c in sorted(chars)) + "]+"
    missing = chars <= tokenizer.unrepresentable_bytes
    try:
        c = RegexConstraint(pattern, ctx=ctx)
    except IncompatibleComponentsError as exc:
        named = re.search(r"bytes ([0-9a-f ]+), and no token", exc.message).group(1).split()
        assert missing and sorted(int(h, 16) for h in named) == sorted(chars)
        return
    assert not missing
    for b in chars:
        assert c.accepts(bytes([b])) == (b not in tokenizer.unrepresentable_bytes)


# -- item 14: NaN and Infinity are not JSON ----------------------------------------

@pytest.mark.parametrize("schema", [{"const": 1e400}, {"enum": [math.nan]}, {"enum": [1, math.inf]},
                                    {"const": -math.inf}, '{"enum": [NaN]}', '{"const": Infinity}',
                                    '{"const": -Infinity}', '{"const": 1e400}',
                                    {"type": "object", "properties": {"x": {"enum": [math.nan, 1.5]}}}])
def test_non_finite_numbers_are_refused(registry, schema):
    with pytest.raises(ConfigError, match="not JSON"):
        JSONSchemaConstraint(schema)
    with pytest.raises(ConfigError, match="parameter 'schema'.*not JSON"):
        registry.build("constraint", {"type": "json-schema", "schema": schema})


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats() | st.integers(-5, 5), min_size=1, max_size=4))
def test_enum_numbers_are_json_or_refused(values):
    finite = all(math.isfinite(v) for v in values)
    try:
        c = JSONSchemaConstraint({"enum": values})
    except ConfigError:
        assert not finite
        return
    assert finite
    for v in values:
        text = json.dumps(v)
        assert c.accepts(text.encode()) and math.isfinite(json.loads(text))
    for word in (b"NaN", b"Infinity", b"-Infinity"):
        assert not c.allows(word)


@pytest.mark.parametrize("schema", [{}, {"type": "number"}, {"type": "array", "items": {"type": "number"}}])
def test_generated_numbers_are_never_nan_or_infinity(schema):
    c = JSONSchemaConstraint(schema)
    prefix = b"[" if "items" in schema else b""
    for word in (b"NaN", b"Infinity", b"-Infinity", b"N", b"I", b"-I"):
        assert not c.allows(prefix + word)


# -- item 15: a byte LM whose token context is full ends the particle ----------------------

@pytest.mark.cross_plugin
def test_awrs_over_a_byte_lm_stops_at_its_context():
    """The byte LM's ContextLengthError ends a particle with finish "length", as the token
    space's full context does, instead of escaping the decoder."""
    byteprob = pytest.importorskip("tokensmith_byteprob")
    tokenizer = tiny_tokenizer("byte_level")
    model, _ = tiny_llama(tokenizer, context=16)
    blm = byteprob.ByteProbLM(HFCausalLM(model, tokenizer, Runtime(device="cpu")))
    constraint = RegexConstraint("[a-z ]{200}")  # never complete within 16 tokens
    gen = AWRSDecoder(n_particles=2).generate(blm, "ab", max_new_tokens=100, constraint=constraint, seed=0)
    assert gen.finish_reason == "length" and gen.counters["truncated"] == 2
    assert 0 < len(gen.bytes) < 100 and constraint.allows(gen.bytes)


# -- item 16: particles and the automaton memo are bounded ---------------------------

@pytest.mark.parametrize("decoder", [AWRSDecoder, MaskingDecoder])
def test_particles_are_bounded(registry, decoder):
    assert decoder(n_particles=MAX_PARTICLES).n_particles == MAX_PARTICLES
    with pytest.raises(ResourceLimitError, match=f"more than {MAX_PARTICLES}") as err:
        decoder(n_particles=MAX_PARTICLES + 1)
    assert err.value.component == f"decoder '{decoder.name}'"
    with pytest.raises(ConfigError, match="parameter 'n_particles'.*4096"):
        registry.build("decoder", {"type": decoder.name, "n_particles": 10**9})


class TinyMemoRegex(RegexConstraint):
    memo_budget = 40


class TinyMemoJSON(JSONSchemaConstraint):
    memo_budget = 40


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(alphabet="ab01", max_size=12), min_size=1, max_size=30))
def test_the_regex_memo_stays_bounded_and_answers_alike(texts):
    # (a|b)*a(a|b){6} determinises into 2^7 states: the memo would keep every one it meets
    pattern = "[ab01]*a[ab]{6}"
    bounded, free = TinyMemoRegex(pattern), RegexConstraint(pattern)
    for text in texts:
        data = text.encode()
        for i in range(len(data) + 1):
            assert bounded.allows(data[:i]) == free.allows(data[:i])
            assert bounded.allows_after(data[:i], data[i:]) == free.allows(data)
        assert bounded.accepts(data) == bool(re.fullmatch(pattern, text))
        # rebuilt at the next lookup once over budget: a lookup then walks len(data) bytes, each
        # adding a transition and at most one key of at most every NFA state
        assert bounded._memo_used <= TinyMemoRegex.memo_budget + (len(data) + 1) * (1 + len(bounded._edges))


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.sampled_from(['{"a": [1, 2', '{"a": [1, 2]}', '[[[]]]', '[[[', '{"b": {"c": nul',
                                       '{"b": {"c": null}}', '"x\\u00e9"', '[1e5, -0.5]', "tru"]),
                      min_size=1, max_size=20))
def test_the_json_memo_stays_bounded_and_answers_alike(texts):
    bounded, free = TinyMemoJSON({}), JSONSchemaConstraint({})
    for text in texts:
        data = text.encode()
        for i in range(len(data) + 1):
            assert bounded.allows_after(data[:i], data[i:]) == free.allows(data)
        assert bounded.accepts(data) == free.accepts(data) == _is_json(text)
        # a key is a stack, at most one frame per byte read plus two
        assert bounded._memo_used <= TinyMemoJSON.memo_budget + (len(data) + 1) * (len(data) + 3)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return not text[-1:].isspace()


class SmallCacheRegex(RegexConstraint):
    _cache_bytes = 64


class SmallCachePython(PythonConstraint):
    _cache_bytes = 64


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(0, 100), min_size=1, max_size=20))
def test_prefix_caches_hold_a_bounded_number_of_bytes(lengths):
    """The prefix caches are keyed by the text so far, which grows with the generation: they
    are bounded in bytes as well as in entries."""
    regex, python = SmallCacheRegex("a*"), SmallCachePython()
    for n in lengths:
        assert regex.allows(b"a" * n) and python.allows(b"x=1\n" * (n // 4))
        assert regex._prefix_bytes <= max(64, n)
        assert python._witness_bytes <= max(64, 4 * (n // 4))


@pytest.mark.parametrize("source", [b"1+" * 3000 + b"1", b"-" * 6000 + b"1", b"x" + b".y" * 3000])
def test_python_too_deep_for_cpython_is_refused_not_raised(source):
    """CPython's parser raises RecursionError/MemoryError on such nesting: it does not accept it."""
    c = PythonConstraint()
    assert not c.accepts(source) and not c.allows(source)
    assert c.accepts(b"1+" * 100 + b"1") and c.allows(b"-" * 100)  # shallow nesting still parses


def test_max_depth_is_checked_with_the_schema_at_validation(registry):
    deep = {"type": "array", "items": {"type": "array", "items": {"type": "array", "items": {}}}}
    spec = PipelineSpec(model="tiny-llama", decoder="awrs",
                        constraint={"type": "json-schema", "schema": deep, "max_depth": 2})
    assert any("max_depth=2" in str(p) for p in registry.validate(spec))
    ok = PipelineSpec(model="tiny-llama", decoder="awrs",
                      constraint={"type": "json-schema", "schema": deep, "max_depth": 8})
    assert registry.validate(ok) == []
