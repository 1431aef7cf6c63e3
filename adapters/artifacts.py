"""safetensors artifacts with metadata, a content hash and a format version; atomic writes
(never pickle).

An artifact's safetensors metadata holds three strings: ``tokensmith`` (JSON
``{plugin, version, config}``), ``tokensmith.format`` (:data:`ARTIFACT_FORMAT`) and
``tokensmith.sha256``: the sha256 of the whole file with the 64 characters of that digest
replaced by zeros. The hash so covers every byte (tensor data, header, metadata), and
:func:`load_artifact` tells a damaged file (:class:`CorruptArtifactError`) from one of
another format or plugin version (:class:`ArtifactVersionError`) and from a device that
cannot hold it (:class:`ArtifactDeviceError`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokensmith.core.errors import (
    ArtifactDeviceError,
    ArtifactError,
    ArtifactVersionError,
    CorruptArtifactError,
    InputError,
)

META_KEY = "tokensmith"
FORMAT_KEY = "tokensmith.format"
HASH_KEY = "tokensmith.sha256"
ARTIFACT_FORMAT = 1
_DIGEST_LEN = 64
_PLACEHOLDER = b"0" * _DIGEST_LEN


def _process_umask() -> int:
    """The umask, read once (setting it to read it back is not thread-safe, so not per write)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _process_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``. A
    path that cannot be written (its folder is a file, no permission, a full disk) is an
    :class:`ArtifactError` naming it; no temporary file is left behind."""
    path = Path(path)
    try:
        _write(path, data)
    except OSError as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"cannot write {str(path)!r}: {exc.strerror or exc}", component="files",
                            hint="write into a folder that exists or can be created (not a file), with "
                            "permission and space to write") from exc


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; give it the mode a plain open() would (0666 & ~umask)
        os.fchmod(fd, 0o666 & ~_UMASK)
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


def _content_hash(data: bytes | bytearray, at: int) -> str:
    """sha256 of ``data`` with the digest stored at ``at`` read as zeros."""
    view = memoryview(data)
    h = hashlib.sha256(view[:at])
    h.update(_PLACEHOLDER)
    h.update(view[at + _DIGEST_LEN:])
    return h.hexdigest()


def _encode(tensors: Mapping[str, Any], metadata: Mapping[str, str]) -> bytes:
    """safetensors bytes of ``tensors`` with ``metadata``, the format and the content hash."""
    from safetensors.torch import save

    marker = secrets.token_hex(_DIGEST_LEN // 2)  # unique, so its place in the header is unambiguous
    data = bytearray(save(dict(tensors), metadata={**metadata, FORMAT_KEY: str(ARTIFACT_FORMAT),
                                                   HASH_KEY: marker}))
    at = data.index(marker.encode(), 8)
    data[at:at + _DIGEST_LEN] = _content_hash(data, at).encode()
    return bytes(data)


def save_artifact(path: str | Path, tensors: Mapping[str, Any], *, plugin: str, version: str,
                  config: Mapping[str, Any] | None = None) -> Path:
    """Save tensors as safetensors with ``{plugin, version, config}`` metadata, the artifact
    format and a content hash, atomically."""
    if not isinstance(plugin, str) or not isinstance(version, str):
        raise InputError(f"plugin and version must be strings, got {plugin!r} and {version!r}",
                         component="artifact")
    meta = {"plugin": plugin, "version": version, "config": dict(config or {})}
    try:
        text = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"an artifact's config must be JSON (finite numbers, strings, lists, "
                         f"objects): {exc}", component="artifact") from None
    import torch

    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise InputError("an artifact's tensors must map names (str) to torch tensors", component="artifact")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, _encode(tensors, {META_KEY: text}))
    return Path(path)


def _target_device(device: Any, path: Path) -> Any:
    import torch

    try:
        target = torch.device(device)
        torch.empty(0, device=target)
        usable = target.type != "meta"  # meta tensors hold no data
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, AssertionError, TypeError...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    else:
        if usable:
            return target
        reason = "meta tensors hold no data"
    raise ArtifactDeviceError(f"artifact {str(path)!r} cannot be loaded onto device {device!r}: {reason}",
                              component="artifact",
                              hint="load it onto 'cpu' or a device this machine has; the file itself is fine")


def _corrupt(path: Path, why: str) -> CorruptArtifactError:
    return CorruptArtifactError(f"artifact {str(path)!r} is corrupt: {why}", component="artifact",
                                hint="delete it and create it again")


def _header(path: Path, data: bytes) -> tuple[int, dict[str, str]]:
    """The header's length and its ``__metadata__``, with the header's shape checked."""
    if len(data) < 8:
        raise _corrupt(path, f"{len(data)} bytes is shorter than a safetensors header")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise _corrupt(path, f"its header length {size} exceeds the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + size])
    except (ValueError, RecursionError) as exc:
        raise _corrupt(path, f"its header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _corrupt(path, "its metadata is not a mapping of strings")
    for name, entry in header.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise _corrupt(path, f"its header entry {name!r} does not describe a tensor")
    return size, metadata


def _user_meta(path: Path, raw: str | None) -> dict[str, Any]:
    if raw is None:
        raise _corrupt(path, "it has a format and hash but no tokensmith metadata")
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _corrupt(path, f"its tokensmith metadata is not JSON ({exc})") from None
    if not (isinstance(meta, dict) and isinstance(meta.get("plugin"), str)
            and isinstance(meta.get("version"), str) and isinstance(meta.get("config"), dict)):
        raise _corrupt(path, "its tokensmith metadata is not {plugin, version, config}")
    return meta


def _verify(path: Path, data: bytes, header_size: int, metadata: dict[str, str]) -> dict[str, Any]:
    fmt, digest = metadata.get(FORMAT_KEY), metadata.get(HASH_KEY)
    if fmt is None and digest is None:
        if META_KEY not in metadata:
            raise ArtifactError(f"artifact {str(path)!r} has no tokensmith metadata", component="artifact",
                                hint="save it with tokensmith.save_artifact")
        _user_meta(path, metadata[META_KEY])
        raise ArtifactVersionError(f"artifact {str(path)!r} was written before artifact format "
                                   f"{ARTIFACT_FORMAT} (it has no content hash)", component="artifact",
                                   hint="create it again with this version of tokensmith")
    if fmt is None or not (fmt.isascii() and fmt.isdigit()):
        raise _corrupt(path, f"its format {fmt!r} is not a number")
    if int(fmt) != ARTIFACT_FORMAT:
        newer = int(fmt) > ARTIFACT_FORMAT
        raise ArtifactVersionError(
            f"artifact {str(path)!r} has format {int(fmt)}; this tokensmith reads format {ARTIFACT_FORMAT}",
            component="artifact", hint="upgrade tokensmith" if newer else "create it again with this version")
    header = data[8:8 + header_size]
    if digest is None or len(digest) != _DIGEST_LEN or header.count(digest.encode()) != 1:
        raise _corrupt(path, "its content hash is missing or malformed")
    if _content_hash(data, 8 + header.index(digest.encode())) != digest:
        raise _corrupt(path, "its content does not match its sha256 (the file is damaged)")
    return _user_meta(path, metadata.get(META_KEY))


def load_artifact(path: str | Path, *, plugin: str | None = None, version: str | None = None,
                  device: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, metadata)``, after checking the content hash and the format, and that the
    artifact came from ``plugin`` (and its ``version``) when given."""
    from safetensors.torch import load

    path = Path(path)
    target = _target_device(device, path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"artifact {str(path)!r} does not exist", component="artifact") from None
    except OSError as exc:
        raise ArtifactError(f"artifact {str(path)!r} cannot be read: {exc.strerror or exc}",
                            component="artifact") from None
    size, metadata = _header(path, data)
    meta = _verify(path, data, size, metadata)
    if plugin is not None and meta["plugin"] != plugin:
        raise ArtifactError(f"artifact {str(path)!r} was written by {meta['plugin']!r}, not {plugin!r}",
                            component="artifact")
    if version is not None and meta["version"] != version:
        raise ArtifactVersionError(f"artifact {str(path)!r} was written by {meta['plugin']} version "
                                   f"{meta['version']!r}; this one reads version {version!r}",
                                   component="artifact", hint="create it again with the installed version")
    try:
        tensors = load(data)
    except Exception as exc:  # noqa: BLE001 - SafetensorError and others
        raise _corrupt(path, str(exc)) from None
    if target.type != "cpu":
        try:
            tensors = {k: v.to(target) for k, v in tensors.items()}
        except Exception as exc:  # noqa: BLE001 - out of device memory, driver errors
            raise ArtifactDeviceError(f"artifact {str(path)!r} cannot be moved to {device!r}: {exc}",
                                      component="artifact") from None
    return tensors, meta
