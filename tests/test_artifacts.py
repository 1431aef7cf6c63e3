import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokensmith import ArtifactError
from tokensmith.adapters import models
from tokensmith.adapters.artifacts import atomic_write_bytes, load_artifact, save_artifact


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), scale=st.floats(-10, 10))
def test_save_load_round_trip_with_metadata(tmp_path_factory, shape, scale):
    path = tmp_path_factory.mktemp("a") / "w.safetensors"
    tensors = {"weight": torch.randn(*shape) * scale, "ids": torch.arange(3)}
    save_artifact(path, tensors, plugin="tokensmith-x", version="1.2", config={"dim": 4})
    loaded, meta = load_artifact(path, plugin="tokensmith-x")
    assert meta == {"plugin": "tokensmith-x", "version": "1.2", "config": {"dim": 4}}
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v)


def test_wrong_plugin_missing_and_corrupt(tmp_path):
    path = save_artifact(tmp_path / "w.safetensors", {"a": torch.ones(2)}, plugin="p", version="1")
    with pytest.raises(ArtifactError, match="written by 'p'"):
        load_artifact(path, plugin="q")
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nope.safetensors")
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ArtifactError, match="corrupt"):
        load_artifact(path)


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_cache_validity_detects_partial_and_corrupt_files(tmp_path):
    d = tmp_path / "cache"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"x" * 5000)
    assert not models._cache_valid(d)  # no manifest: an interrupted conversion
    digest = models._digest(d / "model.safetensors")
    (d / "manifest.json").write_text(json.dumps({"format": models.CACHE_FORMAT,
                                                 "files": {"model.safetensors": digest}}))
    assert models._cache_valid(d)
    (d / "model.safetensors").write_bytes(b"x" * 4000)  # truncated
    assert not models._cache_valid(d)
    (d / "model.safetensors").write_bytes(b"y" + b"x" * 4999)  # damaged
    assert not models._cache_valid(d)
    (d / "manifest.json").write_text("{not json")
    assert not models._cache_valid(d)


@pytest.mark.smollm2
def test_smollm2_corrupt_cache_is_rebuilt(smollm2, tmp_path, monkeypatch):
    import shutil

    from tokensmith import Runtime

    real = models.smollm2_cache_dir()  # converted by the smollm2 fixture
    monkeypatch.setenv("TOKENSMITH_CACHE", str(tmp_path))
    copy = models.smollm2_cache_dir()
    shutil.copytree(real, copy)
    with open(copy / "model.safetensors", "r+b") as fh:  # damage the last MiB
        fh.seek(-100, 2)
        fh.write(b"\0" * 100)
    assert not models._cache_valid(copy)
    # conversion itself (~30 s) ran when the smollm2 fixture built the real cache; here a
    # copy stands in for it, so the test checks detection and the rebuild decision
    calls = []
    monkeypatch.setattr(models, "convert_smollm2", lambda d, progress: calls.append(d) or shutil.copytree(
        real, d, dirs_exist_ok=True))
    model, tok = models.load_smollm2(Runtime(device="cpu"), progress=False)
    assert calls == [copy] and models._cache_valid(copy) and tok.vocab_size == 49152
