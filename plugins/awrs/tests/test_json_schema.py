"""The JSON Schema constraint against json.loads plus an independent reference validator."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_awrs.json_schema import JSONSchemaConstraint

from tokensmith import ConfigError
from tokensmith.testing import ConstraintContract

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": ["number", "null"]},
        "tags": {"type": "array", "items": {"enum": ["a", "b", "é"]}},
        "ok": {"type": "boolean"},
        "meta": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
SCHEMAS = [PERSON, {}, {"type": "array", "items": {"type": "object", "properties": {"x": {"const": 1}}}},
           {"enum": [1, 12, "x", None, True]}, {"type": "string"}]


def valid(value, schema) -> bool:
    """Reference validator for the supported subset (integers are Python ints, as json.dumps writes)."""
    if schema in (True, {}):
        return True
    kinds = {bool: "boolean", type(None): "null", str: "string", list: "array", dict: "object"}
    kind = kinds.get(type(value)) or ("integer" if isinstance(value, int) else "number")
    types = schema.get("type", ["object", "array", "string", "number", "integer", "boolean", "null"])
    types = [types] if isinstance(types, str) else types
    if kind not in types and not (kind == "integer" and "number" in types):
        return False
    if "enum" in schema and not any(type(v) is type(value) and v == value for v in schema["enum"]):
        return False
    if "const" in schema and not (type(schema["const"]) is type(value) and schema["const"] == value):
        return False
    if kind == "array":
        return all(valid(v, schema.get("items", True)) for v in value)
    if kind == "object":
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if not set(schema.get("required", [])) <= set(value):
            return False
        for k, v in value.items():
            sub = props.get(k, extra)
            if sub is False or not valid(v, sub):
                return False
    return True


class TestJSONSchemaContract(ConstraintContract):
    @pytest.fixture
    def constraint(self):
        return JSONSchemaConstraint(PERSON)

    @pytest.fixture
    def accepted(self):
        return [b'{"name": "Bob", "age": 31}', '{"age":-2,"name":"\\u00e9\\n","tags":["é"]}'.encode(),
                b'\n{ "name" : "", "age" : 0 , "score" : null, "ok": false, "meta": {"k": 1} }']

    @pytest.fixture
    def rejected(self):
        return [b'{"name": "Bob"}', b'{"name": "Bob", "age": 3.5}', b'{"name": "B", "age": 1, "x": 1}',
                b'{"name": "B", "age": 1, "name": "C"}', b'{"name": "B", "age": 01}', b"[]",
                b'{"name": "B", "age": 1,}', b'{"name": "\x01", "age": 1}', b'{"name": "\xc3", "age": 1}',
                b'{"name": "B", "age": 1} ']


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-50, 50) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["a", "b", "é", "x", "Bob", 'q"\\']),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "age", "score", "tags", "ok", "meta", "x", "k"]), inner,
                      max_size=4),
    max_leaves=8)


@settings(max_examples=150, deadline=None)  # every prefix of each document is checked as well
@given(value=json_values, schema_index=st.integers(0, len(SCHEMAS) - 1), indent=st.sampled_from([None, 1]),
       ascii_only=st.booleans())
def test_accepts_exactly_the_valid_documents(value, schema_index, indent, ascii_only):
    schema = SCHEMAS[schema_index]
    c = JSONSchemaConstraint(schema)
    # enum values and closed-object keys must be canonical (non-ASCII unescaped)
    canonical_only = ascii_only and any(ord(ch) > 127 for ch in json.dumps(value, ensure_ascii=False))
    doc = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    expected = valid(value, schema)
    if canonical_only and expected and not c.accepts(doc):
        return  # an escaped enum/key: outside this constraint's canonical-form rule, by design
    assert c.accepts(doc) == expected, doc
    if expected:
        assert all(c.allows(doc[:i]) for i in range(len(doc) + 1))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=12)
       | st.text(alphabet='{}[]":,1-.0etrunlfasé \\', max_size=14).map(str.encode))
def test_agrees_with_json_loads(data):
    c = JSONSchemaConstraint({})
    try:
        value, ok = json.loads(data.decode("utf-8")), True
    except (UnicodeDecodeError, json.JSONDecodeError):
        value, ok = None, False
    if c.accepts(data):
        assert ok and valid(value, {})
    elif ok:  # json.loads also takes NaN/Infinity, and whitespace after the value
        assert b"NaN" in data or b"Infinity" in data or data != data.rstrip(b" \t\n\r")


#: closers first, so a depth-first search finds short completions; letters of every key and enum value
SYMBOLS = [bytes([b]) for b in b'"}]1:,{[-.0e tnulrfasgmcokbx'] + ["é".encode()[:1], "é".encode()[1:]]


def complete(c, prefix: bytes, limit: int = 80) -> bytes | None:
    """Depth-first search over allowed bytes, visiting each automaton state once."""
    stack, seen = [prefix], set()
    while stack:
        p = stack.pop()
        if c.state_of(p) in seen:
            continue
        seen.add(c.state_of(p))
        if c.accepts(p):
            return p
        if len(p) - len(prefix) < limit:
            stack += [p + s for s in reversed(SYMBOLS) if c.allows(p + s)]
    return None


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_allowed_prefix_completes_to_a_valid_document(schema):
    """Random walks over allowed bytes; from each prefix a search must reach a document
    that json.loads parses and the reference validator accepts."""
    c = JSONSchemaConstraint(schema)
    rng = random.Random(0)
    for _ in range(60):
        prefix = b""
        for _ in range(rng.randrange(16)):
            options = [s for s in SYMBOLS if c.allows(prefix + s)]
            assert options or c.accepts(prefix), prefix
            if not options:
                break
            prefix += rng.choice(options)
        found = complete(c, prefix)
        assert found is not None, prefix
        assert valid(json.loads(found.decode()), schema), found


@pytest.mark.parametrize("schema,match", [
    ({"type": "string", "pattern": "a+"}, "unsupported keyword"),
    ({"type": "strin"}, "bad type"),
    ({"enum": [[1]]}, "arrays or objects"),
    ({"type": "integer", "enum": ["a"]}, "nothing can satisfy"),
    ({"properties": {"a": {}}, "required": ["b"], "additionalProperties": False}, "required keys"),
    ("{not json", "not valid JSON"),
])
def test_unsupported_or_invalid_schemas_are_config_errors(schema, match):
    with pytest.raises(ConfigError, match=match) as err:
        JSONSchemaConstraint(schema)
    assert err.value.component == "constraint 'json-schema'"


def test_closed_object_refuses_a_comma_when_no_key_is_left():
    c = JSONSchemaConstraint({"properties": {"a": {}}, "additionalProperties": False})
    assert c.allows(b'{"a": 1') and not c.allows(b'{"a": 1,')
