import pytest

from tokensmith import Component, Runtime, UnsupportedRuntimeError


@pytest.mark.parametrize("raw,want", [("fp32", "float32"), ("bf16", "bfloat16"), ("half", "float16"),
                                      ("float64", "float64"), ("auto", "float32")])
def test_dtype_aliases(raw, want):
    assert Runtime.parse(device="cpu", dtype=raw).dtype == want


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_device_is_a_typed_error(bad):
    with pytest.raises(UnsupportedRuntimeError, match="unknown device"):
        Runtime.parse(device=bad)


def test_unknown_dtype_is_a_typed_error():
    with pytest.raises(UnsupportedRuntimeError, match="unknown dtype"):
        Runtime.parse(device="cpu", dtype="int3")


def test_auto_resolves_to_something_concrete():
    rt = Runtime.parse()
    assert rt.device in ("cpu", "mps") or rt.device.startswith("cuda")


def test_torchrun_topology_read_from_environment():
    rt = Runtime.parse(device="cpu", env={"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert (rt.rank, rt.world_size, rt.local_rank, rt.is_distributed) == (1, 2, 1, True)


def test_bad_environment_integer():
    with pytest.raises(UnsupportedRuntimeError, match="WORLD_SIZE"):
        Runtime.parse(device="cpu", env={"WORLD_SIZE": "two"})


def test_component_unsupported_on_device_names_component():
    record = Component("fast", "x:y", devices=("cuda",), kind="decoder", distribution="tokensmith-fast")
    with pytest.raises(UnsupportedRuntimeError) as info:
        Runtime(device="cpu").check_supported(record)
    assert "decoder 'fast'" in str(info.value) and "tokensmith-fast" in str(info.value)


def test_config_round_trip():
    rt = Runtime.parse(device="cpu", dtype="bf16", seed=3, threads=2)
    assert Runtime.from_config(rt.to_config()).to_config() == rt.to_config()


def test_unknown_runtime_key():
    with pytest.raises(UnsupportedRuntimeError, match="unknown runtime keys"):
        Runtime.from_config({"device": "cpu", "gpus": 2})
