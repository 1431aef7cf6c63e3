"""Hook implementations of tokensmith-awrs (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_awrs"


@hookimpl
def tokensmith_register_decoders():
    return [
        Component("awrs", f"{_M}.decoders:AWRSDecoder",
                  "adaptive weighted rejection sampling (Lipkin et al. 2025): exact constrained "
                  "token draws with unbiased weights; n_particles > 1 runs SMC"),
        Component("masking", f"{_M}.decoders:MaskingDecoder",
                  "locally constrained decoding: the constraint checked on every token each step"),
    ]


@hookimpl
def tokensmith_register_constraints():
    return [
        Component("regex", f"{_M}.regex:RegexConstraint",
                  "text that fully matches a regular expression (exact byte-prefix DFA check)"),
        Component("json-schema", f"{_M}.json_schema:JSONSchemaConstraint",
                  "a JSON document valid under a JSON Schema subset (incremental, schema-aware)"),
        Component("python", f"{_M}.python_syntax:PythonConstraint",
                  "Python source that CPython parses; a prefix is allowed when a witness completion parses"),
        Component("lark", f"{_M}.grammars:LarkConstraint",
                  "text derived from a Lark grammar, checked by llguidance (optional extra; token masks "
                  "over a token LM)"),
        Component("llg-json-schema", f"{_M}.grammars:LLGJSONSchemaConstraint",
                  "a JSON document valid under a full JSON Schema, compiled by llguidance (optional extra)"),
        Component("llg-regex", f"{_M}.grammars:LLGRegexConstraint",
                  "text fully matching a Rust-syntax regex, checked by llguidance (optional extra)"),
    ]


@hookimpl
def tokensmith_register_demos():
    return [Component("awrs", f"{_M}.demo:AWRSDemo",
                      "SmolLM2 writes schema-valid JSON: constraint checks per token, AWRS vs full masking")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("awrs", f"{_M}.benchmark:AWRSBenchmark",
                      "AWRS vs full masking on SmolLM2: constraint checks and time per token, validity",
                      requires=("causal_lm",))]
