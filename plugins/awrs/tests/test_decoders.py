"""Decoder components over token LMs: contract, validity, counters, registry wiring."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tokensmith_awrs.decoders import AWRSDecoder, MaskingDecoder
from tokensmith_awrs.json_schema import JSONSchemaConstraint
from tokensmith_awrs.regex import RegexConstraint
from tokensmith_awrs.spaces import TokenSpace

from tokensmith import ConfigError, FunctionConstraint, PipelineSpec, TrustedText, ValidationError
from tokensmith.testing import DecoderContract


class TestAWRSContract(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return AWRSDecoder()


class TestSMCContract(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return AWRSDecoder(n_particles=3)


class TestMaskingContract(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return MaskingDecoder()


@pytest.mark.parametrize("decoder", [AWRSDecoder(), AWRSDecoder(n_particles=3), MaskingDecoder()],
                         ids=["awrs", "smc", "masking"])
def test_outputs_satisfy_the_constraint(tiny_lm, decoder):
    constraint = RegexConstraint(r"[0-9]{1,3}( (apples|pears))?")
    for seed in range(3):
        gen = decoder.generate(tiny_lm, "count:", max_new_tokens=10, constraint=constraint, seed=seed)
        assert constraint.allows(gen.bytes)
        assert gen.counters["constraint_checks"] > 0 and gen.counters["lm_calls"] >= 1
        posterior, truncated = gen.details["posterior"], gen.details["truncated"]
        if gen.finish_reason == "stop":
            assert constraint.accepts(gen.bytes) and gen.log_weight > -math.inf and gen.text in posterior
        else:  # nothing ended within 10 tokens: a truncated prefix, flagged as such
            assert gen.finish_reason == "length" and gen.log_weight == -math.inf and gen.text in truncated
        assert (gen.counters["truncated"] > 0) == bool(truncated)
        for weights in (posterior, truncated):
            assert not weights or sum(weights.values()) == pytest.approx(1.0)
        assert all(constraint.accepts(text.encode()) for text in posterior)
        assert all(constraint.allows(text.encode()) for text in truncated)


def test_masking_checks_every_token_awrs_far_fewer(tiny_lm):
    constraint = RegexConstraint(r"[a-z ]+")
    masked = MaskingDecoder(prune=False).generate(tiny_lm, "hi", max_new_tokens=3, constraint=constraint,
                                                  seed=0)
    constraint.reset_counters()
    awrs = AWRSDecoder(prune=False).generate(tiny_lm, "hi", max_new_tokens=3, constraint=constraint, seed=0)
    candidates = int(torch.isfinite(TokenSpace(tiny_lm).logweights(tiny_lm.start([1]))).sum())
    steps = len(masked.ids) + (masked.finish_reason == "stop")
    assert masked.counters["constraint_checks"] == candidates * steps
    # ~26% of the 320 tokens are lowercase/space: AWRS needs a handful of checks per step
    assert awrs.counters["constraint_checks"] < masked.counters["constraint_checks"] / 10


def test_composed_and_plain_function_constraints(tiny_lm):
    short = FunctionConstraint(lambda b: len(b) <= 4, name="short")
    digits = RegexConstraint(r"[0-9]*")
    letters = RegexConstraint(r"[a-z]*")
    both = (digits | letters) & short
    for seed in range(3):
        gen = AWRSDecoder().generate(tiny_lm, "x", max_new_tokens=6, constraint=both, seed=seed)
        assert len(gen.bytes) <= 4 and (gen.bytes.isdigit() or gen.bytes.isalpha() or gen.bytes == b"")
    assert short.checks > 0 and digits.checks > 0 and both.checks > 0


def test_single_string_constraint_and_unsatisfiable_one_do_not_hang(tiny_lm):
    # exactly one string is accepted, and the byte-level vocabulary spells it only with its two
    # byte tokens 0xd0 0x80: AWRS must find them among the 320 tokens, then end
    only = RegexConstraint("\u0400")
    gen = AWRSDecoder().generate(tiny_lm, "x", max_new_tokens=5, constraint=only, seed=0)
    assert gen.bytes == "\u0400".encode() and gen.finish_reason == "stop" and gen.log_weight > -math.inf
    assert gen.counters["tokens"] == 2
    impossible = FunctionConstraint(lambda b: b == b"", accepts=lambda b: False, name="never")
    gen = AWRSDecoder().generate(tiny_lm, "x", max_new_tokens=5, constraint=impossible, seed=0)
    assert gen.finish_reason == "rejected" and gen.log_weight == -math.inf and gen.ids == ()


@pytest.mark.parametrize("decoder", [AWRSDecoder(), AWRSDecoder(n_particles=3), MaskingDecoder()],
                         ids=["awrs", "smc", "masking"])
def test_seed_none_advances_the_runtime_generator_and_a_seed_replays(tiny_lm, decoder):
    unseeded = [decoder.generate(tiny_lm, "The", max_new_tokens=8).ids for _ in range(2)]
    assert unseeded[0] != unseeded[1]
    a, b = (decoder.generate(tiny_lm, "The", max_new_tokens=8, seed=7) for _ in range(2))
    assert a.ids == b.ids and a.log_weight == b.log_weight and a.details == b.details


def test_registered_components(installed_registry):
    decoders = {c.name: c for c in installed_registry.components("decoder")}
    constraints = {c.name: c for c in installed_registry.components("constraint")}
    assert installed_registry.accepts_constraint(decoders["awrs"])
    assert installed_registry.accepts_constraint(decoders["masking"])
    assert {"regex", "json-schema", "python"} <= set(constraints)
    assert any(c.name == "awrs" for c in installed_registry.components("demo"))


@pytest.mark.parametrize("constraint,match", [
    ({"type": "regex", "pattern": "(a"}, "invalid regular"),
    ({"type": "json-schema", "schema": {"minimum": 1}}, "unsupported"),
    ({"type": "json-schema", "schema": "{"}, "not valid JSON")])
def test_bad_constraints_fail_validation_naming_the_component(installed_registry, constraint, match):
    spec = PipelineSpec(model="tiny-llama", decoder="awrs", constraint=constraint)
    with pytest.raises(ValidationError, match=match) as err:
        installed_registry.build_pipeline(spec)
    problem = err.value.problems[0]
    assert isinstance(problem, ConfigError) and problem.component == f"constraint '{constraint['type']}'"
    assert problem.plugin == "tokensmith-awrs" and "parameter" in problem.message


def test_bad_decoder_parameters(installed_registry):
    with pytest.raises(ValidationError, match="n_particles"):
        installed_registry.build_pipeline(PipelineSpec(model="tiny-llama", decoder={"type": "awrs",
                                                                                    "n_particles": 0}))


@pytest.mark.parametrize("kind,ref,name", [
    ("decoder", {"type": "awrs", "n_particles": "many"}, "n_particles"),
    ("decoder", {"type": "awrs", "n_particles": True}, "n_particles"),
    ("decoder", {"type": "masking", "ess_threshold": "half"}, "ess_threshold"),
    ("decoder", {"type": "masking", "ess_threshold": 1.5}, "ess_threshold"),
    ("constraint", {"type": "regex", "pattern": 3}, "pattern"),
    ("constraint", {"type": "json-schema", "schema": [1]}, "schema")])
def test_registry_built_component_with_a_bad_parameter_is_a_config_error(installed_registry, kind, ref,
                                                                         name):
    with pytest.raises(ConfigError, match=f"parameter '{name}'") as err:
        installed_registry.build(kind, ref)
    assert err.value.component == f"{kind} '{ref['type']}'" and err.value.plugin == "tokensmith-awrs"


def test_pipeline_from_config(installed_registry):
    spec = PipelineSpec.from_config({
        "model": {"source": "tiny-llama"}, "decoder": {"type": "awrs", "n_particles": 2},
        "constraint": {"type": "json-schema", "schema": {"type": "array", "items": {"type": "integer"}}}})
    pipeline = installed_registry.build_pipeline(spec)
    gen = pipeline.generate("[", max_new_tokens=6, seed=1)
    assert pipeline.constraint.allows(gen.bytes) and gen.counters["n_particles"] == 2


def test_smollm2_json_is_valid_with_few_checks(smollm2_lm):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    constraint = JSONSchemaConstraint(schema)
    prompt = TrustedText("<|im_start|>user\nReply with a JSON object with a person's name and age."
                         "<|im_end|>\n<|im_start|>assistant\n")
    gen = AWRSDecoder().generate(smollm2_lm, prompt, max_new_tokens=30, constraint=constraint, seed=0)
    assert gen.finish_reason == "stop" and gen.log_weight > -math.inf
    value = json.loads(gen.text)
    assert isinstance(value["name"], str) and isinstance(value["age"], int)
    assert gen.counters["constraint_checks"] < 10 * (len(gen.ids) + 1)
