"""safetensors artifacts with metadata, and atomic writes (never pickle)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokensmith.core.errors import ArtifactError

META_KEY = "tokensmith"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_artifact(path: str | Path, tensors: Mapping[str, Any], *, plugin: str, version: str,
                  config: Mapping[str, Any] | None = None) -> Path:
    """Save tensors as safetensors with ``{plugin, version, config}`` metadata, atomically."""
    from safetensors.torch import save

    meta = {"plugin": plugin, "version": version, "config": dict(config or {})}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)}))
    return Path(path)


def load_artifact(path: str | Path, *, plugin: str | None = None,
                  device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, metadata)``; checks that the artifact came from ``plugin`` when given."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"artifact {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt", device=device) as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise ArtifactError(f"artifact {str(path)!r} is corrupt: {exc}",
                            hint="delete it and create it again") from None
    if raw is None:
        raise ArtifactError(f"artifact {str(path)!r} has no tokensmith metadata",
                            hint="save it with tokensmith.adapters.artifacts.save_artifact")
    meta = json.loads(raw)
    if plugin is not None and meta.get("plugin") != plugin:
        raise ArtifactError(f"artifact {str(path)!r} was written by {meta.get('plugin')!r}, not {plugin!r}")
    return tensors, meta
