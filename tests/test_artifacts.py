import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import (
    ArtifactDeviceError,
    ArtifactError,
    ArtifactVersionError,
    CorruptArtifactError,
    InputError,
)
from tokensmith.adapters import artifacts
from tokensmith.adapters.artifacts import atomic_write_bytes, load_artifact, save_artifact

TENSORS = {"weight": torch.linspace(-1, 1, 4096).reshape(64, 64), "ids": torch.arange(7)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = save_artifact(tmp_path_factory.mktemp("art") / "w.safetensors", TENSORS, plugin="tokensmith-x",
                         version="1.2", config={"dim": 4})
    return path.read_bytes()


def _data_start(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), scale=st.floats(-10, 10))
def test_save_load_round_trip_with_metadata(tmp_path_factory, shape, scale):
    path = tmp_path_factory.mktemp("a") / "w.safetensors"
    tensors = {"weight": torch.randn(*shape) * scale, "ids": torch.arange(3)}
    save_artifact(path, tensors, plugin="tokensmith-x", version="1.2", config={"dim": 4})
    loaded, meta = load_artifact(path, plugin="tokensmith-x", version="1.2")
    assert meta == {"plugin": "tokensmith-x", "version": "1.2", "config": {"dim": 4}}
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v)


def test_wrong_plugin_missing_and_truncated(tmp_path):
    path = save_artifact(tmp_path / "w.safetensors", {"a": torch.ones(2)}, plugin="p", version="1")
    with pytest.raises(ArtifactError, match="written by 'p'"):
        load_artifact(path, plugin="q")
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope.safetensors")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(CorruptArtifactError, match="corrupt"):
        load_artifact(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damage_anywhere_is_detected(saved, tmp_path, data):
    """A changed byte in the length, header, metadata, hash or tensor data is a typed error."""
    at = data.draw(st.integers(0, len(saved) - 1), label="at")
    patch = data.draw(st.binary(min_size=1, max_size=64), label="patch")
    damaged = bytearray(saved)
    damaged[at:at + len(patch)] = patch[:len(saved) - at]
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bytes(damaged))
    if bytes(damaged) == saved:
        assert torch.equal(load_artifact(path)[0]["weight"], TENSORS["weight"])
        return
    # a damaged digit of the format field reads as another format; everything else as corrupt
    with pytest.raises((CorruptArtifactError, ArtifactVersionError)):
        load_artifact(path)


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_damaged_tensor_bytes_are_corrupt(saved, tmp_path, where):
    start = _data_start(saved)
    at = {"start": start, "middle": (start + len(saved)) // 2, "end": len(saved) - 100}[where]
    damaged = bytearray(saved)
    damaged[at:at + 100] = bytes(b ^ 0x55 for b in damaged[at:at + 100])
    path = tmp_path / "w.safetensors"
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptArtifactError, match="does not match its sha256"):
        load_artifact(path)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.integers(0, 10_000))
def test_truncation_is_corrupt(saved, tmp_path, keep):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(saved[:min(keep, len(saved) - 1)])
    with pytest.raises(CorruptArtifactError):
        load_artifact(path)


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '{"plugin": "p"}', '{"plugin": 1, "version": "1", '
                                 '"config": {}}', '"text"'])
def test_bad_metadata_is_corrupt_not_a_bare_error(tmp_path, raw):
    path = tmp_path / "m.safetensors"
    path.write_bytes(artifacts._encode({"a": torch.ones(2)}, {artifacts.META_KEY: raw}))  # hash is valid
    with pytest.raises(CorruptArtifactError, match="metadata"):
        load_artifact(path)
    from safetensors.torch import save

    path.write_bytes(save({"a": torch.ones(2)}, metadata={artifacts.META_KEY: raw}))  # no hash either
    with pytest.raises(CorruptArtifactError, match="metadata"):
        load_artifact(path)


def test_versions_are_checked(tmp_path, monkeypatch):
    from safetensors.torch import save

    path = tmp_path / "v.safetensors"
    save_artifact(path, {"a": torch.ones(2)}, plugin="p", version="2.0")
    with pytest.raises(ArtifactVersionError, match="version '2.0'"):
        load_artifact(path, plugin="p", version="3.0")
    # an artifact from before formats and hashes existed
    old_meta = json.dumps({"plugin": "p", "version": "1", "config": {}})
    path.write_bytes(save({"a": torch.ones(2)}, metadata={artifacts.META_KEY: old_meta}))
    with pytest.raises(ArtifactVersionError, match="before artifact format"):
        load_artifact(path)
    # one written by a newer tokensmith (its hash is valid: only the format differs)
    monkeypatch.setattr(artifacts, "ARTIFACT_FORMAT", artifacts.ARTIFACT_FORMAT + 1)
    save_artifact(path, {"a": torch.ones(2)}, plugin="p", version="1")
    monkeypatch.undo()
    with pytest.raises(ArtifactVersionError, match="upgrade tokensmith"):
        load_artifact(path)


def _unavailable(device: str) -> bool:
    try:
        torch.empty(0, device=device)
    except Exception:  # noqa: BLE001 - whatever torch raises for an absent backend
        return True
    return False


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "mps", "garbage", "meta", None])
def test_an_unusable_device_is_a_device_error_not_corruption(saved, tmp_path, device):
    if device not in ("garbage", "meta", None) and not _unavailable(device):
        pytest.skip(f"{device} is available here")
    path = tmp_path / "w.safetensors"
    path.write_bytes(saved)
    with pytest.raises(ArtifactDeviceError) as info:
        load_artifact(path, device=device)
    assert "corrupt" not in str(info.value) and "delete" not in str(info.value)


def test_save_refuses_what_it_cannot_record(tmp_path):
    with pytest.raises(InputError, match="JSON"):
        save_artifact(tmp_path / "a.safetensors", {"a": torch.ones(1)}, plugin="p", version="1",
                      config={"f": object()})
    with pytest.raises(InputError, match="JSON"):
        save_artifact(tmp_path / "a.safetensors", {"a": torch.ones(1)}, plugin="p", version="1",
                      config={"f": float("nan")})
    with pytest.raises(InputError, match="tensors"):
        save_artifact(tmp_path / "a.safetensors", {"a": [1.0]}, plugin="p", version="1")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_atomic_writes_get_the_mode_a_plain_open_would(tmp_path):
    import os
    import stat

    from tokensmith import atomic_write_text

    umask = os.umask(0o022)
    os.umask(umask)
    atomic_write_text(tmp_path / "report.json", "{}")
    (tmp_path / "plain.json").write_text("{}")
    mode = stat.S_IMODE((tmp_path / "report.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask
