"""JSON Schema constraint: schema-aware prefix validity of a JSON document, byte by byte.

Constraint for AWRS (Lipkin et al., arXiv 2504.05410). The schema is compiled
into a table of nodes; the document is read by a pushdown automaton whose
state (a tuple of frames, top last) is interned as an ``int``, so a check
walks only the candidate's bytes from the cached prefix state. Every live
state can be completed to a valid document (unsatisfiable sub-schemas are
refused when the schema is compiled, ``,`` is refused when no further key
may follow), so ``allows`` is exact.

Supported keywords: ``type`` (one or a list of object, array, string, number,
integer, boolean, null), ``enum``, ``const`` (strings, numbers, booleans,
null), ``properties``, ``required``, ``additionalProperties`` (true, false or
a schema), ``items`` (one schema); annotations (``title``, ``description``,
``$schema``, ``$id``, ``default``, ``examples``, ``$comment``) are ignored.
Anything else raises :class:`~tokensmith.ConfigError`.

What "valid" means here, precisely: RFC 8259 JSON (UTF-8, insignificant
whitespace allowed except after the top-level value, so that a complete
document leaves the sampler only EOS) that validates against the schema, with
three choices a byte-level checker must make: duplicate keys are refused; ``integer`` values
are written without fraction or exponent; ``enum``/``const`` values and the
keys of objects with ``additionalProperties: false`` are written in their
canonical form ``json.dumps(value, ensure_ascii=False)``.

Not JSON, so refused when the schema is compiled: ``NaN``/``Infinity`` (in the
schema's JSON text, or an ``enum``/``const`` value that is not a finite number,
e.g. ``1e400``); a generated document can therefore never contain them. A
schema nested deeper than ``max_depth`` objects/arrays is a
:class:`~tokensmith.ResourceLimitError` (the compiler recurses per level).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, Any

import attrs

from tokensmith import ConfigError, ResourceLimitError

from .incremental import IncrementalConstraint

_COMPONENT = "constraint 'json-schema'"
#: default bound on the schema's nesting (objects and arrays of the schema document)
MAX_DEPTH = 64
#: the largest ``max_depth`` accepted: the compiler recurses once per sub-schema level
MAX_DEPTH_CEILING = 256
TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_ANNOTATIONS = frozenset({"title", "description", "$schema", "$id", "default", "examples", "$comment"})
_KEYWORDS = frozenset({"type", "enum", "const", "properties", "required", "additionalProperties",
                       "items"}) | _ANNOTATIONS
WS = frozenset(b" \t\n\r")
DIGITS = frozenset(b"0123456789")
HEX = frozenset(b"0123456789abcdefABCDEF")
ANY = 0  # node id of the empty schema {}


def _error(message: str, where: str) -> ConfigError:
    return ConfigError(f"schema at {where}: {message}", component=_COMPONENT)


@attrs.frozen
class Node:
    types: frozenset[str]
    enum: frozenset[bytes] | None = None
    properties: Mapping[str, int] = attrs.field(factory=dict)
    required: frozenset[str] = frozenset()
    additional: int | None = ANY  # None: no further keys
    items: int = ANY


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "compound"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def schema_depth(schema: Any, limit: int) -> int:
    """How deep objects and arrays nest in ``schema`` (a scalar is 0, ``{}`` is 1), counted
    without recursion and only up to ``limit + 1``."""
    deepest, todo = 0, [(schema, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, (Mapping, list, tuple)):
            deepest = max(deepest, depth)
            if depth > limit:
                break
            todo += [(v, depth + 1) for v in (value.values() if isinstance(value, Mapping) else value)]
    return deepest


def _too_deep(limit: int, *, ceiling: bool) -> ResourceLimitError:
    bound = f"the most max_depth allows ({limit})" if ceiling else f"max_depth={limit}"
    hint = "every object or array of the schema document is one level (a property's schema is two " \
           "below its object's)"
    hint += "; flatten the schema" if ceiling else \
        f"; flatten the schema or raise max_depth (at most {MAX_DEPTH_CEILING})"
    return ResourceLimitError(f"the schema nests objects/arrays deeper than {bound}", component=_COMPONENT,
                              hint=hint)


def compile_schema(schema: Any, max_depth: int = MAX_DEPTH) -> list[Node]:
    """Nodes of ``schema`` (node 0 is the empty schema, node 1 the root); a schema nested
    deeper than ``max_depth`` is refused before it is walked."""
    if schema_depth(schema, max_depth) > max_depth:
        raise _too_deep(max_depth, ceiling=False)
    nodes: list[Node] = [Node(TYPES)]

    def build(s: Any, where: str) -> int:
        if s is True or s == {}:
            return ANY
        if not isinstance(s, Mapping):
            raise _error(f"expected an object or true, got {s!r}", where)
        unknown = sorted(set(s) - _KEYWORDS)
        if unknown:
            raise _error(f"unsupported keyword(s) {unknown}; supported: {sorted(_KEYWORDS - _ANNOTATIONS)}",
                         where)
        types = s.get("type", sorted(TYPES))
        types = [types] if isinstance(types, str) else types
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types) \
                or not types or not set(types) <= TYPES:
            raise _error(f"bad type {s.get('type')!r}; one or a list of {sorted(TYPES)}", where)
        types = frozenset(types)
        enum = None
        if "enum" in s or "const" in s:
            if "enum" in s and not isinstance(s["enum"], list):
                raise _error(f"enum must be a list, got {type(s['enum']).__name__}", where)
            values = list(s["enum"]) if "enum" in s else []
            if "const" in s:
                values = [s["const"]] if "enum" not in s or s["const"] in values else []
            if any(_json_type(v) == "compound" for v in values):
                raise _error("enum/const of arrays or objects is not supported", where)
            bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                raise _error(f"enum/const value {bad[0]!r} is not JSON: JSON numbers are finite (no NaN "
                             "or Infinity; a literal such as 1e400 overflows to Infinity)", where)
            bad = [v for v in values if isinstance(v, str) and not _is_utf8(v)]
            if bad:
                raise _error(f"enum/const value {bad[0]!r} has a lone surrogate, which UTF-8 cannot encode",
                             where)

            def fits(v: Any) -> bool:
                t = _json_type(v)
                return t in types or (t == "integer" and "number" in types)
            enum = frozenset(json.dumps(v, ensure_ascii=False).encode() for v in values if fits(v))
            if not enum:
                raise _error("no enum/const value has an allowed type: nothing can satisfy it", where)
        node_id = len(nodes)
        nodes.append(Node(types))  # placeholder so children get later ids
        props = s.get("properties", {})
        if not isinstance(props, Mapping):
            raise _error("properties must be an object", where)
        properties = {str(k): build(v, f"{where}/properties/{k}") for k, v in props.items()}
        required = s.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise _error("required must be a list of strings", where)
        extra = s.get("additionalProperties", True)
        additional = None if extra is False else build(extra, f"{where}/additionalProperties")
        missing = sorted(set(required) - set(properties))
        if additional is None and missing:
            raise _error(f"required keys {missing} are not allowed by additionalProperties: false", where)
        items = build(s.get("items", True), f"{where}/items")
        nodes[node_id] = Node(types, enum, properties, frozenset(required), additional, items)
        return node_id

    if build(schema, "#") == ANY:
        nodes.append(nodes[ANY])
    return nodes


def _not_json(name: str) -> Any:
    raise _error(f"{name} is not JSON (JSON numbers are finite)", "#")


def parse_schema(schema: Any) -> Any:
    """A schema given as JSON text, parsed (a dict or ``true`` is returned as it is)."""
    if isinstance(schema, str):
        try:
            return json.loads(schema, parse_constant=_not_json)
        except json.JSONDecodeError as exc:
            raise _error(f"not valid JSON: {exc}", "#") from None
        except RecursionError:  # json's parser recurses once per level
            raise _too_deep(MAX_DEPTH_CEILING, ceiling=True) from None
    return schema


def _compiles(instance: Any, attribute: Any, value: Any) -> None:
    """Validator (the registry's, at validation time): ``value`` compiles within the largest
    ``max_depth`` (the configured ``max_depth`` is checked by ``check_parameters``). The registry
    names the component, so the message goes without it."""
    try:
        schema = parse_schema(value)
        if schema_depth(schema, MAX_DEPTH_CEILING) > MAX_DEPTH_CEILING:
            raise _too_deep(MAX_DEPTH_CEILING, ceiling=True)
        compile_schema(schema, MAX_DEPTH_CEILING)
    except (ConfigError, ResourceLimitError) as exc:
        raise ValueError(exc.message + (f"; {exc.hint}" if exc.hint else "")) from None


def _depth_bound(instance: Any, attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DEPTH_CEILING:
        raise ResourceLimitError(f"{attribute.name} must be an int in 1..{MAX_DEPTH_CEILING}, got {value!r}",
                                 component=_COMPONENT)


@attrs.define
class JSONSchemaConstraint(IncrementalConstraint):
    """JSON documents valid under ``schema`` (a dict, or its JSON text: parsed when built).

    Built directly, an unsupported or invalid schema is a :class:`~tokensmith.ConfigError`
    naming the component; through the registry, ``_compiles`` refuses it before anything loads.
    """

    name = "json-schema"

    schema: Annotated[dict[str, Any] | bool | str, _compiles] = attrs.field(metadata={
        "doc": "a JSON Schema (subset, see the README) as a table, or its JSON text"})
    max_depth: int = attrs.field(default=MAX_DEPTH, validator=_depth_bound, metadata={
        "doc": f"bound on the schema's nesting (objects and arrays), at most {MAX_DEPTH_CEILING}"})
    nodes: list[Node] = attrs.field(init=False, repr=False, eq=False)

    @staticmethod
    def check_parameters(values: dict[str, Any]) -> None:
        """At validation: the schema fits the configured ``max_depth``."""
        if schema_depth(parse_schema(values["schema"]), values["max_depth"]) > values["max_depth"]:
            exc = _too_deep(values["max_depth"], ceiling=False)
            raise ValueError(exc.message + (f"; {exc.hint}" if exc.hint else ""))

    def __attrs_post_init__(self) -> None:
        self.schema = parse_schema(self.schema)
        self.nodes = compile_schema(self.schema, self.max_depth)

    def _start_key(self) -> tuple:
        return (("E",), ("V", 1))

    def _step(self, key: tuple, byte: int) -> tuple | None:
        return self._feed(key, byte)

    def _key_size(self, key: tuple) -> int:
        return len(key)

    def _is_final(self, key: tuple) -> bool:
        stack = key
        while stack is not None and stack[-1][0] in "LN":
            top = stack[-1]
            done = top[2] in top[1] if top[0] == "L" else top[2] in "zifX"
            if not done:
                return False
            stack = self._complete(stack[:-1], top[2] if top[0] == "L" else None)
        return stack == (("E",),)

    # -- the pushdown automaton -------------------------------------------
    def _feed(self, stack: tuple, c: int) -> tuple | None:
        """The stack after byte ``c``; ``None`` when no valid document continues this way."""
        while True:
            top, rest = stack[-1], stack[:-1]
            tag = top[0]
            if tag == "E":
                return None  # the document ends with its value: after it, only EOS
            if tag == "V":
                return stack if c in WS else self._start_value(rest, top[1], c)
            if tag == "L":
                cands, typed = top[1], top[2] + bytes([c])
                alive = frozenset(x for x in cands if x.startswith(typed))
                if alive:
                    return (*rest, ("L", alive, typed))
                if top[2] not in cands:
                    return None
                stack = self._complete(rest, top[2])  # the literal ended; c belongs to the parent
            elif tag == "N":
                phase = _number_step(top[2], c, top[1])
                if phase is not None:
                    return (*rest, ("N", top[1], phase))
                if top[2] not in "zifX":
                    return None
                stack = self._complete(rest, None)
            elif tag == "S":
                return self._string(rest, top, c)
            elif tag == "O":
                return self._object(rest, top, c)
            else:  # "A"
                _, node_id, phase = top
                if c in WS:
                    return stack
                if phase == "v":
                    if c == ord(","):
                        return (*rest, ("A", node_id, "n"))
                    return self._complete(rest, None) if c == ord("]") else None
                if phase == "f" and c == ord("]"):
                    return self._complete(rest, None)
                stack = (*rest, ("A", node_id, "v"), ("V", self.nodes[node_id].items))
            if stack is None:
                return None

    def _start_value(self, rest: tuple, node_id: int, c: int) -> tuple | None:
        node = self.nodes[node_id]
        if node.enum is not None:
            return self._feed((*rest, ("L", node.enum, b"")), c)
        t = node.types
        if c == ord('"') and "string" in t:
            return (*rest, ("S", 0, None))
        if c == ord("{") and "object" in t:
            return (*rest, ("O", node_id, frozenset(), "k0", ANY))
        if c == ord("[") and "array" in t:
            return (*rest, ("A", node_id, "f"))
        if c in b"tf" and "boolean" in t:
            return self._feed((*rest, ("L", frozenset({b"true", b"false"}), b"")), c)
        if c == ord("n") and "null" in t:
            return self._feed((*rest, ("L", frozenset({b"null"}), b"")), c)
        if (c == ord("-") or c in DIGITS) and ("number" in t or "integer" in t):
            return self._feed((*rest, ("N", "number" not in t, "s")), c)
        return None

    def _complete(self, rest: tuple, result: bytes | None) -> tuple | None:
        """Pop a finished value; an object waiting for a key takes ``result`` as the key."""
        top = rest[-1]
        if top[0] != "O" or top[3] != "key":
            return rest
        _, node_id, seen, _, _ = top
        key = json.loads(result.decode("utf-8"))
        if key in seen:
            return None
        node = self.nodes[node_id]
        value = node.properties.get(key, node.additional)
        return (*rest[:-1], ("O", node_id, seen | {key}, "c", value))

    def _object(self, rest: tuple, top: tuple, c: int) -> tuple | None:
        _, node_id, seen, phase, value = top
        node = self.nodes[node_id]
        if c in WS:
            return (*rest, top)
        if phase == "c":
            return (*rest, ("O", node_id, seen, "v", ANY), ("V", value)) if c == ord(":") else None
        if c == ord("}") and phase in ("k0", "v"):
            return self._complete(rest, None) if node.required <= seen else None
        if phase == "v":
            if c != ord(",") or (node.additional is None and set(node.properties) <= seen):
                return None
            return (*rest, ("O", node_id, seen, "k", ANY))
        if c != ord('"'):
            return None
        waiting = (*rest, ("O", node_id, seen, "key", ANY))
        if node.additional is not None:
            return (*waiting, ("S", 0, b'"'))
        names = frozenset(json.dumps(k, ensure_ascii=False).encode()
                          for k in node.properties if k not in seen)
        return (*waiting, ("L", names, b'"')) if names else None

    def _string(self, rest: tuple, top: tuple, c: int) -> tuple | None:
        _, sub, raw = top
        raw = None if raw is None else raw + bytes([c])
        if sub == 0:
            if c == ord('"'):
                return self._complete(rest, raw)
            if c == ord("\\"):
                sub = "e"
            elif c < 0x20:
                return None
            elif c >= 0x80:
                sub = _utf8_lead(c)
                if sub is None:
                    return None
        elif sub == "e":
            if c == ord("u"):
                sub = ("u", 0)
            elif c in b'"\\/bfnrt':
                sub = 0
            else:
                return None
        elif sub[0] == "u":
            if c not in HEX:
                return None
            sub = 0 if sub[1] == 3 else ("u", sub[1] + 1)
        else:  # ("c", remaining, lo, hi): inside a multi-byte UTF-8 character
            if not sub[2] <= c <= sub[3]:
                return None
            sub = 0 if sub[1] == 1 else ("c", sub[1] - 1, 0x80, 0xBF)
        return (*rest, ("S", sub, raw))


def _utf8_lead(c: int) -> tuple | None:
    """Continuation bytes expected after a UTF-8 lead byte (no overlongs, no surrogates)."""
    if 0xC2 <= c <= 0xDF:
        return ("c", 1, 0x80, 0xBF)
    if c == 0xE0:
        return ("c", 2, 0xA0, 0xBF)
    if c == 0xED:
        return ("c", 2, 0x80, 0x9F)
    if 0xE1 <= c <= 0xEF:
        return ("c", 2, 0x80, 0xBF)
    if c == 0xF0:
        return ("c", 3, 0x90, 0xBF)
    if 0xF1 <= c <= 0xF3:
        return ("c", 3, 0x80, 0xBF)
    if c == 0xF4:
        return ("c", 3, 0x80, 0x8F)
    return None


def _number_step(phase: str, c: int, integer: bool) -> str | None:
    """RFC 8259 number grammar. Phases: s start, m after '-', z leading 0, i integer digits,
    d after '.', f fraction digits, e after e/E, g after the exponent sign, X exponent digits.
    Final phases are z, i, f, X."""
    digit = c in DIGITS
    if phase in ("s", "m"):
        if c == ord("-") and phase == "s":
            return "m"
        return ("z" if c == ord("0") else "i") if digit else None
    if phase == "i" and digit:
        return "i"
    if phase in ("z", "i"):
        if integer:
            return None
        return "d" if c == ord(".") else "e" if c in b"eE" else None
    if phase in ("d", "f"):
        return "f" if digit else ("e" if phase == "f" and c in b"eE" else None)
    if phase == "e" and c in b"+-":
        return "g"
    if phase in ("e", "g", "X"):
        return "X" if digit else None
    return None
