"""The plugin template in examples/, installed as a third party would install it
(tox's py311 env installs it from its folder), is discovered and usable by name."""

import importlib.util
import os

import pytest

from tokensmith import PipelineSpec, Registry


@pytest.fixture
def template_installed():
    if importlib.util.find_spec("tokensmith_example") is None:
        if os.environ.get("TOKENSMITH_EXPECT_TEMPLATE"):
            pytest.fail("the plugin template should be installed in this environment")
        pytest.skip("examples/plugin-template is not installed here")


def test_template_is_discovered_and_runs_in_a_pipeline(template_installed, tmp_path):
    reg = Registry.from_environment()
    info = {p.distribution for p in reg.plugins.values()}
    assert "tokensmith-example" in info
    stage = reg.build("tokenizer_stage", {"type": "nfkc", "casefold": True})
    assert stage.normalize("ＡＢＣ") == "abc"
    if importlib.util.find_spec("tokensmith_baselines") is None:
        return
    path = tmp_path / "pipeline.toml"
    path.write_text('[runtime]\ndevice = "cpu"\n[model]\nsource = "tiny-llama"\n'
                    '[tokenizer]\ntype = "model"\nstages = [{ type = "nfkc" }]\n[decoder]\ntype = "greedy"\n')
    pipe = reg.build_pipeline(PipelineSpec.from_toml(path))
    assert [type(s).__name__ for s in pipe.stages] == ["NFKC"]
    assert pipe.generate("ﬁve", max_new_tokens=2).finish_reason in ("length", "stop")
