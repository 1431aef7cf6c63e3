import importlib.metadata

import pytest

from tokensmith import ConfigError, PipelineSpec, Registry
from tokensmith.testing import ConstraintContract


class TestMaxBytes(ConstraintContract):
    @pytest.fixture
    def constraint(self):
        from tokensmith_example.components import MaxBytes

        return MaxBytes(5)

    @pytest.fixture
    def accepted(self):
        return [b"", b"abc", b"12345"]

    @pytest.fixture
    def rejected(self):
        return [b"123456", "été!!".encode()]


def test_discovered_through_its_entry_point():
    reg = Registry.from_environment()
    record = reg.get("tokenizer_stage", "nfkc")
    assert record.distribution == "tokensmith-example"
    assert record.version == importlib.metadata.version("tokensmith-example")


def test_components_build_by_name():
    reg = Registry.from_environment()
    assert reg.build("tokenizer_stage", {"type": "nfkc", "casefold": True}).normalize("Ｆｕｌｌ") == "full"
    assert reg.build("constraint", {"type": "max-bytes", "limit": 2}).allows(b"ab")
    with pytest.raises(ConfigError, match="limit"):
        reg.build("constraint", {"type": "max-bytes", "limit": -1})


def test_a_pipeline_using_the_stage_runs():
    pytest.importorskip("tokensmith_baselines")
    reg = Registry.from_environment()
    spec = PipelineSpec(model="tiny-llama", stages=["nfkc"], decoder="greedy", runtime={"device": "cpu"})
    pipe = reg.build_pipeline(spec)
    assert pipe.prepare("ﬁne ①") == "fine 1"
    assert len(pipe.generate("ﬁne", max_new_tokens=2).ids) <= 2
