import pytest
from tokensmith_baselines.components import IdentityNormalization, ModelEmbedding

from tokensmith import PipelineSpec, find_norm_layers
from tokensmith.testing import EmbeddingContract, NormalizationContract


def test_identity_and_model_embedding_change_nothing(installed_registry):
    spec = PipelineSpec(model="tiny-llama", tokenizer="model", embedding="model", normalization="identity",
                        runtime={"device": "cpu"})
    pipe = installed_registry.build_pipeline(spec)
    norm_report, emb_report = pipe.reports
    assert len(norm_report) == 0 and len(emb_report) == 0
    assert norm_report.notes == (f"{len(find_norm_layers(pipe.model)[0])} norm layer(s) kept",)


def test_hf_file_tokenizer_loads_a_saved_tokenizer(installed_registry, tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "tokenizer.json")
    tokenizer = {"type": "hf-file", "path": str(tmp_path / "tokenizer.json")}
    spec = PipelineSpec(model="tiny-llama", tokenizer=tokenizer,
                        decoder="greedy", runtime={"device": "cpu"})
    pipe = installed_registry.build_pipeline(spec)
    assert pipe.lm.tokenizer is pipe.tokenizer and pipe.tokenizer.byte_table == tiny_tokenizer.byte_table
    assert pipe.tokenizer.encode("hello").ids == tiny_tokenizer.encode("hello").ids


def test_pipeline_sampling_follows_the_runtime_seed(installed_registry):
    spec = PipelineSpec(model="tiny-gpt2", decoder={"type": "sample", "temperature": 1.5},
                        runtime={"device": "cpu", "seed": 7})
    pipe = installed_registry.build_pipeline(spec)
    a, b = pipe.generate("The", max_new_tokens=6), pipe.generate("The", max_new_tokens=6)
    assert a.ids != b.ids  # no seed: the runtime's generator advances
    again = installed_registry.build_pipeline(spec)  # same runtime seed: the same sequence
    assert [again.generate("The", max_new_tokens=6).ids for _ in range(2)] == [a.ids, b.ids]
    assert pipe.generate("The", max_new_tokens=6, seed=8).ids == pipe.generate("The", max_new_tokens=6,
                                                                                seed=8).ids


def test_generation_respects_max_new_tokens_zero(installed_registry):
    pipe = installed_registry.build_pipeline(PipelineSpec(model="tiny-llama", decoder="greedy",
                                                          runtime={"device": "cpu"}))
    gen = pipe.generate("hello", max_new_tokens=0)
    assert gen.ids == () and gen.text == "" and gen.finish_reason == "length"


def test_negative_max_new_tokens_is_an_error(installed_registry):
    from tokensmith import InputError

    pipe = installed_registry.build_pipeline(PipelineSpec(model="tiny-llama", decoder="greedy",
                                                          runtime={"device": "cpu"}))
    with pytest.raises(InputError, match=r"\[decoder 'greedy' from tokensmith-baselines\] max_new_tokens"):
        pipe.generate("hello", max_new_tokens=-1)


class TestModelEmbedding(EmbeddingContract):
    @pytest.fixture
    def embedding_provider(self):
        return ModelEmbedding()

    @pytest.fixture
    def model_and_tokenizer(self, tiny_llama):
        return tiny_llama


class TestIdentityNormalization(NormalizationContract):
    @pytest.fixture
    def normalization_provider(self):
        return IdentityNormalization()

    @pytest.fixture
    def model(self, tiny_gpt2):
        return tiny_gpt2[0]

    def test_no_norm_layers_is_an_error(self, normalization_provider):
        """Overridden: identity performs no surgery, so a model without norm layers is fine."""
        import torch.nn as nn

        _, report = normalization_provider.replace(nn.Sequential(nn.Linear(4, 4)))
        assert len(report) == 0 and report.notes == ("0 norm layer(s) kept",)
