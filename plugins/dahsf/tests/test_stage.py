"""The `dahsf` tokenizer stage: the contract, in a pipeline built from TOML, and its record."""

from __future__ import annotations

import pytest
from tokensmith_dahsf import DAHSFStage, shipped_forests

from tokensmith import PipelineSpec, Registry, load_pipeline
from tokensmith.testing import TokenizerStageContract


class TestDAHSFStage(TokenizerStageContract):
    @pytest.fixture
    def stage(self):
        return DAHSFStage()


def test_registered_with_its_parameters():
    registry = Registry.from_environment()
    record = registry.get("tokenizer_stage", "dahsf")
    assert record.distribution == "tokensmith-dahsf" and "forest" in record.summary
    assert registry.get("benchmark", "dahsf").distribution == "tokensmith-dahsf"
    stage = registry.build("tokenizer_stage", {"type": "dahsf", "forest": "home", "require_command": True})
    assert isinstance(stage, DAHSFStage) and stage.require_command and "home" in shipped_forests()


def test_in_a_pipeline_from_toml(tmp_path):
    forest = tmp_path / "lights.toml"
    forest.write_text(
        """
ignore = ["the", "please"]
[[layers]]
name = "lexicon"
[layers.rules]
ON = ["turn on", "switch on"]
LIGHT = ["the light", "lamp"]
[[layers]]
name = "commands"
[layers.rules]
LIGHT_ON = ["ON LIGHT", "LIGHT ON"]
""",
        encoding="utf-8",
    )
    toml = tmp_path / "pipeline.toml"
    toml.write_text(
        f"""
[model]
source = "tiny-llama"

[runtime]
device = "cpu"

[tokenizer]
[[tokenizer.stages]]
type = "dahsf"
forest = {str(forest)!r}
""",
        encoding="utf-8",
    )
    pipeline = load_pipeline(str(toml))
    assert pipeline.prepare("please switch on the lamp") == "turn on the light"
    assert pipeline.stages[0].parse("lamp turn on").template == "LIGHT_ON"
    config = pipeline.to_config()
    again = PipelineSpec.from_config(config)
    assert again == pipeline.spec and again.stages[0].to_config()["forest"] == str(forest)
