import importlib.metadata

import pytest
from tokensmith_example.components import NFKC, MaxBytes, MinP

from tokensmith import ConfigError, PipelineSpec, Registry
from tokensmith.testing import ConstraintContract, DecoderContract, TokenizerStageContract


class TestNFKC(TokenizerStageContract):
    @pytest.fixture
    def stage(self):
        return NFKC(casefold=True)


class TestMaxBytes(ConstraintContract):
    @pytest.fixture
    def constraint(self):
        return MaxBytes(5)

    @pytest.fixture
    def accepted(self):
        return [b"", b"abc", b"12345"]

    @pytest.fixture
    def rejected(self):
        return [b"123456", "été!!".encode()]


class TestMinP(DecoderContract):
    @pytest.fixture
    def decoder(self):
        return MinP(min_p=0.05)


def test_min_p_keeps_only_the_top_token_at_one(tiny_lm):
    greedy = tiny_lm.start(list(tiny_lm.start_ids) + list(tiny_lm.tokenizer.encode("The").ids))
    gen = MinP(min_p=1.0).generate(tiny_lm, "The", max_new_tokens=1)
    assert gen.ids in ((int(greedy.logprobs.argmax()),), ())


def test_discovered_through_its_entry_point():
    reg = Registry.from_environment()
    record = reg.get("tokenizer_stage", "nfkc")
    assert record.distribution == "tokensmith-example"
    assert record.version == importlib.metadata.version("tokensmith-example")
    assert [p.name for p in reg.parameters(reg.get("decoder", "min-p")).parameters] == ["min_p"]


def test_components_build_by_name():
    reg = Registry.from_environment()
    assert reg.build("tokenizer_stage", {"type": "nfkc", "casefold": True}).normalize("Ｆｕｌｌ") == "full"
    assert reg.build("constraint", {"type": "max-bytes", "limit": 2}).allows(b"ab")
    with pytest.raises(ConfigError, match="limit"):
        reg.build("constraint", {"type": "max-bytes", "limit": -1})
    with pytest.raises(ConfigError, match="min_p.*float"):
        reg.build("decoder", {"type": "min-p", "min_p": "high"})


def test_a_pipeline_using_the_stage_and_decoder_runs():
    reg = Registry.from_environment()
    spec = PipelineSpec(model="tiny-llama", stages=["nfkc"], decoder={"type": "min-p", "min_p": 0.2},
                        runtime={"device": "cpu"})
    pipe = reg.build_pipeline(spec)
    assert pipe.prepare("ﬁne ①") == "fine 1"
    assert len(pipe.generate("ﬁne", max_new_tokens=2).ids) <= 2
