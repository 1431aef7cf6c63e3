import pytest


@pytest.fixture
def plugin_registry(make_registry):
    import tokensmith_sstoken.plugin as plugin

    return make_registry(plugin)
