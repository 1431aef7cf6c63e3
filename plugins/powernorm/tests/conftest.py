import pytest


@pytest.fixture(params=["powernorm", "batchnorm"])
def normalization_provider(request):
    from tokensmith_powernorm.surgery import BatchNormProvider, PowerNormProvider

    if request.param == "powernorm":
        return PowerNormProvider(warmup_iters=2)
    return BatchNormProvider()


@pytest.fixture
def plugin_registry(make_registry):
    import tokensmith_powernorm.plugin as plugin

    return make_registry(plugin)
