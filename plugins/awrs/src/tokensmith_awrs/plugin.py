"""Hook implementations of tokensmith-awrs (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

from .config import DecoderConfig, JSONSchemaConfig, RegexConfig

_M = "tokensmith_awrs"


@hookimpl
def tokensmith_register_decoders():
    return [
        Component("awrs", f"{_M}.decoders:AWRSDecoder.from_config",
                  "adaptive weighted rejection sampling (Lipkin et al. 2025): exact constrained "
                  "token draws with unbiased weights; n_particles > 1 runs SMC",
                  config_class=DecoderConfig, accepts_constraint=True),
        Component("masking", f"{_M}.decoders:MaskingDecoder.from_config",
                  "locally constrained decoding: the constraint checked on every token each step",
                  config_class=DecoderConfig, accepts_constraint=True),
    ]


@hookimpl
def tokensmith_register_constraints():
    return [
        Component("regex", f"{_M}.regex:RegexConstraint.from_config",
                  "text that fully matches a regular expression (exact byte-prefix DFA check)",
                  config_class=RegexConfig),
        Component("json-schema", f"{_M}.json_schema:JSONSchemaConstraint.from_config",
                  "a JSON document valid under a JSON Schema subset (incremental, schema-aware)",
                  config_class=JSONSchemaConfig),
        Component("python", f"{_M}.python_syntax:PythonConstraint.from_config",
                  "Python source that CPython parses; a prefix is allowed when a witness completion parses"),
    ]


@hookimpl
def tokensmith_register_demos():
    return [Component("awrs", f"{_M}.demo:AWRSDemo",
                      "SmolLM2 writes schema-valid JSON: constraint checks per token, AWRS vs full masking")]
