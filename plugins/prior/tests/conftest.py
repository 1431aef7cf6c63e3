import pytest


@pytest.fixture
def plugin_registry(make_registry):
    import tokensmith_prior.plugin as plugin

    return make_registry(plugin)
