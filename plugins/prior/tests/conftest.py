import pytest


@pytest.fixture
def plugin_registry(make_registry):
    import tokensmith_datasets.plugin as datasets
    import tokensmith_prior.plugin as plugin

    return make_registry(plugin, datasets)
